#include "compare.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "amq/error.hpp"
#include "feature_cache.hpp"
#include "image_io.hpp"
#include "methods.hpp"
#include "pipeline.hpp"
#include "report.hpp"
#include "resources.hpp"

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

/// Training images whose feature spread sets the bucket width, as `amq train` measures it.
constexpr std::size_t spread_images = 8;

/// What one method gave on the test set.
struct MethodRun {
  std::string method;               ///< Method name.
  std::string description;          ///< Method and search parameters.
  MetricRow overall;                ///< Metrics over all test images.
  StageTimes times;                 ///< Encode, query, upsample over the test images.
  double upsample_cpu_ms = 0;       ///< Upsampling and image scores, CPU time.
  double fit_ms = 0;                ///< Collect and build, wall clock.
  double fit_cpu_ms = 0;            ///< Collect and build, CPU time.
  std::size_t structure_bytes = 0;  ///< Filter or index.
  std::size_t model_bytes = 0;      ///< The serialized scorer.
  std::size_t fit_peak = 0;         ///< Peak resident bytes while fitting, above its start.
  /// Peak resident bytes while scoring, above the start of fitting: the model in memory and
  /// the scoring buffers.
  std::size_t score_peak = 0;
  bool peaks_measured = false;  ///< False where the peak could not be reset between steps.
};

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return in ? one + " " + five + " " + fifteen : "unknown";
}

std::vector<features::FeatureMapBuffer> extract_images(features::FeatureSource& source,
                                                       const std::vector<fs::path>& paths,
                                                       std::size_t batch, CategoryFeatures& f,
                                                       std::vector<TestRegion>* regions) {
  std::vector<features::FeatureMapBuffer> maps;
  for (std::size_t begin = 0; begin < paths.size(); begin += batch) {
    Stopwatch watch;
    CpuStopwatch cpu;
    std::vector<cv::Mat> images;
    std::vector<features::RgbImage> views;
    for (std::size_t i = begin; i < std::min(paths.size(), begin + batch); ++i) {
      images.push_back(read_rgb_image(paths[i]));
    }
    for (const cv::Mat& image : images) {
      const auto width = static_cast<std::size_t>(image.cols);
      const auto height = static_cast<std::size_t>(image.rows);
      views.push_back({image.data, width, height});
      if (regions != nullptr) {
        const cv::Rect r = scored_region(source, width, height);
        regions->push_back({width, height, static_cast<std::size_t>(r.x),
                            static_cast<std::size_t>(r.y), static_cast<std::size_t>(r.width),
                            static_cast<std::size_t>(r.height)});
      }
    }
    f.load_ms += watch.lap_ms();
    f.load_cpu_ms += cpu.lap_ms();
    for (auto& map : source.extract_batch(views)) maps.push_back(std::move(map));
    f.backbone_ms += watch.lap_ms();
    f.backbone_cpu_ms += cpu.lap_ms();
  }
  return maps;
}

/// The features of the category: from the cache when it matches `key`, else extracted (and
/// cached when a cache file is given).
CategoryFeatures category_features(const CompareOptions& o, const FeatureSettings& settings,
                                   const nlohmann::json& key) {
  std::error_code error;
  if (!o.features.empty() && fs::exists(o.features, error)) {
    CategoryFeatures cached = read_category_features(o.features);
    AMQ_EXPECTS(cached.key == key, "feature cache "
                                       << o.features << " was made for other data or settings ("
                                       << cached.key.dump() << "); remove it or name another file");
    std::cerr << "amq compare: features of " << cached.image_count() << " images read from "
              << o.features << "\n";
    return cached;
  }

  CategoryFeatures f;
  f.key = key;
  const TrainingImages split = split_training_images({o.data}, o.settings.holdout);
  f.fit_images = split.fit;
  f.held_images = split.held;
  f.samples = test_samples(o.data);
  std::unique_ptr<features::FeatureSource> source = make_source(settings);
  const std::size_t batch = settings.options.batch_size;
  std::cerr << "amq compare: extracting " << source->name() << " features of "
            << f.fit_images.size() + f.held_images.size() + f.samples.size() << " images\n";
  f.fit = extract_images(*source, f.fit_images, batch, f, nullptr);
  f.held = extract_images(*source, f.held_images, batch, f, nullptr);
  std::vector<fs::path> test_paths;
  for (const TestSample& sample : f.samples) test_paths.push_back(sample.image);
  f.test = extract_images(*source, test_paths, batch, f, &f.regions);
  std::fprintf(stderr, "amq compare: features extracted in %.1f s (%.1f CPU s)\n",
               (f.load_ms + f.backbone_ms) / 1000.0, (f.load_cpu_ms + f.backbone_cpu_ms) / 1000.0);
  if (!o.features.empty()) write_category_features(o.features, f);
  return f;
}

/// The labels of each test image's scored region (0 normal, 1 defect).
std::vector<std::vector<std::uint8_t>> region_labels(const CategoryFeatures& f) {
  std::vector<std::vector<std::uint8_t>> labels;
  for (std::size_t i = 0; i < f.samples.size(); ++i) {
    const TestRegion& r = f.regions[i];
    Mask mask = f.samples[i].mask.empty()
                    ? normal_mask(r.image_width, r.image_height)
                    : read_mask(f.samples[i].mask, r.image_width, r.image_height);
    std::vector<std::uint8_t> region(r.width * r.height);
    for (std::size_t y = 0; y < r.height; ++y) {
      const std::uint8_t* row = mask.pixels.data() + (r.y + y) * r.image_width + r.x;
      std::copy(row, row + r.width, region.data() + y * r.width);
    }
    labels.push_back(std::move(region));
  }
  return labels;
}

void clear_pixels(PixelData& pixels) {
  pixels.scores.clear();
  pixels.labels.clear();
  pixels.offsets.clear();
  pixels.widths.clear();
  pixels.heights.clear();
}

MethodRun run_method(const std::string& method, const CompareOptions& o, const CategoryFeatures& f,
                     float bucket_width, const std::vector<std::vector<std::uint8_t>>& labels,
                     PixelData& pixels) {
  TrainOptions t = o.settings;
  t.method = method;
  MethodRun run;
  run.method = method;

  run.peaks_measured = reset_peak_resident_bytes();
  const std::size_t fit_base = resident_bytes();
  Stopwatch watch;
  CpuStopwatch cpu;
  AnyScorer scorer = make_method_scorer(t, f.fit.front().depth, bucket_width);
  for (const features::FeatureMapBuffer& map : f.fit) {
    std::visit([&](auto& s) { s.collect(map.view()); }, scorer);
  }
  const nlohmann::json built = build_scorer(scorer);
  run.fit_ms = watch.lap_ms();
  run.fit_cpu_ms = cpu.lap_ms();
  run.fit_peak = peak_resident_bytes() - std::min(fit_base, peak_resident_bytes());
  std::fprintf(stderr, "amq compare: %s: %s, fit in %.1f s (%.1f CPU s)\n", method.c_str(),
               build_summary(scorer, built).c_str(), run.fit_ms / 1000.0, run.fit_cpu_ms / 1000.0);

  run.peaks_measured = reset_peak_resident_bytes() && run.peaks_measured;
  clear_pixels(pixels);
  std::vector<ImageResult> images;
  for (std::size_t i = 0; i < f.test.size(); ++i) {
    const std::vector<float> map = score_feature_map(scorer, f.test[i].view(), run.times);
    watch.lap_ms();
    cpu.lap_ms();
    const TestRegion& r = f.regions[i];
    const std::vector<float> scores = upsample_score_map(map, f.test[i].width, f.test[i].height,
                                                         r.width, r.height, t.smooth_sigma);
    const float image_score = scorer_image_score(scorer, map, r.width, r.height);
    run.times.upsample_ms += watch.lap_ms();
    run.upsample_cpu_ms += cpu.lap_ms();
    pixels.append(scores, labels[i], r.width, r.height);
    images.push_back({f.samples[i].image.string(), f.samples[i].defect, image_score, false});
  }
  run.score_peak = peak_resident_bytes() - std::min(fit_base, peak_resident_bytes());
  run.description = describe_scorer(scorer);
  run.structure_bytes = query_structure_bytes(scorer);
  run.model_bytes = scorer_bytes(scorer).size();
  run.overall = evaluate(images, pixels).back();
  const double n = static_cast<double>(f.test.size());
  std::fprintf(stderr, "amq compare: %s: image AUROC %.4f, scoring %.1f ms/image (%.1f CPU)\n",
               method.c_str(), run.overall.image_auroc.value_or(0.0),
               (run.times.encode_ms + run.times.query_ms) / n,
               (run.times.encode_cpu_ms + run.times.query_cpu_ms) / n);
  return run;
}

std::string metric(const std::optional<double>& value) {
  if (!value) return "n/a";
  char text[16];
  std::snprintf(text, sizeof text, "%.4f", *value);
  return text;
}

std::string mib(std::size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MiB", static_cast<double>(bytes) / 1048576.0);
  return text;
}

}  // namespace

void run_compare(const CompareOptions& o) {
  if (!o.report.empty()) {
    const fs::path folder = o.report.parent_path().empty() ? "." : o.report.parent_path();
    std::error_code error;
    AMQ_EXPECTS(fs::is_directory(folder, error),
                "cannot write report " << o.report << ": folder " << folder << " does not exist");
  }
  AMQ_EXPECTS(!o.methods.empty(), "compare needs at least one method");
  AMQ_EXPECTS(!o.extract_only || !o.features.empty(),
              "--extract-only needs --features (the cache file to write)");
  for (const std::string& method : o.methods) {
    TrainOptions t = o.settings;
    t.method = method;
    check_method_options(t);
  }
  AMQ_EXPECTS(o.settings.holdout > 0.0 && o.settings.holdout < 1.0,
              "--holdout must lie in (0, 1), got " << o.settings.holdout);
  const std::string load_before = load_average();

  FeatureSettings settings;
  settings.backbone = o.settings.backbone;
  settings.weights = o.weights;
  settings.options = features::default_options(features::parse_backbone(o.settings.backbone));
  if (!o.settings.layers.empty()) settings.options.layers = o.settings.layers;
  settings.options.image_size = o.settings.image_size;
  settings.options.local_average = o.settings.local_average;
  std::error_code error;
  nlohmann::json key = {{"features", settings.to_json()},
                        {"data", fs::absolute(o.data, error).string()},
                        {"holdout", o.settings.holdout}};
  const CategoryFeatures f = category_features(o, settings, key);
  if (o.extract_only) {
    std::printf("features of %zu images in %s\n", f.image_count(), o.features.string().c_str());
    return;
  }
  const std::vector<std::vector<std::uint8_t>> labels = region_labels(f);

  std::vector<features::FeatureMapBuffer> first(
      f.fit.begin(),
      f.fit.begin() + static_cast<std::ptrdiff_t>(std::min(spread_images, f.fit.size())));
  const double spread = projection_spread(first);
  first.clear();
  const float bucket_width =
      static_cast<float>(o.settings.absolute_bucket_width > 0.0 ? o.settings.absolute_bucket_width
                                                                : o.settings.bucket_width * spread);

  // The pixel buffers are allocated and touched once, so that no method's peak memory counts
  // the test set's score maps.
  PixelData pixels;
  std::size_t total_pixels = 0;
  for (const auto& region : labels) total_pixels += region.size();
  pixels.scores.assign(total_pixels, 0.0f);
  pixels.labels.assign(total_pixels, 0);

  std::vector<MethodRun> runs;
  for (const std::string& method : o.methods) {
    runs.push_back(run_method(method, o, f, bucket_width, labels, pixels));
  }
  const std::string load_after = load_average();

  const double n = static_cast<double>(f.test.size());
  const double images = static_cast<double>(f.image_count());
  const double front_cpu = (f.load_cpu_ms + f.backbone_cpu_ms) / images;
  const double front_wall = (f.load_ms + f.backbone_ms) / images;
  std::printf("amq compare on %s: %zu fit, %zu held-out, %zu test images; %s\n",
              o.data.string().c_str(), f.fit.size(), f.held.size(), f.test.size(),
              f.key["features"].value("backbone", "").c_str());
  std::printf("threads %d, load average %s before, %s after\n", omp_get_max_threads(),
              load_before.c_str(), load_after.c_str());
  std::printf("load + backbone per image: %.1f ms CPU, %.1f ms wall\n\n", front_cpu, front_wall);
  std::printf("%-10s %7s %7s %7s %12s %12s %12s %9s %12s %12s %12s %12s %9s\n", "method", "image",
              "pixel", "AU-PRO", "scoring ms", "scoring ms", "overall ms", "images/s", "filter or",
              "model", "memory", "memory", "fit s");
  std::printf("%-10s %7s %7s %7s %12s %12s %12s %9s %12s %12s %12s %12s %9s\n", "", "AUROC",
              "AUROC", "", "CPU", "wall", "CPU", "CPU", "index", "bytes", "fitting", "scoring",
              "CPU");
  nlohmann::json json;
  json["data"] = o.data.string();
  json["load_average"] = {{"before", load_before}, {"after", load_after}};
  json["threads"] = omp_get_max_threads();
  json["front_ms_per_image"] = {{"cpu", front_cpu}, {"wall", front_wall}};
  for (const MethodRun& run : runs) {
    const double scoring_cpu = (run.times.encode_cpu_ms + run.times.query_cpu_ms) / n;
    const double scoring_wall = (run.times.encode_ms + run.times.query_ms) / n;
    const double overall_cpu = front_cpu + scoring_cpu + run.upsample_cpu_ms / n;
    std::printf("%-10s %7s %7s %7s %12.2f %12.2f %12.2f %9.2f %12s %12s %12s %12s %9.1f\n",
                run.method.c_str(), metric(run.overall.image_auroc).c_str(),
                metric(run.overall.pixel_auroc).c_str(), metric(run.overall.au_pro).c_str(),
                scoring_cpu, scoring_wall, overall_cpu, 1000.0 / overall_cpu,
                mib(run.structure_bytes).c_str(), mib(run.model_bytes).c_str(),
                run.peaks_measured ? mib(run.fit_peak).c_str() : "n/a",
                run.peaks_measured ? mib(run.score_peak).c_str() : "n/a", run.fit_cpu_ms / 1000.0);
    json["methods"].push_back(
        {{"method", run.method},
         {"description", run.description},
         {"image_auroc", run.overall.image_auroc ? nlohmann::json(*run.overall.image_auroc)
                                                 : nlohmann::json(nullptr)},
         {"pixel_auroc", run.overall.pixel_auroc ? nlohmann::json(*run.overall.pixel_auroc)
                                                 : nlohmann::json(nullptr)},
         {"au_pro",
          run.overall.au_pro ? nlohmann::json(*run.overall.au_pro) : nlohmann::json(nullptr)},
         {"cpu_ms_per_image",
          {{"encode", run.times.encode_cpu_ms / n},
           {"query", run.times.query_cpu_ms / n},
           {"scoring", scoring_cpu},
           {"upsample", run.upsample_cpu_ms / n},
           {"overall", overall_cpu}}},
         {"wall_ms_per_image",
          {{"encode", run.times.encode_ms / n},
           {"query", run.times.query_ms / n},
           {"scoring", scoring_wall},
           {"upsample", run.times.upsample_ms / n}}},
         {"images_per_second_cpu", 1000.0 / overall_cpu},
         {"structure_bytes", run.structure_bytes},
         {"model_bytes", run.model_bytes},
         {"fit_peak_bytes",
          run.peaks_measured ? nlohmann::json(run.fit_peak) : nlohmann::json(nullptr)},
         {"score_peak_bytes",
          run.peaks_measured ? nlohmann::json(run.score_peak) : nlohmann::json(nullptr)},
         {"fit_seconds", {{"cpu", run.fit_cpu_ms / 1000.0}, {"wall", run.fit_ms / 1000.0}}}});
  }
  std::printf("\n");
  for (const MethodRun& run : runs) std::printf("%s\n", run.description.c_str());

  const auto find = [&](const char* name) -> const MethodRun* {
    for (const MethodRun& run : runs) {
      if (run.method == name) return &run;
    }
    return nullptr;
  };
  const MethodRun* amq = find("amq");
  const MethodRun* hnsw = find("knn-hnsw");
  if (amq != nullptr && hnsw != nullptr) {
    const double time_ratio = (hnsw->times.encode_cpu_ms + hnsw->times.query_cpu_ms) /
                              (amq->times.encode_cpu_ms + amq->times.query_cpu_ms);
    const double memory_ratio =
        static_cast<double>(hnsw->structure_bytes) / static_cast<double>(amq->structure_bytes);
    std::printf(
        "\nAMQ / kNN-HNSW: scoring time (CPU) %.4f (HNSW takes %.1fx as long); filter / "
        "index bytes %.4f (%.1fx smaller)",
        1.0 / time_ratio, time_ratio, 1.0 / memory_ratio, memory_ratio);
    json["amq_vs_hnsw"] = {{"scoring_time_ratio_cpu", 1.0 / time_ratio},
                           {"structure_bytes_ratio", 1.0 / memory_ratio}};
    if (amq->peaks_measured && hnsw->peaks_measured && hnsw->score_peak > 0) {
      const double peak_ratio =
          static_cast<double>(amq->score_peak) / static_cast<double>(hnsw->score_peak);
      std::printf("; memory while scoring %.4f", peak_ratio);
      json["amq_vs_hnsw"]["score_memory_ratio"] = peak_ratio;
    }
    std::printf("\n");
  }
  if (!o.report.empty()) write_file_atomically(o.report, json.dump(2) + "\n");
}

}  // namespace amq::cli
