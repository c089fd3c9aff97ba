#include "pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include <opencv2/imgproc.hpp>

#include "amq/error.hpp"
#include "amq/hashing.hpp"
#include "amq/score_map.hpp"
#include "amq/serialization.hpp"
#include "image_io.hpp"
#include "model_file.hpp"
#include "resources.hpp"

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

const char* framing_name(features::Framing framing) {
  return framing == features::Framing::center_crop ? "center_crop" : "full_image";
}

features::Framing parse_framing(const std::string& name) {
  if (name == "center_crop") return features::Framing::center_crop;
  AMQ_EXPECTS(name == "full_image", "unknown framing '" << name << "'");
  return features::Framing::full_image;
}

}  // namespace

std::vector<std::uint8_t> scorer_bytes(const AnyScorer& scorer) {
  return std::visit([](const auto& s) { return s.to_bytes(); }, scorer);
}

nlohmann::json file_fingerprint(const fs::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path.string());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a64(bytes.data(), bytes.size())));
  return {{"bytes", bytes.size()}, {"fnv1a64", hex}};
}

nlohmann::json FeatureSettings::to_json() const {
  std::error_code error;
  const fs::path absolute = fs::absolute(weights, error);
  return {{"backbone", backbone},
          {"weights", {{"path", (error ? weights : absolute).string()},
                       {"fingerprint", file_fingerprint(weights)}}},
          {"layers", options.layers},
          {"framing", framing_name(options.framing)},
          {"image_size", options.image_size},
          {"resize_size", options.resize_size},
          {"local_average", options.local_average}};
}

FeatureSettings FeatureSettings::from_json(const nlohmann::json& json,
                                           const fs::path& weights_override) {
  FeatureSettings settings;
  try {
    settings.backbone = json.at("backbone").get<std::string>();
    settings.options = features::default_options(features::parse_backbone(settings.backbone));
    settings.weights = weights_override.empty()
                           ? fs::path(json.at("weights").at("path").get<std::string>())
                           : weights_override;
    settings.options.layers = json.at("layers").get<std::vector<std::string>>();
    settings.options.framing = parse_framing(json.at("framing").get<std::string>());
    settings.options.image_size = json.at("image_size").get<std::size_t>();
    settings.options.resize_size = json.at("resize_size").get<std::size_t>();
    settings.options.local_average = json.at("local_average").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    AMQ_FAIL("model metadata lacks a valid feature setting: " << e.what());
  }

  const nlohmann::json expected = json.at("weights").at("fingerprint");
  std::error_code error;
  AMQ_EXPECTS(fs::is_regular_file(settings.weights, error),
              "weights file " << settings.weights << " of the model does not exist; pass "
                              << "--weights with the file it was trained with");
  AMQ_EXPECTS(file_fingerprint(settings.weights) == expected,
              "weights file " << settings.weights << " differs from the one the model was "
                              << "trained with (" << expected.dump() << ")");
  return settings;
}

std::unique_ptr<features::FeatureSource> make_source(const FeatureSettings& settings) {
  return features::make_feature_source(features::parse_backbone(settings.backbone),
                                       settings.weights.string(), settings.options);
}

double projection_spread(const std::vector<features::FeatureMapBuffer>& maps) {
  AMQ_EXPECTS(!maps.empty(), "no feature maps to measure the feature spread on");
  const std::size_t depth = maps.front().depth;
  std::vector<double> sum(depth, 0.0);
  std::vector<double> sum_squares(depth, 0.0);
  double count = 0.0;
  for (const features::FeatureMapBuffer& map : maps) {
    for (std::size_t i = 0; i < map.data.size(); ++i) {
      const double v = map.data[i];
      sum[i % depth] += v;
      sum_squares[i % depth] += v * v;
    }
    count += static_cast<double>(map.width * map.height);
  }
  double trace = 0.0;
  for (std::size_t c = 0; c < depth; ++c) {
    const double mean = sum[c] / count;
    trace += std::max(0.0, sum_squares[c] / count - mean * mean);
  }
  const double spread = std::sqrt(trace / static_cast<double>(depth));
  AMQ_EXPECTS(spread > 0.0 && std::isfinite(spread),
              "the training features do not vary (spread " << spread << "); cannot choose a "
                                                           << "bucket width");
  return spread;
}

namespace {

AnyScorer read_scorer(const nlohmann::json& meta, const ModelFile& file, const fs::path& path) {
  const std::string filter = meta.at("method").at("filter").get<std::string>();
  const std::vector<std::uint8_t>& bytes = file.scorer_bytes;
  const std::string name = path.string() + " (scorer)";
  if (filter == "split-block") {
    return SplitBlockScorer::from_bytes(bytes.data(), bytes.size(), name);
  }
  AMQ_EXPECTS(filter == "classic",
              "model file " << path << " names an unknown filter '" << filter << "'");
  return ClassicScorer::from_bytes(bytes.data(), bytes.size(), name);
}

}  // namespace

Detector load_detector(const fs::path& model_path, const fs::path& weights_override) {
  const ModelFile file = read_model_file(model_path);
  const nlohmann::json& meta = file.metadata;
  AMQ_EXPECTS(meta.is_object() && meta.value("format", "") == "amq-cli-model",
              "model file " << model_path << " has no amq command-line metadata");
  try {
    Detector detector{meta,
                      FeatureSettings::from_json(meta.at("features"), weights_override),
                      nullptr,
                      read_scorer(meta, file, model_path),
                      meta.at("threshold").at("value").get<float>(),
                      {meta.at("heatmap").at("low").get<float>(),
                       meta.at("heatmap").at("high").get<float>()},
                      meta.at("method").value("smooth_sigma", 0.0)};
    detector.source = make_source(detector.settings);
    const auto [depth, width, height] = std::visit(
        [](const auto& s) {
          return std::tuple{s.encoder().dim(), s.map_width(), s.map_height()};
        },
        detector.scorer);
    AMQ_EXPECTS(detector.source->depth() == depth && detector.source->width() == width &&
                    detector.source->height() == height,
                "model file " << model_path << " was trained on " << width << " x " << height
                              << " x " << depth << " feature maps but its feature source gives "
                              << detector.source->width() << " x " << detector.source->height()
                              << " x " << detector.source->depth());
    return detector;
  } catch (const nlohmann::json::exception& e) {
    AMQ_FAIL("model file " << model_path << " has incomplete metadata: " << e.what());
  }
}

std::vector<float> score_feature_map(const AnyScorer& any, const FeatureMap& map,
                                     StageTimes& times) {
  return std::visit(
      [&](const auto& scorer) {
        AMQ_EXPECTS(map.depth == scorer.encoder().dim() && map.width == scorer.map_width() &&
                        map.height == scorer.map_height(),
                    "feature map is " << map.width << " x " << map.height << " x " << map.depth
                                      << ", the model's maps are " << scorer.map_width()
                                      << " x " << scorer.map_height() << " x "
                                      << scorer.encoder().dim());
        Stopwatch watch;
        const std::vector<std::int32_t> codes = scorer.encoder().encode(map.matrix());
        times.encode_ms += watch.lap_ms();

        const std::size_t g = scorer.encoder().hashes();
        const auto pixels = static_cast<std::ptrdiff_t>(map.pixels());
        std::vector<float> scores(map.pixels());
#pragma omp parallel
        {
          std::vector<std::uint64_t> keys(g);
#pragma omp for schedule(static)
          for (std::ptrdiff_t p = 0; p < pixels; ++p) {
            const std::int32_t* row = codes.data() + static_cast<std::size_t>(p) * g;
            for (std::size_t k = 0; k < g; ++k) {
              keys[k] = make_key(static_cast<std::uint32_t>(k), row[k]);
            }
            const std::size_t found = scorer.filter().count(keys.data(), g);
            scores[p] = static_cast<float>(1.0 - double(found) / double(g));
          }
        }
        times.query_ms += watch.lap_ms();
        return scores;
      },
      any);
}

std::vector<float> upsample_score_map(const std::vector<float>& map, std::size_t map_width,
                                      std::size_t map_height, std::size_t width,
                                      std::size_t height, double sigma) {
  if (sigma <= 0.0) return upsample_nearest(map.data(), map_width, map_height, width, height);
  const cv::Mat source(static_cast<int>(map_height), static_cast<int>(map_width), CV_32F,
                       const_cast<float*>(map.data()));
  cv::Mat smooth;
  cv::GaussianBlur(source, smooth, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT);
  std::vector<float> out(width * height);
  cv::Mat target(static_cast<int>(height), static_cast<int>(width), CV_32F, out.data());
  cv::resize(smooth, target, target.size(), 0.0, 0.0, cv::INTER_LINEAR);
  return out;
}

ScoredImage score_image(Detector& detector, const fs::path& path, StageTimes& times) {
  Stopwatch watch;
  const cv::Mat rgb = read_rgb_image(path);
  times.load_ms += watch.lap_ms();

  const features::RgbImage view{rgb.data, static_cast<std::size_t>(rgb.cols),
                                static_cast<std::size_t>(rgb.rows)};
  const features::FeatureMapBuffer features = detector.source->extract(view);
  times.backbone_ms += watch.lap_ms();

  const std::vector<float> map = score_feature_map(detector.scorer, features.view(), times);
  watch.lap_ms();

  ScoredImage scored;
  scored.image_width = view.width;
  scored.image_height = view.height;
  const features::ImageRegion covered = detector.source->covered_region(view.width, view.height);
  const int x = static_cast<int>(std::lround(covered.x));
  const int y = static_cast<int>(std::lround(covered.y));
  scored.region = cv::Rect(x, y, static_cast<int>(std::lround(covered.width)),
                           static_cast<int>(std::lround(covered.height))) &
                  cv::Rect(0, 0, rgb.cols, rgb.rows);
  AMQ_EXPECTS(!scored.region.empty(), "image " << path << " (" << rgb.cols << " x " << rgb.rows
                                               << ") is too small for its feature source");
  scored.rgb = scored.region.size() == rgb.size() ? rgb : rgb(scored.region).clone();
  const auto region_width = static_cast<std::size_t>(scored.region.width);
  const auto region_height = static_cast<std::size_t>(scored.region.height);
  scored.scores = upsample_score_map(map, features.width, features.height, region_width,
                                     region_height, detector.smooth_sigma);
  scored.image_score = std::visit(
      [&](const auto& s) { return s.image_score(map.data(), region_width, region_height); },
      detector.scorer);
  times.upsample_ms += watch.lap_ms();
  return scored;
}

std::vector<unsigned char> heatmap_png(const Detector& detector, const ScoredImage& image,
                                       const std::uint8_t* mask) {
  HeatmapStyle style = detector.style;
  style.high = std::max(style.high, *std::max_element(image.scores.begin(), image.scores.end()));
  return encode_png(render_heatmap(image.rgb, image.scores.data(), mask, style));
}

}  // namespace amq::cli
