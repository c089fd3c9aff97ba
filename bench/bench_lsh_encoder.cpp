// Encoder speed on the paper's shape: one feature map of P = 784 pixels (a 28 × 28 grid),
// D = 288 or 3584 channels, G = 2048 hash functions. BM_Sgemm times the GEMM alone on the
// same shape in the same run, the ceiling the full encode (GEMM + quantisation) is held to.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "amq/lsh_encoder.hpp"
#include "amq/random.hpp"

namespace {

constexpr std::size_t kPixels = 784;
constexpr std::size_t kHashes = 2048;

/// One encoder and one feature map per D, built once outside the timed loops.
struct Setup {
  amq::LshEncoder<> encoder;
  std::vector<float> features;

  explicit Setup(std::size_t dim)
      : encoder(amq::LshParams{dim, kHashes, 1.0f, 42}), features(kPixels * dim) {
    amq::Random random(dim);
    // Post-ReLU CNN features are non-negative; |N(0, 1)| has a comparable spread.
    for (auto& v : features) v = static_cast<float>(std::abs(random.gaussian()));
  }
};

const Setup& setup_for(std::size_t dim) {
  static std::map<std::size_t, std::unique_ptr<Setup>> setups;
  auto& slot = setups[dim];
  if (!slot) slot = std::make_unique<Setup>(dim);
  return *slot;
}

void set_counters(benchmark::State& state, std::size_t dim) {
  state.counters["P"] = kPixels;
  state.counters["D"] = static_cast<double>(dim);
  state.counters["G"] = kHashes;
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * kPixels * dim * kHashes * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Encode(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const Setup& s = setup_for(dim);
  std::vector<std::int32_t> codes(kPixels * kHashes);
  for (auto _ : state) {
    s.encoder.encode({s.features.data(), kPixels, dim}, {codes.data(), kPixels, kHashes});
    benchmark::DoNotOptimize(codes.data());
  }
  set_counters(state, dim);
}

void BM_Sgemm(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const Setup& s = setup_for(dim);
  std::vector<float> projected(kPixels * kHashes);
  for (auto _ : state) {
    amq::detail::project_sgemm({s.features.data(), kPixels, dim}, s.encoder.directions().data(),
                               {projected.data(), kPixels, kHashes});
    benchmark::DoNotOptimize(projected.data());
  }
  set_counters(state, dim);
}

void BM_Quantize(benchmark::State& state) {
  const bool avx2 = state.range(0) != 0;
  if (avx2 && !amq::detail::has_avx2()) {
    state.SkipWithError("no AVX2 on this processor");
    return;
  }
  const Setup& s = setup_for(288);
  std::vector<float> projected(kPixels * kHashes);
  amq::detail::project_sgemm({s.features.data(), kPixels, 288}, s.encoder.directions().data(),
                             {projected.data(), kPixels, kHashes});
  std::vector<std::int32_t> codes(kPixels * kHashes);
  for (auto _ : state) {
    for (std::size_t p = 0; p < kPixels; ++p) {
      amq::detail::quantize_row(projected.data() + p * kHashes, s.encoder.offsets().data(), 1.0f,
                                kHashes, codes.data() + p * kHashes, avx2);
    }
    benchmark::DoNotOptimize(codes.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPixels * kHashes));
}

}  // namespace

BENCHMARK(BM_Encode)->Arg(288)->Arg(3584)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Sgemm)->Arg(288)->Arg(3584)->Unit(benchmark::kMillisecond)->UseRealTime();
// Quantisation of one feature map's projected values on one thread: scalar (0) and AVX2 (1).
BENCHMARK(BM_Quantize)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
