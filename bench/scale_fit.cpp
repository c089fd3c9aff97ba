// Training at the paper's scale: N = 3629 feature maps of 28 x 28 pixels x D = 3584 channels
// (Wide ResNet-50-2, stages 2-4, on all 15 MVTec AD categories), G = 2048 hash functions.
// The feature maps are synthetic and generated one at a time, so what this measures is the
// memory of AmqScorer's streaming fit (collect per map, then build), never a dataset held in
// memory: all maps at once would be N·W·H·D·4 = 40.8 GB, all inserted keys N·W·H·G·8 = 47 GB.
//
// Usage: scale_fit [images] [report_every]
// Prints the resident memory high-water mark (VmHWM) as training proceeds and at the end.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "amq/amq.hpp"

namespace {

constexpr std::size_t kWidth = 28;
constexpr std::size_t kHeight = 28;
constexpr std::size_t kDepth = 3584;
constexpr std::size_t kHashes = 2048;
constexpr std::size_t kPrototypes = 64;
constexpr float kNoise = 0.1f;

/// One line of /proc/self/status in kB ("VmHWM", "VmRSS"); 0 where it is missing.
std::size_t status_kb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return 0;
}

double gib(std::size_t kb) { return static_cast<double>(kb) / (1024.0 * 1024.0); }

/// Normal patches: each pixel is one of a few prototype vectors plus uniform noise, like the
/// recurring textures of normal images. The noise differs per image and pixel, so every map
/// brings new codes near the prototypes' buckets.
class SyntheticMaps {
 public:
  SyntheticMaps() : prototypes_(kPrototypes * kDepth) {
    amq::Random random(2024);
    for (float& v : prototypes_) v = static_cast<float>(random.gaussian());
  }

  void fill(std::size_t image, std::vector<float>& map) const {
    amq::Random random(amq::derive_seed(99, image));
    map.resize(kWidth * kHeight * kDepth);
    for (std::size_t p = 0; p < kWidth * kHeight; ++p) {
      const float* prototype = prototypes_.data() + ((p * 7 + image) % kPrototypes) * kDepth;
      float* pixel = map.data() + p * kDepth;
      for (std::size_t d = 0; d < kDepth; ++d) {
        // Uniform in [-sqrt(3), sqrt(3)) has unit variance.
        const float u = random.uniform_float() * 3.4641016f - 1.7320508f;
        pixel[d] = prototype[d] + kNoise * u;
      }
    }
  }

 private:
  std::vector<float> prototypes_;
};

}  // namespace

int main(int argc, char** argv) {
  const std::size_t images = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 3629;
  const std::size_t every = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 250;
  if (images == 0 || every == 0) {
    std::fprintf(stderr, "usage: scale_fit [images > 0] [report_every > 0]\n");
    return 2;
  }

  amq::ScorerParams params;
  params.lsh.dim = kDepth;
  params.lsh.hashes = kHashes;
  // The command line's default: ε = 0.03 σ, σ the spread of w·x (here about 1, the
  // prototypes' per-channel standard deviation).
  params.lsh.bucket_width = 0.03f;
  params.lsh.seed = 1;
  params.sizing = amq::SizingRule::paper;
  params.filter_bits = std::uint64_t{1} << 30;

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  amq::AmqScorer<> scorer(params);
  const SyntheticMaps generator;
  std::vector<float> map;
  std::printf("scale_fit: %zu maps of %zu x %zu x %zu, G = %zu\n", images, kWidth, kHeight, kDepth,
              kHashes);
  std::printf("%8s %10s %10s %10s\n", "images", "seconds", "VmRSS GiB", "VmHWM GiB");
  for (std::size_t i = 0; i < images; ++i) {
    generator.fill(i, map);
    scorer.collect(amq::FeatureMap{map.data(), kWidth, kHeight, kDepth});
    if ((i + 1) % every == 0 || i + 1 == images) {
      std::printf("%8zu %10.1f %10.3f %10.3f\n", i + 1, seconds(), gib(status_kb("VmRSS")),
                  gib(status_kb("VmHWM")));
      std::fflush(stdout);
    }
  }
  const double collect_s = seconds();
  const amq::SizingReport& report = scorer.build();
  const double build_s = seconds() - collect_s;

  std::printf("collect: %.1f s (%.1f ms per map), build: %.1f s\n", collect_s,
              1000.0 * collect_s / static_cast<double>(images), build_s);
  std::printf("keys: %llu inserted, %llu distinct; filter M = %llu bits, B = %u, est. FPR %.3g\n",
              static_cast<unsigned long long>(report.total_keys),
              static_cast<unsigned long long>(report.distinct_keys),
              static_cast<unsigned long long>(report.bits), report.probes, report.estimated_fpr);
  std::printf("peak resident memory (VmHWM): %.3f GiB\n", gib(status_kb("VmHWM")));
  return 0;
}
