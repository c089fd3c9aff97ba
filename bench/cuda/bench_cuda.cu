// CUDA backend benchmarks, timed with CUDA events on a stream:
//   encode    P = 784 pixels, D in {288, 3584}, G = 2048: ms per feature map;
//   contains  split-block and classic filters from 1 MiB to 8 GiB: keys/s, beside the
//             measured false-positive rate, bits per inserted key and fill;
//   score     a 28 x 28 x 3584 map, G = 2048, batches of 1 and 32 maps: ms per map;
// each with the peak device memory held by amq's buffers and in use on the device.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "amq/cuda/amq_scorer.cuh"
#include "amq/cuda/bloom_filter.cuh"
#include "amq/cuda/device_buffer.cuh"
#include "amq/cuda/lsh_encoder.cuh"

namespace {

using amq::cuda::DeviceBuffer;

constexpr double kMiB = 1024.0 * 1024.0;

// keys[i] = a 64-bit mix of (seed, i): distinct random-looking keys made on the device.
__global__ void make_keys(std::uint64_t* keys, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    keys[i] = amq::detail::murmur3_fmix64(seed ^ amq::detail::murmur3_fmix64(i + 1));
  }
}

// values[i] uniform in [-1, 1), from a mix of (seed, i): synthetic features.
__global__ void make_features(float* values, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    const std::uint64_t bits = amq::detail::murmur3_fmix64(seed ^ amq::detail::murmur3_fmix64(i));
    values[i] = static_cast<float>(bits >> 40) * 0x1.0p-23f - 1.0f;
  }
}

void fill_keys(DeviceBuffer<std::uint64_t>& keys, std::uint64_t seed, cudaStream_t stream) {
  make_keys<<<amq::cuda::grid_size(keys.size(), 256), 256, 0, stream>>>(keys.data(), keys.size(),
                                                                        seed);
  AMQ_CUDA_CHECK_LAUNCH();
}

void fill_features(DeviceBuffer<float>& values, std::uint64_t seed, cudaStream_t stream) {
  make_features<<<amq::cuda::grid_size(values.size(), 256), 256, 0, stream>>>(values.data(),
                                                                              values.size(), seed);
  AMQ_CUDA_CHECK_LAUNCH();
}

bool skip_without_device(benchmark::State& state) {
  if (amq::cuda::device_available()) return false;
  state.SkipWithError("no CUDA device");
  return true;
}

// Device memory in use (all processes and the context included), in MiB.
double device_used_mib() {
  std::size_t free = 0, total = 0;
  AMQ_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return static_cast<double>(total - free) / kMiB;
}

void report_memory(benchmark::State& state, double used_mib) {
  state.counters["amq_peak_MiB"] = static_cast<double>(amq::cuda::memory_stats().peak_bytes) / kMiB;
  state.counters["device_used_MiB"] = used_mib;
}

// Times `work` on `stream` once per iteration with CUDA events; returns total milliseconds.
template <class Work>
double time_iterations(benchmark::State& state, cudaStream_t stream, Work&& work) {
  amq::cuda::Event start, stop;
  double total_ms = 0.0;
  for (auto _ : state) {
    start.record(stream);
    work();
    stop.record(stream);
    stop.synchronize();
    const double ms = stop.ms_since(start);
    state.SetIterationTime(ms / 1e3);
    total_ms += ms;
  }
  return total_ms;
}

// range(0): D; range(1): 0 dense projection (cuBLAS), 1 structured (Walsh–Hadamard kernel).
void BM_Encode(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const auto dim = static_cast<std::size_t>(state.range(0));
  const std::size_t pixels = 784, hashes = 2048;
  amq::cuda::reset_peak_memory();
  amq::cuda::Stream stream;
  const amq::LshParams params{dim, hashes, 1.0f, 1};
  const auto made = state.range(1) != 0
                        ? std::make_unique<amq::cuda::LshEncoder>(
                              amq::LshEncoder<amq::StructuredProjection>(params))
                        : std::make_unique<amq::cuda::LshEncoder>(params);
  amq::cuda::LshEncoder& encoder = *made;
  DeviceBuffer<float> features(pixels * dim);
  DeviceBuffer<std::int32_t> codes(pixels * hashes);
  fill_features(features, 2, stream.get());
  encoder.encode_async(features.data(), pixels, codes.data(), stream.get());  // warm-up
  encoder.check_async_errors(stream.get());

  const double total_ms = time_iterations(state, stream.get(), [&] {
    encoder.encode_async(features.data(), pixels, codes.data(), stream.get());
  });
  encoder.check_async_errors(stream.get());
  state.counters["ms_per_map"] = total_ms / static_cast<double>(state.iterations());
  report_memory(state, device_used_mib());
}
BENCHMARK(BM_Encode)
    ->ArgNames({"D", "structured"})
    ->Args({288, 0})
    ->Args({3584, 0})
    ->Args({288, 1})
    ->Args({3584, 1})
    ->UseManualTime()
    ->Iterations(200)
    ->Unit(benchmark::kMillisecond);

// Filter of 2^range(0) bytes; range(1): 0 split-block, 1 classic with B = 11 (the best B at
// 16 bits per key) for every size, so that the sweep changes only the memory behind the probes.
void BM_Contains(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const std::uint64_t bits = std::uint64_t{8} << state.range(0);
  const bool classic = state.range(1) == 1;
  // At most 2^27 inserted keys: large filters are filled lightly (fill is reported), which
  // keeps the set-up of an 8 GiB filter to a second.
  const std::size_t inserted =
      static_cast<std::size_t>(std::min<std::uint64_t>(bits / 16, 1u << 27));
  const std::size_t queries = std::size_t{1} << 26;
  amq::cuda::reset_peak_memory();
  amq::cuda::Stream stream;
  DeviceBuffer<std::uint64_t> keys(std::max(inserted, queries));
  DeviceBuffer<unsigned long long> hits(1);

  const auto run = [&](auto& filter) {
    keys.reserve_discard(inserted);
    fill_keys(keys, 11, stream.get());
    filter.add_async(keys.data(), inserted, stream.get());
    fill_keys(keys, 12, stream.get());  // fresh keys: every hit is a false positive
    stream.synchronize();
    const double used = device_used_mib();
    const double total_ms = time_iterations(state, stream.get(), [&] {
      filter.count_async(keys.data(), queries, hits.data(), stream.get());
    });
    unsigned long long false_positives = 0;
    hits.copy_to_host(&false_positives, 1);
    const double seconds = total_ms / 1e3;
    state.counters["keys_per_s"] =
        static_cast<double>(queries) * static_cast<double>(state.iterations()) / seconds;
    state.counters["fpr"] = static_cast<double>(false_positives) / static_cast<double>(queries);
    state.counters["bits_per_key"] = static_cast<double>(bits) / static_cast<double>(inserted);
    state.counters["probes"] = filter.params().probes;
    state.counters["filter_MiB"] = static_cast<double>(filter.size_bytes()) / kMiB;
    report_memory(state, used);
  };
  if (classic) {
    amq::cuda::BloomFilter<amq::ClassicBloom> filter({bits, 11, 3});
    run(filter);
  } else {
    amq::cuda::BloomFilter<amq::SplitBlockBloom> filter({bits, 8, 3});
    run(filter);
  }
}
BENCHMARK(BM_Contains)
    ->ArgNames({"log2_bytes", "classic"})
    ->ArgsProduct({{20, 22, 24, 26, 28, 30, 32, 33}, {0, 1}})
    ->UseManualTime()
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond);

// range(0): maps per batch; range(1): 0 split-block, 1 classic. Filter 2^30 bits (128 MiB),
// trained on the device with 8 synthetic maps.
template <class Policy>
void score_benchmark(benchmark::State& state) {
  const std::size_t width = 28, height = 28, dim = 3584, hashes = 2048;
  const auto batch = static_cast<std::size_t>(state.range(0));
  amq::cuda::reset_peak_memory();
  amq::cuda::Stream stream;
  const amq::LshEncoder<> host_encoder({dim, hashes, 4.0f, 5});
  amq::cuda::AmqScorer<Policy> scorer(host_encoder, {std::uint64_t{1} << 30, 7, 1}, width, height);
  const std::size_t values = width * height * dim;
  DeviceBuffer<float> features(std::max<std::size_t>(8, batch) * values);
  DeviceBuffer<float> scores(batch * width * height);
  fill_features(features, 21, stream.get());
  scorer.add_async(features.data(), 8, stream.get());
  fill_features(features, 22, stream.get());
  scorer.score_async(features.data(), batch, scores.data(), stream.get());  // warm-up
  scorer.check_async_errors(stream.get());
  const double used = device_used_mib();

  const double total_ms = time_iterations(state, stream.get(), [&] {
    scorer.score_async(features.data(), batch, scores.data(), stream.get());
  });
  scorer.check_async_errors(stream.get());
  state.counters["ms_per_map"] =
      total_ms / static_cast<double>(state.iterations()) / static_cast<double>(batch);
  report_memory(state, used);
}

void BM_Score(benchmark::State& state) {
  if (skip_without_device(state)) return;
  if (state.range(1) == 1) {
    score_benchmark<amq::ClassicBloom>(state);
  } else {
    score_benchmark<amq::SplitBlockBloom>(state);
  }
}
BENCHMARK(BM_Score)
    ->ArgNames({"batch", "classic"})
    ->ArgsProduct({{1, 32}, {0, 1}})
    ->UseManualTime()
    ->Iterations(50)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (amq::cuda::device_available()) {
    int device = 0;
    cudaDeviceProp properties{};
    AMQ_CUDA_CHECK(cudaGetDevice(&device));
    AMQ_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    benchmark::AddCustomContext("cuda_device", properties.name);
    benchmark::AddCustomContext(
        "cuda_memory_GiB",
        std::to_string(static_cast<double>(properties.totalGlobalMem) / (1024.0 * kMiB)));
  } else {
    benchmark::AddCustomContext("cuda_device", "none");
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
