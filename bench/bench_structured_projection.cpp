// Encode time of the structured projection (sign flips + Walsh–Hadamard, O(D log D) per pixel)
// against the paper's dense projection (one sgemm, O(D·G) per pixel), on one feature map of
// P = 784 pixels and G = 2048 hash functions, at D = 288 (MobileNetV2) and D = 3584
// (Wide ResNet-50-2). Threads: OMP_NUM_THREADS (structured) and OPENBLAS_NUM_THREADS (dense).
// BM_StructuredProject times the transform alone, scalar (0) and AVX2 (1), on one thread.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "amq/lsh_encoder.hpp"
#include "amq/random.hpp"
#include "amq/structured_projection.hpp"

namespace {

constexpr std::size_t kPixels = 784;
constexpr std::size_t kHashes = 2048;

/// Post-ReLU-like features, |N(0, 1)|, one map per D, made once.
const std::vector<float>& features_for(std::size_t dim) {
  static std::map<std::size_t, std::vector<float>> cache;
  std::vector<float>& features = cache[dim];
  if (features.empty()) {
    features.resize(kPixels * dim);
    amq::Random random(dim);
    for (auto& v : features) v = static_cast<float>(std::abs(random.gaussian()));
  }
  return features;
}

template <class Projection>
const amq::LshEncoder<Projection>& encoder_for(std::size_t dim) {
  static std::map<std::size_t, std::unique_ptr<amq::LshEncoder<Projection>>> cache;
  auto& slot = cache[dim];
  if (!slot) {
    slot = std::make_unique<amq::LshEncoder<Projection>>(amq::LshParams{dim, kHashes, 1.0f, 42});
  }
  return *slot;
}

template <class Projection>
void BM_Encode(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto& encoder = encoder_for<Projection>(dim);
  const std::vector<float>& features = features_for(dim);
  std::vector<std::int32_t> codes(kPixels * kHashes);
  for (auto _ : state) {
    encoder.encode({features.data(), kPixels, dim}, {codes.data(), kPixels, kHashes});
    benchmark::DoNotOptimize(codes.data());
  }
  state.counters["D"] = static_cast<double>(dim);
  state.counters["pixels/s"] = benchmark::Counter(static_cast<double>(kPixels),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

void BM_StructuredProject(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const bool avx2 = state.range(1) != 0;
  if (avx2 && !amq::detail::has_avx2()) {
    state.SkipWithError("no AVX2 on this processor");
    return;
  }
  const auto& projection = encoder_for<amq::StructuredProjection>(dim).projection();
  const std::vector<float>& features = features_for(dim);
  std::vector<float> projected(kPixels * kHashes);
  for (auto _ : state) {
    projection.project({features.data(), kPixels, dim}, {projected.data(), kPixels, kHashes}, avx2);
    benchmark::DoNotOptimize(projected.data());
  }
  state.counters["D"] = static_cast<double>(dim);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_Encode, amq::DenseProjection)
    ->Arg(288)
    ->Arg(3584)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Encode, amq::StructuredProjection)
    ->Arg(288)
    ->Arg(3584)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_StructuredProject)
    ->Args({288, 0})
    ->Args({288, 1})
    ->Args({3584, 0})
    ->Args({3584, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
