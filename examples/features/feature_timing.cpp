// Milliseconds per image of the feature sources at several batch sizes.
// Usage: amq_feature_timing MOBILENET_WEIGHTS [IMAGES_PER_RUN] [THREADS] [BATCH_SIZES...]
// THREADS = 0 uses OpenMP's thread count (OMP_NUM_THREADS or all cores).
// MobileNetV2 runs on the given weights, WRN50 on seeded random weights (its speed does not
// depend on the values). Images are 256×256 noise, so both networks resize them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "amq/error.hpp"
#include "feature_source.hpp"

namespace {

using namespace amq::features;

struct Timing {
  double wall_ms = 0.0;  // elapsed time per image
  double cpu_ms = 0.0;   // processor time of all threads per image: the work, not the waiting
};

Timing time_per_image(FeatureSource& source, const std::vector<RgbImage>& images) {
  source.extract_batch({images.front()});  // warm-up: first-call allocations
  const std::clock_t cpu_start = std::clock();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<FeatureMapBuffer> maps = source.extract_batch(images);
  const std::chrono::duration<double, std::milli> elapsed =
      std::chrono::steady_clock::now() - start;
  const double cpu = 1000.0 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  const auto count = static_cast<double>(maps.size());
  return {elapsed.count() / count, cpu / count};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MOBILENET_WEIGHTS [IMAGES_PER_RUN] [THREADS] [BATCHES...]\n",
                 argv[0]);
    return 2;
  }
  const std::string mobilenet_weights = argv[1];
  const std::size_t image_count = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 16;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  std::vector<std::size_t> batch_sizes;
  for (int i = 4; i < argc; ++i) batch_sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (batch_sizes.empty()) batch_sizes = {1, 8};

  std::mt19937 random(1);
  std::vector<std::vector<std::uint8_t>> pixels(image_count,
                                                std::vector<std::uint8_t>(256 * 256 * 3));
  std::vector<RgbImage> images;
  for (auto& image : pixels) {
    for (auto& byte : image) byte = static_cast<std::uint8_t>(random() & 0xff);
    images.push_back({image.data(), 256, 256});
  }

  try {
    std::printf("%zu images per run, threads %d (0 = OpenMP's count)\n", image_count, threads);
    std::printf(
        "| backbone | feature map | batch | threads | wall ms / image | CPU ms / image |\n"
        "|---|---|---|---|---:|---:|\n");
    for (const Backbone backbone : {Backbone::mobilenet_v2, Backbone::wide_resnet50_2}) {
      for (const std::size_t batch : batch_sizes) {
        FeatureOptions options = default_options(backbone);
        options.batch_size = batch;
        options.threads = threads;
        const std::string weights = backbone == Backbone::mobilenet_v2 ? mobilenet_weights : "";
        auto source = make_feature_source(backbone, weights, options);
        const Timing timing = time_per_image(*source, images);
        std::printf("| %s | %zux%zux%zu | %zu | %d | %.1f | %.1f |\n",
                    backbone == Backbone::mobilenet_v2 ? "mobilenet_v2" : "wide_resnet50_2",
                    source->width(), source->height(), source->depth(), batch,
                    at::get_num_threads(), timing.wall_ms, timing.cpu_ms);
        std::fflush(stdout);
      }
    }
  } catch (const amq::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
