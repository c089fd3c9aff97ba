#include "commands.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>

#include "amq/config.hpp"
#include "amq/error.hpp"
#include "dataset.hpp"
#include "image_io.hpp"
#include "methods.hpp"
#include "model_file.hpp"
#include "pipeline.hpp"
#include "report.hpp"
#include "resources.hpp"

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

/// Images whose feature spread sets the absolute bucket width.
constexpr std::size_t spread_images = 8;

/// Refuses an output path whose folder does not exist or which is a folder, before any work.
void expect_output_path(const fs::path& path, const char* what) {
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code error;
  AMQ_EXPECTS(fs::is_directory(folder, error),
              "cannot write " << what << " " << path << ": folder " << folder
                              << " does not exist");
  AMQ_EXPECTS(!fs::is_directory(path, error),
              "cannot write " << what << " " << path << ": it is a folder");
}

/// Refuses a heatmap folder that is a file or whose parent does not exist.
void expect_heatmap_folder(const fs::path& folder) {
  std::error_code error;
  if (fs::exists(folder, error)) {
    AMQ_EXPECTS(fs::is_directory(folder, error),
                "heatmap folder " << folder << " exists and is not a folder");
    return;
  }
  expect_output_path(folder, "heatmap folder");
}

/// Writes each heatmap atomically into `folder`, created if needed; called only once every
/// image has been scored, so a failure part-way leaves no heatmaps behind.
void write_heatmaps(const fs::path& folder,
                    const std::vector<std::pair<std::string, std::vector<unsigned char>>>& pngs) {
  if (folder.empty()) return;
  fs::create_directories(folder);
  for (const auto& [name, png] : pngs) {
    write_file_atomically(folder / name, std::string(png.begin(), png.end()));
  }
}

std::vector<cv::Mat> read_images(const std::vector<fs::path>& paths, std::size_t begin,
                                 std::size_t end) {
  std::vector<cv::Mat> images;
  for (std::size_t i = begin; i < end; ++i) images.push_back(read_rgb_image(paths[i]));
  return images;
}

std::vector<features::FeatureMapBuffer> extract(features::FeatureSource& source,
                                                const std::vector<cv::Mat>& images) {
  std::vector<features::RgbImage> views;
  for (const cv::Mat& image : images) {
    views.push_back({image.data, static_cast<std::size_t>(image.cols),
                     static_cast<std::size_t>(image.rows)});
  }
  return source.extract_batch(views);
}

std::string heatmap_name(const fs::path& image, const std::string& prefix) {
  return prefix + image.stem().string() + ".png";
}

/// Scores the held-out normal images with the trained detector; records in its metadata the
/// threshold, which comes from normal images the filter has not seen: the largest of their
/// image scores, so that every held-out normal image is judged normal; and the heatmap range.
void set_threshold(Detector& detector, const std::vector<fs::path>& held_images, double holdout,
                   std::size_t hashes) {
  StageTimes times;
  std::vector<float> held_scores;
  std::vector<float> held_pixels;
  for (const fs::path& path : held_images) {
    const ScoredImage scored = score_image(detector, path, times);
    held_scores.push_back(scored.image_score);
    held_pixels.insert(held_pixels.end(), scored.scores.begin(), scored.scores.end());
  }
  detector.threshold = *std::max_element(held_scores.begin(), held_scores.end());
  const float normal_peak = *std::max_element(held_pixels.begin(), held_pixels.end());
  nlohmann::json& metadata = detector.metadata;
  metadata["threshold"] = {{"value", detector.threshold},
                           {"rule", "largest image score of the held-out normal images"},
                           {"holdout_fraction", holdout},
                           {"holdout_images", nlohmann::json::array()},
                           {"holdout_scores", held_scores}};
  for (const fs::path& path : held_images) {
    metadata["threshold"]["holdout_images"].push_back(path.string());
  }
  // Heatmaps are cold up to the largest pixel score of the held-out normal images and hot from
  // twice that (or one missed code of G) or the image's own peak, whichever is larger.
  metadata["heatmap"] = {
      {"low", normal_peak},
      {"high", std::max(2.0f * normal_peak, 1.0f / static_cast<float>(hashes))}};
}

/// Adds the normal images of `o.data` to the model `o.resume` (docs/distributed.md): the
/// model's features, parameters, M and B; the threshold is recomputed over the held-out images
/// of the model and of the new folders.
void run_resume(const TrainOptions& o) {
  Stopwatch total;
  const fs::path out = o.out.empty() ? o.resume : o.out;
  if (!o.model_options.empty()) {
    std::string given;
    for (const std::string& name : o.model_options) given += (given.empty() ? "" : ", ") + name;
    AMQ_FAIL(given << " cannot be given with --resume: the model fixes the backbone, "
                      "preprocessing, method parameters and hold-out fraction");
  }
  expect_output_path(out, "model file");
  AMQ_EXPECTS(!o.data.empty(), "train --resume needs at least one --data folder");
  AMQ_EXPECTS(o.batch_size > 0, "--batch-size must be positive");

  Detector detector = load_detector(o.resume, o.weights);
  AMQ_EXPECTS(method_name(detector.scorer) == "amq",
              "--resume adds images to amq models; " << o.resume << " is a "
                                                     << method_name(detector.scorer) << " model");
  nlohmann::json& metadata = detector.metadata;
  double holdout = 0.0;
  std::vector<fs::path> held_images;
  std::size_t hashes = 0;
  try {
    holdout = metadata.at("threshold").at("holdout_fraction").get<double>();
    for (const auto& path : metadata.at("threshold").at("holdout_images")) {
      held_images.emplace_back(path.get<std::string>());
    }
    hashes = metadata.at("method").at("hashes").get<std::size_t>();
    metadata.at("training").at("data");
    metadata.at("training").at("images");
  } catch (const nlohmann::json::exception& error) {
    AMQ_FAIL("model file " << o.resume << " cannot be resumed, its metadata lacks a field ("
                           << error.what() << "); train it again with this version");
  }
  // The threshold needs every held-out image again: refuse before any work if one is gone.
  for (const fs::path& path : held_images) {
    std::error_code error;
    AMQ_EXPECTS(fs::is_regular_file(path, error),
                "held-out image " << path << " of model " << o.resume
                                  << " is missing: resume recomputes the threshold over every "
                                     "held-out image");
  }
  const TrainingImages added = split_training_images(o.data, holdout);
  std::cerr << "amq train --resume: " << detector.source->name() << "; adding "
            << added.fit.size() << " images, " << added.held.size()
            << " more held out for the threshold\n";

  // add keeps M and B, so the filter equals one fit on every image with these M and B.
  Stopwatch watch;
  for (std::size_t begin = 0; begin < added.fit.size();) {
    const std::size_t end = std::min(added.fit.size(), begin + o.batch_size);
    const std::vector<features::FeatureMapBuffer> maps =
        extract(*detector.source, read_images(added.fit, begin, end));
    for (const features::FeatureMapBuffer& map : maps) {
      std::visit([&](auto& s) { s.add(map.view()); }, detector.scorer);
    }
    begin = end;
    std::fprintf(stderr, "amq train --resume: %zu/%zu images (%.1f s)\n", begin,
                 added.fit.size(), watch.elapsed_ms() / 1000.0);
  }
  const SizingReport sizing = amq_sizing(detector.scorer);
  metadata["sizing"] = sizing_json(sizing);
  for (const fs::path& data : o.data) metadata["training"]["data"].push_back(data.string());
  metadata["training"]["images"] =
      metadata["training"]["images"].get<std::size_t>() + added.fit.size();

  held_images.insert(held_images.end(), added.held.begin(), added.held.end());
  set_threshold(detector, held_images, holdout, hashes);
  write_model_file(out, ModelFile{metadata, scorer_bytes(detector.scorer)});
  std::printf("model %s: %s, threshold %.6g, trained on %llu images (%zu added) in %.1f s\n",
              out.string().c_str(), format_bytes(fs::file_size(out)).c_str(),
              detector.threshold, static_cast<unsigned long long>(sizing.images),
              added.fit.size(), total.elapsed_ms() / 1000.0);
}

}  // namespace

void run_train(const TrainOptions& o) {
  if (!o.resume.empty()) return run_resume(o);
  Stopwatch total;
  AMQ_EXPECTS(!o.out.empty(), "train needs --out (the model file to write)");
  expect_output_path(o.out, "model file");
  AMQ_EXPECTS(!o.data.empty(), "train needs at least one --data folder");
  AMQ_EXPECTS(!o.weights.empty(), "train needs --weights (the backbone's safetensors file)");
  AMQ_EXPECTS(o.holdout > 0.0 && o.holdout < 1.0,
              "--holdout must lie in (0, 1), got " << o.holdout);
  AMQ_EXPECTS(o.batch_size > 0, "--batch-size must be positive");
  check_method_options(o);

  const TrainingImages split = split_training_images(o.data, o.holdout);
  const std::vector<fs::path>& fit_images = split.fit;
  const std::vector<fs::path>& held_images = split.held;

  FeatureSettings settings;
  settings.backbone = o.backbone;
  settings.weights = o.weights;
  settings.options = features::default_options(features::parse_backbone(o.backbone));
  if (!o.layers.empty()) settings.options.layers = o.layers;
  settings.options.image_size = o.image_size;
  settings.options.local_average = o.local_average;
  settings.options.batch_size = o.batch_size;
  std::unique_ptr<features::FeatureSource> source = make_source(settings);
  std::cerr << "amq train: " << source->name() << ", " << source->width() << " x "
            << source->height() << " x " << source->depth() << " features; fitting on "
            << fit_images.size() << " images, " << held_images.size()
            << " held out for the threshold\n";

  // The first batch fixes the bucket width (from its feature spread), then the scorer
  // collects every batch; AMQ keeps only the distinct keys between batches, kNN every feature.
  double spread = 0.0;
  float bucket_width = 0.0f;
  std::optional<AnyScorer> scorer;
  Stopwatch watch;
  for (std::size_t begin = 0; begin < fit_images.size();) {
    const std::size_t end =
        std::min(fit_images.size(), begin + (scorer ? o.batch_size : spread_images));
    const std::vector<features::FeatureMapBuffer> maps =
        extract(*source, read_images(fit_images, begin, end));
    if (!scorer) {
      spread = projection_spread(maps);
      bucket_width = static_cast<float>(
          o.absolute_bucket_width > 0.0 ? o.absolute_bucket_width : o.bucket_width * spread);
      if (o.method == "amq") {
        std::cerr << "amq train: projection spread " << spread << ", bucket width "
                  << bucket_width << "\n";
      }
      scorer.emplace(make_method_scorer(o, source->depth(), bucket_width));
    }
    for (const features::FeatureMapBuffer& map : maps) {
      std::visit([&](auto& s) { s.collect(map.view()); }, *scorer);
    }
    begin = end;
    std::fprintf(stderr, "amq train: %zu/%zu images (%.1f s)\n", begin, fit_images.size(),
                 watch.elapsed_ms() / 1000.0);
  }
  Stopwatch build_watch;
  const nlohmann::json built = build_scorer(*scorer);
  std::fprintf(stderr, "amq train: %s, built in %.1f s\n", build_summary(*scorer, built).c_str(),
               build_watch.elapsed_ms() / 1000.0);

  nlohmann::json metadata;
  metadata["format"] = "amq-cli-model";
  metadata["version"] = std::to_string(AMQ_VERSION_MAJOR) + "." +
                        std::to_string(AMQ_VERSION_MINOR) + "." +
                        std::to_string(AMQ_VERSION_PATCH);
  metadata["features"] = settings.to_json();
  metadata["features"]["description"] = source->name();
  metadata["features"]["width"] = source->width();
  metadata["features"]["height"] = source->height();
  metadata["features"]["depth"] = source->depth();
  metadata["method"] = method_json(o, bucket_width, spread);
  metadata[is_knn_method(o.method) ? "index" : "sizing"] = built;
  metadata["training"] = {{"data", nlohmann::json::array()}, {"images", fit_images.size()}};
  for (const fs::path& data : o.data) metadata["training"]["data"].push_back(data.string());

  Detector detector{metadata, settings, std::move(source), std::move(*scorer), 0.0f, {},
                    o.smooth_sigma, nullptr};
  set_threshold(detector, held_images, o.holdout, o.hashes);

  ModelFile model{detector.metadata, scorer_bytes(detector.scorer)};
  write_model_file(o.out, model);
  std::printf("model %s: %s, threshold %.6g, trained on %zu images in %.1f s\n",
              o.out.string().c_str(), format_bytes(fs::file_size(o.out)).c_str(),
              detector.threshold, fit_images.size(), total.elapsed_ms() / 1000.0);
}

void run_test(const TestOptions& o) {
  if (!o.report.empty()) expect_output_path(o.report, "report");
  if (!o.heatmaps.empty()) expect_heatmap_folder(o.heatmaps);
  Detector detector = load_detector(o.model, o.weights);
  use_device(detector, o.device);
  if (o.smooth_sigma >= 0.0) detector.smooth_sigma = o.smooth_sigma;
  const std::vector<TestSample> samples = test_samples(o.data);
  std::cerr << "amq test: " << samples.size() << " images of " << o.data << "\n";

  TestReport report;
  report.model = o.model.string();
  report.data = o.data.string();
  report.features = detector.source->name();
  report.method = describe_scorer(detector.scorer) + (detector.device ? ", on the GPU" : "");
  report.knn = std::holds_alternative<knn::KnnScorer>(detector.scorer);
  report.threshold = detector.threshold;
  PixelData pixels;
  std::vector<std::pair<std::string, std::vector<unsigned char>>> pngs;
  Stopwatch wall;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const TestSample& sample = samples[i];
    const ScoredImage scored = score_image(detector, sample.image, report.times);
    Mask mask = sample.mask.empty()
                    ? normal_mask(scored.image_width, scored.image_height)
                    : read_mask(sample.mask, scored.image_width, scored.image_height);
    const cv::Mat full(static_cast<int>(mask.height), static_cast<int>(mask.width), CV_8U,
                       mask.pixels.data());
    const cv::Mat region = full(scored.region).clone();
    const std::vector<std::uint8_t> labels(region.datastart, region.dataend);
    if (i == 0) {
      pixels.scores.reserve(samples.size() * labels.size());
      pixels.labels.reserve(samples.size() * labels.size());
    }
    pixels.append(scored.scores, labels, static_cast<std::size_t>(scored.region.width),
                  static_cast<std::size_t>(scored.region.height));
    report.images.push_back({sample.image.string(), sample.defect, scored.image_score,
                             scored.image_score > detector.threshold});
    if (!o.heatmaps.empty()) {
      pngs.emplace_back(heatmap_name(sample.image, sample.defect + "_"),
                        heatmap_png(detector, scored, sample.mask.empty() ? nullptr
                                                                          : labels.data()));
    }
    if ((i + 1) % 10 == 0 || i + 1 == samples.size()) {
      std::fprintf(stderr, "amq test: %zu/%zu images (%.1f s)\n", i + 1, samples.size(),
                   wall.elapsed_ms() / 1000.0);
    }
  }
  report.wall_ms = wall.elapsed_ms();
  report.peak_rss_scoring = peak_resident_bytes();

  Stopwatch evaluation;
  report.rows = evaluate(report.images, pixels);
  report.evaluation_ms = evaluation.elapsed_ms();
  report.peak_rss = peak_resident_bytes();
  report.model_bytes = fs::file_size(o.model);
  report.structure_bytes = query_structure_bytes(detector.scorer);
  print_report(std::cout, report);

  write_heatmaps(o.heatmaps, pngs);
  if (!o.report.empty()) write_file_atomically(o.report, report_json(report).dump(2) + "\n");
}

void run_score(const ScoreOptions& o) {
  AMQ_EXPECTS(!o.images.empty(), "score needs at least one image");
  if (!o.heatmaps.empty()) expect_heatmap_folder(o.heatmaps);
  Detector detector = load_detector(o.model, o.weights);
  use_device(detector, o.device);
  if (o.smooth_sigma >= 0.0) detector.smooth_sigma = o.smooth_sigma;

  std::vector<std::pair<std::string, std::vector<unsigned char>>> pngs;
  std::vector<std::string> lines;
  StageTimes times;
  for (std::size_t i = 0; i < o.images.size(); ++i) {
    const ScoredImage scored = score_image(detector, o.images[i], times);
    const bool anomalous = scored.image_score > detector.threshold;
    char line[64];
    std::snprintf(line, sizeof line, "%10.6f  %-9s  ", scored.image_score,
                  anomalous ? "anomalous" : "normal");
    lines.push_back(line + o.images[i].string());
    if (!o.heatmaps.empty()) {
      // A running number keeps images of the same name from different folders apart.
      char prefix[32];
      std::snprintf(prefix, sizeof prefix, "%03zu_", i);
      pngs.emplace_back(heatmap_name(o.images[i], prefix),
                        heatmap_png(detector, scored, nullptr));
    }
  }
  std::printf("threshold %.6g (image score above it: anomalous)\n", detector.threshold);
  for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  write_heatmaps(o.heatmaps, pngs);
}

}  // namespace amq::cli
