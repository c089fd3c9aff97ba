// Bloom filter lookups on one core, for both policies, from cache-resident (256 KiB) to
// memory-resident (4 GiB) filters. Each figure carries its quality beside it: the measured
// false-positive rate, bits per inserted key and the fill.
//
// Filling: keys are a generated stream added in bulk, 16 bits per key up to 2^25 keys; larger
// filters keep 2^25 keys (so their bits per key is higher and their FPR near zero), which
// holds the fill time of the 4 GiB filter to seconds. Rates are per CPU second of the one
// benchmark thread (OpenMP limited to one thread), so load from other processes on the
// machine does not count against them. Lookup cost does not depend on the fill
// for present keys (every probe is read); absent keys on a sparse classic filter stop early.
//
// The floor: BM_RandomLoads reads one random 32-byte block per key from a buffer of the same
// size and allocation (2 MiB-aligned, huge-page advice), with nothing else in the loop. No
// filter that touches memory once per key can answer faster than that.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "amq/bloom_filter.hpp"
#include "amq/detail/aligned_allocator.hpp"
#include "amq/random.hpp"

namespace {

constexpr double kBitsPerKey = 16.0;
constexpr std::uint64_t kMaxKeys = std::uint64_t{1} << 25;
constexpr std::size_t kQueries = std::size_t{1} << 20;
constexpr std::size_t kFprQueries = std::size_t{1} << 22;
constexpr std::uint32_t kClassicProbes = 11;  // optimal at 16 bits per key: 16 · ln 2

std::vector<std::uint64_t> key_stream(std::size_t n, std::uint64_t seed) {
  amq::Random random(seed);
  std::vector<std::uint64_t> keys(n);
  for (auto& k : keys) k = random.next_u64();
  return keys;
}

/// The filter under test, kept across the repetitions and hit/miss variants of one size and
/// replaced (old one freed first) when the next size starts.
template <class Policy>
struct Fixture {
  std::uint64_t bytes = 0;
  std::unique_ptr<amq::BloomFilter<Policy>> filter;
  std::vector<std::uint64_t> inserted;
  double fpr = 0.0;
  double fill = 0.0;

  static Fixture& get(std::uint64_t bytes) {
    static Fixture fixture;
    if (fixture.bytes != bytes) {
      fixture.filter.reset();
      fixture.build(bytes);
    }
    return fixture;
  }

  void build(std::uint64_t size) {
    bytes = size;
    const std::uint64_t bits = size * 8;
    const auto n =
        std::min<std::uint64_t>(kMaxKeys, static_cast<std::uint64_t>(bits / kBitsPerKey));
    filter = std::make_unique<amq::BloomFilter<Policy>>(amq::BloomParams{bits, kClassicProbes, 1});
    inserted = key_stream(n, 2);
    filter->add(inserted.data(), inserted.size());
    const auto absent = key_stream(kFprQueries, 3);
    fpr = static_cast<double>(filter->count(absent.data(), absent.size())) / kFprQueries;
    fill = filter->fill();
  }
};

/// range(0): filter size in bytes; range(1): 1 = query inserted keys, 0 = query fresh keys.
template <class Policy>
void BM_Contains(benchmark::State& state) {
  omp_set_num_threads(1);
  auto& fixture = Fixture<Policy>::get(static_cast<std::uint64_t>(state.range(0)));
  const bool present = state.range(1) != 0;
  std::vector<std::uint64_t> queries = key_stream(kQueries, 4);
  if (present) {
    for (std::size_t i = 0; i < kQueries; ++i) {
      queries[i] = fixture.inserted[queries[i] % fixture.inserted.size()];
    }
  }
  std::vector<std::uint8_t> found(kQueries);
  for (auto _ : state) {
    fixture.filter->contains(queries.data(), queries.size(), found.data());
    benchmark::DoNotOptimize(found.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kQueries));
  state.counters["fpr"] = fixture.fpr;
  state.counters["bits_per_key"] =
      static_cast<double>(fixture.filter->params().bits) / fixture.inserted.size();
  state.counters["fill"] = fixture.fill;
  state.counters["probes"] = fixture.filter->params().probes;
  state.counters["MiB"] = static_cast<double>(fixture.filter->size_bytes()) / (1 << 20);
}

/// range(0): buffer size in bytes. One aligned 32-byte block per key, chosen from the key's
/// high bits by a multiply-shift, folded into one byte per key as `contains` writes.
void BM_RandomLoads(benchmark::State& state) {
  using Block = std::array<std::uint64_t, 4>;
  const auto blocks = static_cast<std::uint64_t>(state.range(0)) / sizeof(Block);
  std::vector<Block, amq::detail::AlignedAllocator<Block>> buffer(blocks);
  amq::Random random(5);
  for (Block& b : buffer) b = {random.next_u64(), 1, 2, 3};
  const std::vector<std::uint64_t> queries = key_stream(kQueries, 4);
  std::vector<std::uint8_t> found(kQueries);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kQueries; ++i) {
      const auto index =
          static_cast<std::uint64_t>((static_cast<unsigned __int128>(queries[i]) * blocks) >> 64);
      const Block& b = buffer[index];
      found[i] = static_cast<std::uint8_t>((b[0] | b[1] | b[2] | b[3]) & 1);
    }
    benchmark::DoNotOptimize(found.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kQueries));
  state.counters["MiB"] = static_cast<double>(state.range(0)) / (1 << 20);
}

/// 256 KiB (L2-resident), 4 MiB (L3), 64 MiB, 1 GiB and 4 GiB (memory), each with present
/// and absent query keys.
void sizes(benchmark::internal::Benchmark* bench) {
  for (const std::int64_t bytes :
       {std::int64_t{256} << 10, std::int64_t{4} << 20, std::int64_t{64} << 20,
        std::int64_t{1} << 30, std::int64_t{4} << 30}) {
    bench->Args({bytes, 1})->Args({bytes, 0});
  }
}

}  // namespace

BENCHMARK_TEMPLATE(BM_Contains, amq::ClassicBloom)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_Contains, amq::SplitBlockBloom)->Apply(sizes);
BENCHMARK(BM_RandomLoads)
    ->Arg(std::int64_t{256} << 10)
    ->Arg(std::int64_t{4} << 20)
    ->Arg(std::int64_t{64} << 20)
    ->Arg(std::int64_t{1} << 30)
    ->Arg(std::int64_t{4} << 30);
