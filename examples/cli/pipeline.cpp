#include "pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <type_traits>

#include <opencv2/imgproc.hpp>

#include "amq/error.hpp"
#include "amq/hashing.hpp"
#include "amq/score_map.hpp"
#include "amq/serialization.hpp"
#include "image_io.hpp"
#include "model_file.hpp"
#include "resources.hpp"

#if AMQ_HAVE_CUDA_FACADE
#include "cuda_amq_scorer.hpp"
#endif

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

template <class Scorer>
constexpr bool is_knn = std::is_same_v<std::decay_t<Scorer>, knn::KnnScorer>;

/// "2^28" for a power of two, else the number.
std::string bit_count(std::uint64_t bits) {
  for (unsigned e = 0; e < 64; ++e) {
    if (bits == std::uint64_t{1} << e) return "2^" + std::to_string(e);
  }
  return std::to_string(bits);
}

const char* framing_name(features::Framing framing) {
  return framing == features::Framing::center_crop ? "center_crop" : "full_image";
}

features::Framing parse_framing(const std::string& name) {
  if (name == "center_crop") return features::Framing::center_crop;
  AMQ_EXPECTS(name == "full_image", "unknown framing '" << name << "'");
  return features::Framing::full_image;
}

}  // namespace

std::string method_name(const AnyScorer& scorer) {
  if (const auto* knn = std::get_if<knn::KnnScorer>(&scorer)) {
    return "knn-" + knn::to_string(knn->params().index);
  }
  return "amq";
}

std::vector<std::uint8_t> scorer_bytes(const AnyScorer& scorer) {
  return std::visit(
      [](const auto& s) {
        if constexpr (is_knn<decltype(s)>) {
          std::ostringstream out(std::ios::binary);
          s.save(out);
          const std::string bytes = out.str();
          return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
        } else {
          return s.to_bytes();
        }
      },
      scorer);
}

AnyScorer scorer_from_bytes(const std::vector<std::uint8_t>& bytes, const std::string& method,
                            const std::string& filter, const std::string& projection,
                            const std::string& name) {
  if (method.rfind("knn-", 0) == 0) {
    const knn::IndexKind kind = knn::parse_index_kind(method.substr(4));
    std::istringstream in(std::string(bytes.begin(), bytes.end()), std::ios::binary);
    knn::KnnScorer scorer = knn::KnnScorer::load(in);
    AMQ_EXPECTS(scorer.params().index == kind,
                name << " holds a " << knn::to_string(scorer.params().index)
                     << " index, its metadata names the method '" << method << "'");
    return scorer;
  }
  AMQ_EXPECTS(method == "amq", name << " names an unknown method '" << method
                                    << "' (expected amq, knn-flat, knn-hnsw or knn-ivfpq)");
  return make_amq_scorer(filter, projection, name + " names an ", [&](auto* tag) -> AnyScorer {
    using Scorer = std::remove_pointer_t<decltype(tag)>;
    return Scorer::from_bytes(bytes.data(), bytes.size(), name);
  });
}

MapShape scorer_shape(const AnyScorer& scorer) {
  return std::visit(
      [](const auto& s) {
        if constexpr (is_knn<decltype(s)>) {
          return MapShape{s.width(), s.height(), s.depth()};
        } else {
          return MapShape{s.map_width(), s.map_height(), s.encoder().dim()};
        }
      },
      scorer);
}

std::size_t query_structure_bytes(const AnyScorer& scorer) {
  return std::visit(
      [](const auto& s) -> std::size_t {
        if constexpr (is_knn<decltype(s)>) {
          return s.index_bytes();
        } else {
          return s.filter().size_bytes();
        }
      },
      scorer);
}

std::string describe_scorer(const AnyScorer& scorer) {
  std::ostringstream text;
  text << method_name(scorer) << ": ";
  std::visit(
      [&](const auto& s) {
        if constexpr (is_knn<decltype(s)>) {
          const knn::KnnParams& p = s.params();
          if (p.index == knn::IndexKind::hnsw) {
            text << "HNSW M = " << p.hnsw_m << ", efConstruction = " << p.ef_construction
                 << ", efSearch = " << p.ef_search << ", ";
          } else if (p.index == knn::IndexKind::ivfpq) {
            text << "IVFPQ nlist = " << p.nlist << ", m = " << p.pq_m << ", nbits = " << p.pq_nbits
                 << ", nprobe = " << p.nprobe << ", ";
          } else {
            text << "exact search, ";
          }
          text << s.size() << " features";
          if (p.use_coreset) text << " (coreset " << p.coreset.ratio << ")";
          text << ", image score " << amq::to_string(p.image_score);
        } else {
          const SizingReport& r = s.sizing();
          text << "G = " << r.hashes << ", bucket width " << s.encoder().params().bucket_width
               << ", " << detail::EncoderFormat<std::decay_t<decltype(s.encoder())>>::name;
          if (s.params().codes_per_key != 1) text << ", K = " << s.params().codes_per_key;
          text << ", " << detail::FilterFormat<std::decay_t<decltype(s.filter())>>::name
               << " filter of " << bit_count(r.bits) << " bits, B = " << r.probes
               << ", image score " << amq::to_string(s.params().image_score);
        }
      },
      scorer);
  return text.str();
}

SizingReport amq_sizing(const AnyScorer& scorer) {
  AMQ_EXPECTS(!std::holds_alternative<knn::KnnScorer>(scorer),
              "a " << method_name(scorer) << " model has no Bloom filter sizing: this step "
                   << "needs an amq model");
  return std::visit(
      [](const auto& s) {
        if constexpr (is_knn<decltype(s)>) {
          return SizingReport{};
        } else {
          return s.sizing();
        }
      },
      scorer);
}

nlohmann::json sizing_json(const SizingReport& s) {
  return {{"images", s.images},          {"width", s.width},
          {"height", s.height},          {"hashes", s.hashes},
          {"total_keys", s.total_keys},  {"distinct_keys", s.distinct_keys},
          {"paper_bits", s.paper_bits},  {"paper_probes", s.paper_probes},
          {"fpr_bits", s.fpr_bits},      {"fpr_probes", s.fpr_probes},
          {"rule", to_string(s.chosen)}, {"bits", s.bits},
          {"probes", s.probes},          {"estimated_fpr", s.estimated_fpr}};
}

nlohmann::json build_scorer(AnyScorer& scorer) {
  return std::visit(
      [](auto& s) -> nlohmann::json {
        if constexpr (is_knn<decltype(s)>) {
          const std::size_t collected = s.collected();
          s.build();
          return {{"collected_features", collected},
                  {"indexed_features", s.size()},
                  {"index_bytes", s.index_bytes()}};
        } else {
          return sizing_json(s.build());
        }
      },
      scorer);
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
          {"weights",
           {{"path", (error ? weights : absolute).string()},
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
  AMQ_EXPECTS(spread > 0.0 && std::isfinite(spread), "the training features do not vary (spread "
                                                         << spread << "); cannot choose a "
                                                         << "bucket width");
  return spread;
}

namespace {

AnyScorer read_scorer(const nlohmann::json& meta, const ModelFile& file, const fs::path& path) {
  // Models written before kNN methods existed name no method: they are amq models.
  const nlohmann::json& method = meta.at("method");
  return scorer_from_bytes(file.scorer_bytes, method.value("name", "amq"),
                           method.value("filter", "classic"), method.value("projection", "dense"),
                           "model file " + path.string() + " (scorer)");
}

}  // namespace

Detector load_detector(const fs::path& model_path, const fs::path& weights_override) {
  const ModelFile file = read_model_file(model_path);
  const nlohmann::json& meta = file.metadata;
  AMQ_EXPECTS(meta.is_object() && meta.value("format", "") == "amq-cli-model",
              "model file " << model_path << " has no amq command-line metadata");
  try {
    Detector detector{
        meta,
        FeatureSettings::from_json(meta.at("features"), weights_override),
        nullptr,
        read_scorer(meta, file, model_path),
        meta.at("threshold").at("value").get<float>(),
        {meta.at("heatmap").at("low").get<float>(), meta.at("heatmap").at("high").get<float>()},
        meta.at("method").value("smooth_sigma", 0.0),
        nullptr};
    detector.source = make_source(detector.settings);
    const auto [width, height, depth] = scorer_shape(detector.scorer);
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

void use_device(Detector& detector, const std::string& device) {
  if (device == "cpu") {
    detector.device.reset();
    return;
  }
  AMQ_EXPECTS(device == "cuda", "unknown device '" << device << "' (expected cpu or cuda)");
#if AMQ_HAVE_CUDA_FACADE
  std::visit(
      [&](const auto& s) {
        if constexpr (is_knn<decltype(s)>) {
          AMQ_FAIL("--device cuda scores amq models only; this model is "
                   << method_name(detector.scorer) << ", which Faiss searches on the CPU");
        } else {
          detector.device = std::make_shared<CudaAmqScorer>(s);
          // The backbone follows when LibTorch has CUDA; Debian's LibTorch has not, and the
          // features are then computed on the CPU and copied to the device for scoring.
          if (features::cuda_available()) {
            detector.settings.options.cuda = true;
            detector.source = make_source(detector.settings);
          } else {
            std::cerr << "amq: LibTorch has no CUDA here: the backbone runs on the CPU, "
                         "scoring on the GPU\n";
          }
        }
      },
      detector.scorer);
#else
  AMQ_FAIL(
      "this amq was built without CUDA: --device cuda needs a build configured with "
      "-DAMQ_ENABLE_CUDA=ON (docs/cuda.md); use --device cpu");
#endif
}

std::vector<float> score_feature_map(const AnyScorer& any, const FeatureMap& map,
                                     StageTimes& times) {
  const MapShape shape = scorer_shape(any);
  AMQ_EXPECTS(map.depth == shape.depth && map.width == shape.width && map.height == shape.height,
              "feature map is " << map.width << " x " << map.height << " x " << map.depth
                                << ", the model's maps are " << shape.width << " x " << shape.height
                                << " x " << shape.depth);
  std::vector<float> scores(map.pixels());
  Stopwatch watch;
  CpuStopwatch cpu;
  std::visit(
      [&](const auto& scorer) {
        if constexpr (!is_knn<decltype(scorer)>) {
          const std::vector<std::int32_t> codes = scorer.encode(map);
          times.encode_ms += watch.lap_ms();
          times.encode_cpu_ms += cpu.lap_ms();
          scorer.score_codes(codes.data(), map.pixels(), scores.data());
        } else {
          scorer.score(map, scores.data());
        }
      },
      any);
  times.query_ms += watch.lap_ms();
  times.query_cpu_ms += cpu.lap_ms();
  return scores;
}

float scorer_image_score(const AnyScorer& scorer, const std::vector<float>& map, std::size_t width,
                         std::size_t height) {
  return std::visit([&](const auto& s) { return s.image_score(map.data(), width, height); },
                    scorer);
}

std::vector<float> upsample_score_map(const std::vector<float>& map, std::size_t map_width,
                                      std::size_t map_height, std::size_t width, std::size_t height,
                                      double sigma) {
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

cv::Rect scored_region(const features::FeatureSource& source, std::size_t width,
                       std::size_t height) {
  const features::ImageRegion covered = source.covered_region(width, height);
  const int x = static_cast<int>(std::lround(covered.x));
  const int y = static_cast<int>(std::lround(covered.y));
  const cv::Rect region = cv::Rect(x, y, static_cast<int>(std::lround(covered.width)),
                                   static_cast<int>(std::lround(covered.height))) &
                          cv::Rect(0, 0, static_cast<int>(width), static_cast<int>(height));
  AMQ_EXPECTS(!region.empty(), "an image of " << width << " x " << height
                                              << " pixels is too small for its feature source");
  return region;
}

ScoredImage score_image(Detector& detector, const fs::path& path, StageTimes& times) {
  Stopwatch watch;
  const cv::Mat rgb = read_rgb_image(path);
  times.load_ms += watch.lap_ms();

  const features::RgbImage view{rgb.data, static_cast<std::size_t>(rgb.cols),
                                static_cast<std::size_t>(rgb.rows)};
  const features::FeatureMapBuffer features = detector.source->extract(view);
  times.backbone_ms += watch.lap_ms();

  std::vector<float> map;
#if AMQ_HAVE_CUDA_FACADE
  if (detector.device) {
    // The GPU encodes and probes in one fused kernel: both count as the query stage.
    CpuStopwatch cpu;
    map = detector.device->score(features.view());
    times.query_ms += watch.elapsed_ms();
    times.query_cpu_ms += cpu.lap_ms();
  }
#endif
  if (map.empty()) map = score_feature_map(detector.scorer, features.view(), times);
  watch.lap_ms();

  ScoredImage scored;
  scored.image_width = view.width;
  scored.image_height = view.height;
  scored.region = scored_region(*detector.source, view.width, view.height);
  scored.rgb = scored.region.size() == rgb.size() ? rgb : rgb(scored.region).clone();
  const auto region_width = static_cast<std::size_t>(scored.region.width);
  const auto region_height = static_cast<std::size_t>(scored.region.height);
  scored.scores = upsample_score_map(map, features.width, features.height, region_width,
                                     region_height, detector.smooth_sigma);
  scored.image_score = scorer_image_score(detector.scorer, map, region_width, region_height);
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
