// Tests of keys, MurmurHash3 and the Bloom filter policies: reference hash values, no false
// negatives, false-positive rates against theory, merge, raw words and parameter checks.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "amq/bloom_filter.hpp"
#include "amq/hashing.hpp"
#include "amq/random.hpp"

namespace {

std::uint64_t load_le64(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

/// MurmurHash3 x64_128 over a byte buffer of any length, written from the algorithm's
/// description: the independent reference the one-key version is checked against.
amq::Hash128 murmur3_bytes(const std::uint8_t* data, std::size_t length, std::uint32_t seed) {
  const std::uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
  std::uint64_t h1 = seed, h2 = seed;
  const std::size_t blocks = length / 16;
  for (std::size_t i = 0; i < blocks; ++i) {
    std::uint64_t k1 = load_le64(data + 16 * i, 8), k2 = load_le64(data + 16 * i + 8, 8);
    k1 = amq::detail::rotl64(k1 * c1, 31) * c2;
    h1 = (amq::detail::rotl64(h1 ^ k1, 27) + h2) * 5 + 0x52dce729;
    k2 = amq::detail::rotl64(k2 * c2, 33) * c1;
    h2 = (amq::detail::rotl64(h2 ^ k2, 31) + h1) * 5 + 0x38495ab5;
  }
  const std::uint8_t* tail = data + 16 * blocks;
  const std::size_t rest = length % 16;
  if (rest > 8) h2 ^= amq::detail::rotl64(load_le64(tail + 8, rest - 8) * c2, 33) * c1;
  if (rest > 0) h1 ^= amq::detail::rotl64(load_le64(tail, rest < 8 ? rest : 8) * c1, 31) * c2;
  h1 ^= length;
  h2 ^= length;
  h1 += h2;
  h2 += h1;
  h1 = amq::detail::murmur3_fmix64(h1);
  h2 = amq::detail::murmur3_fmix64(h2);
  h1 += h2;
  h2 += h1;
  return {h1, h2};
}

std::vector<std::uint64_t> random_keys(std::size_t n, std::uint64_t seed) {
  amq::Random random(seed);
  std::vector<std::uint64_t> keys(n);
  for (auto& k : keys) k = random.next_u64();
  return keys;
}

/// Fraction of `queries` fresh keys (never inserted) that the filter reports as present.
template <class Policy>
double measured_fpr(const amq::BloomFilter<Policy>& filter, std::size_t queries,
                    std::uint64_t seed) {
  const auto absent = random_keys(queries, seed);
  return static_cast<double>(filter.count(absent.data(), absent.size())) / queries;
}

}  // namespace

TEST_CASE("MurmurHash3 x64_128 reproduces SMHasher's verification value") {
  // Key i is the bytes 0 … i−1 hashed with seed 256 − i; the 256 digests, concatenated
  // little-endian, are hashed with seed 0; the low 32 bits must be 0x6384BA69.
  std::uint8_t key[256];
  std::uint8_t digests[256 * 16];
  for (int i = 0; i < 256; ++i) {
    key[i] = static_cast<std::uint8_t>(i);
    const amq::Hash128 h = murmur3_bytes(key, static_cast<std::size_t>(i), 256 - i);
    for (int b = 0; b < 8; ++b) {
      digests[16 * i + b] = static_cast<std::uint8_t>(h.h1 >> (8 * b));
      digests[16 * i + 8 + b] = static_cast<std::uint8_t>(h.h2 >> (8 * b));
    }
  }
  const amq::Hash128 final_hash = murmur3_bytes(digests, sizeof digests, 0);
  CHECK(static_cast<std::uint32_t>(final_hash.h1) == 0x6384BA69U);
}

TEST_CASE("the one-key MurmurHash3 equals the byte-buffer algorithm on the key's 8 bytes") {
  amq::Random random(1);
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t key = i < 3 ? static_cast<std::uint64_t>(i) : random.next_u64();
    const auto seed = static_cast<std::uint32_t>(random.next_u64());
    std::uint8_t bytes[8];
    for (int b = 0; b < 8; ++b) bytes[b] = static_cast<std::uint8_t>(key >> (8 * b));
    const amq::Hash128 expected = murmur3_bytes(bytes, 8, seed);
    const amq::Hash128 actual = amq::murmur3_x64_128(key, seed);
    REQUIRE(actual.h1 == expected.h1);
    REQUIRE(actual.h2 == expected.h2);
  }
}

TEST_CASE("keys of different (k, code) pairs differ") {
  static_assert(amq::make_key(1, 0) == (std::uint64_t{1} << 32), "k in the high half");
  static_assert(amq::make_key(0, -1) == 0xffffffffULL, "code bits in the low half");
  std::set<std::uint64_t> keys;
  for (std::uint32_t k = 0; k < 50; ++k) {
    for (std::int32_t code = -50; code < 50; ++code) keys.insert(amq::make_key(k, code));
  }
  keys.insert(amq::make_key(0, INT32_MIN));
  keys.insert(amq::make_key(0, INT32_MAX));
  keys.insert(amq::make_key(UINT32_MAX, 0));
  CHECK(keys.size() == 50 * 100 + 3);
}

TEST_CASE_TEMPLATE("no false negatives, single and bulk", Policy, amq::ClassicBloom,
                   amq::SplitBlockBloom) {
  // Sizes include one that is not a multiple of 32 bits and an overfull filter.
  for (const std::uint64_t bits :
       {std::uint64_t{1000}, std::uint64_t{1} << 16, std::uint64_t{3} << 18}) {
    amq::BloomFilter<Policy> single(amq::BloomParams{bits, 5, 17});
    amq::BloomFilter<Policy> bulk(amq::BloomParams{bits, 5, 17});
    const auto keys = random_keys(bits / 4, bits);
    for (const auto key : keys) single.add(key);
    bulk.add(keys.data(), keys.size());
    CHECK(single.words() == bulk.words());

    std::vector<std::uint8_t> found(keys.size(), 0);
    bulk.contains(keys.data(), keys.size(), found.data());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      REQUIRE(found[i] == 1);
      REQUIRE(single.contains(keys[i]));
    }
    CHECK(bulk.count(keys.data(), keys.size()) == keys.size());
  }
}

TEST_CASE_TEMPLATE("bulk contains equals single-key contains, also on the parallel path", Policy,
                   amq::ClassicBloom, amq::SplitBlockBloom) {
  amq::BloomFilter<Policy> filter(amq::BloomParams{std::uint64_t{1} << 16, 4, 3});
  const auto inserted = random_keys(9000, 5);
  filter.add(inserted.data(), inserted.size());
  auto queries = random_keys(200000, 6);  // 49 chunks: runs in parallel
  std::copy(inserted.begin(), inserted.end(), queries.begin() + 1000);
  std::vector<std::uint8_t> found(queries.size(), 2);
  filter.contains(queries.data(), queries.size(), found.data());
  std::size_t hits = 0;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    REQUIRE(found[i] == (filter.contains(queries[i]) ? 1 : 0));
    hits += found[i];
  }
  CHECK(filter.count(queries.data(), queries.size()) == hits);
  CHECK(hits >= inserted.size());
  CHECK(hits < queries.size());
}

TEST_CASE_TEMPLATE("measured false-positive rate is within 1.5x of theory at several fills", Policy,
                   amq::ClassicBloom, amq::SplitBlockBloom) {
  const std::uint64_t bits = std::uint64_t{1} << 21;
  for (const double bits_per_key : {4.0, 8.0, 12.0, 16.0}) {
    const auto n = static_cast<std::uint64_t>(bits / bits_per_key);
    const std::uint32_t probes = Policy::best_probes(bits, static_cast<double>(n));
    amq::BloomFilter<Policy> filter(amq::BloomParams{bits, probes, 11});
    const auto keys = random_keys(n, 100 + n);
    filter.add(keys.data(), keys.size());

    const double theory = Policy::expected_fpr(bits, probes, static_cast<double>(n));
    const double measured = measured_fpr(filter, std::size_t{1} << 21, 7 + n);
    CAPTURE(bits_per_key);
    CAPTURE(theory);
    CAPTURE(measured);
    REQUIRE(measured > 0.0);  // at least hundreds of false positives expected at these fills
    CHECK(measured < 1.5 * theory);
    CHECK(measured > theory / 1.5);
    CHECK(filter.estimated_fpr() < 1.5 * measured);
    CHECK(filter.estimated_fpr() > measured / 1.5);
  }
}

TEST_CASE("split-block AVX2 path sets and finds exactly the bits of the scalar layout") {
  const amq::BloomParams params{std::uint64_t{1} << 15, 8, 23};
  amq::BloomFilter<amq::SplitBlockBloom> filter(params);
  const auto keys = random_keys(3000, 9);
  filter.add(keys.data(), keys.size());  // the AVX2 path where available

  std::vector<std::uint32_t> scalar(filter.words().size(), 0);
  for (const auto key : keys) {
    const auto loc = amq::SplitBlockBloom::locate(filter.params(), key);
    amq::SplitBlockBloom::insert(scalar.data(), filter.params(), loc);
    // Exactly one bit per word of the chosen block.
    for (int i = 0; i < 8; ++i) {
      REQUIRE(amq::detail::popcount32(amq::SplitBlockBloom::word_mask(loc.pattern, i)) == 1);
    }
  }
  CHECK(std::equal(scalar.begin(), scalar.end(), filter.words().begin()));

  const auto queries = random_keys(50000, 10);
  std::vector<std::uint8_t> found(queries.size());
  filter.contains(queries.data(), queries.size(), found.data());
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const auto loc = amq::SplitBlockBloom::locate(filter.params(), queries[i]);
    REQUIRE((found[i] == 1) == amq::SplitBlockBloom::query(scalar.data(), filter.params(), loc));
  }
  if (!amq::detail::has_avx2()) MESSAGE("no AVX2 here: the scalar path was compared to itself");
}

TEST_CASE_TEMPLATE("merge equals the filter of the union", Policy, amq::ClassicBloom,
                   amq::SplitBlockBloom) {
  const amq::BloomParams params{50000, 6, 4};
  const auto a_keys = random_keys(3000, 1), b_keys = random_keys(4000, 2);
  amq::BloomFilter<Policy> a(params), b(params), both(params);
  a.add(a_keys.data(), a_keys.size());
  b.add(b_keys.data(), b_keys.size());
  both.add(a_keys.data(), a_keys.size());
  both.add(b_keys.data(), b_keys.size());
  CHECK(a.words() != both.words());
  a.merge(b);
  CHECK(a.words() == both.words());
  CHECK(a.count(b_keys.data(), b_keys.size()) == b_keys.size());
}

TEST_CASE_TEMPLATE("merge with different parameters throws", Policy, amq::ClassicBloom,
                   amq::SplitBlockBloom) {
  amq::BloomFilter<Policy> filter(amq::BloomParams{4096, 6, 4});
  CHECK_THROWS_AS(filter.merge(amq::BloomFilter<Policy>(amq::BloomParams{8192, 6, 4})), amq::Error);
  CHECK_THROWS_AS(filter.merge(amq::BloomFilter<Policy>(amq::BloomParams{4096, 6, 5})), amq::Error);
  if constexpr (std::is_same_v<Policy, amq::ClassicBloom>) {
    CHECK_THROWS_AS(filter.merge(amq::BloomFilter<Policy>(amq::BloomParams{4096, 7, 4})),
                    amq::Error);
  }
}

TEST_CASE_TEMPLATE("raw words round-trip; a wrong word count throws", Policy, amq::ClassicBloom,
                   amq::SplitBlockBloom) {
  const amq::BloomParams params{5000, 5, 8};
  amq::BloomFilter<Policy> filter(params);
  const auto keys = random_keys(500, 3);
  filter.add(keys.data(), keys.size());

  const std::vector<std::uint32_t> words(filter.words().begin(), filter.words().end());
  const auto copy = amq::BloomFilter<Policy>::from_words(filter.params(), words);
  CHECK(copy.words() == filter.words());
  CHECK(copy.params() == filter.params());
  CHECK(copy.count(keys.data(), keys.size()) == keys.size());

  std::vector<std::uint32_t> longer = words;
  longer.push_back(0);
  std::vector<std::uint32_t> shorter(words.begin(), words.end() - 1);
  CHECK_THROWS_AS(amq::BloomFilter<Policy>::from_words(params, longer), amq::Error);
  CHECK_THROWS_AS(amq::BloomFilter<Policy>::from_words(params, shorter), amq::Error);
}

TEST_CASE("classic from_words refuses bits set past M") {
  const amq::BloomParams params{1000, 3, 0};  // 1000 = 31·32 + 8: 24 unused bits at the end
  std::vector<std::uint32_t> words(32, 0);
  CHECK_NOTHROW(amq::BloomFilter<>::from_words(params, words));
  words.back() = 1U << 8;
  CHECK_THROWS_AS(amq::BloomFilter<>::from_words(params, words), amq::Error);
}

TEST_CASE("parameters are validated; split-block rounds to whole blocks and 8 probes") {
  CHECK_THROWS_AS(amq::BloomFilter<>(amq::BloomParams{0, 3, 0}), amq::Error);
  CHECK_THROWS_AS(amq::BloomFilter<>(amq::BloomParams{100, 0, 0}), amq::Error);
  CHECK_THROWS_AS(amq::BloomFilter<>(amq::BloomParams{std::uint64_t{1} << 50, 3, 0}), amq::Error);
  CHECK_THROWS_AS(amq::BloomFilter<amq::SplitBlockBloom>(amq::BloomParams{0, 8, 0}), amq::Error);

  const amq::BloomFilter<amq::SplitBlockBloom> split(amq::BloomParams{1000, 3, 9});
  CHECK(split.params().bits == 1024);
  CHECK(split.params().probes == 8);
  CHECK(split.params().seed == 9);
  CHECK(split.size_bytes() == 128);
  CHECK(split.fill() == 0.0);

  const amq::BloomFilter<> classic(amq::BloomParams{1000, 3, 9});
  CHECK(classic.params().bits == 1000);
  CHECK(classic.size_bytes() == 32 * 4);
}

TEST_CASE("paper probe count follows eq. 5 and is at least 1") {
  CHECK(amq::paper_probe_count(1000, 100) == 7);   // 10 · ln 2 = 6.93
  CHECK(amq::paper_probe_count(1440, 100) == 10);  // 14.4 · ln 2 = 9.98
  CHECK(amq::paper_probe_count(100, 1000) == 1);   // 0.07 rounds to 0, raised to 1
  CHECK(amq::paper_probe_count(std::uint64_t{1} << 33, std::uint64_t{1} << 30) == 6);
  CHECK_THROWS_AS(amq::paper_probe_count(1000, 0), amq::Error);
  CHECK_THROWS_AS(amq::paper_probe_count(0, 10), amq::Error);
}

TEST_CASE_TEMPLATE("size_for_fpr gives the smallest filter meeting the target", Policy,
                   amq::ClassicBloom, amq::SplitBlockBloom) {
  const std::uint64_t n = 200000;
  for (const double target : {0.05, 0.01, 0.001}) {
    const amq::BloomParams params = amq::size_for_fpr<Policy>(n, target, 5);
    CAPTURE(target);
    CHECK(params.seed == 5);
    CHECK(params.bits % Policy::granule_bits == 0);
    CHECK(Policy::expected_fpr(params.bits, params.probes, n) <= target);
    const std::uint64_t smaller = params.bits - Policy::granule_bits;
    CHECK(Policy::expected_fpr(smaller, Policy::best_probes(smaller, n), n) > target);

    amq::BloomFilter<Policy> filter(params);
    const auto keys = random_keys(n, 77);
    filter.add(keys.data(), keys.size());
    const double measured = measured_fpr(filter, std::size_t{1} << 21, 78);
    CAPTURE(measured);
    CHECK(measured < 1.5 * target);
  }
  // The classic optimum is -ln p / ln²2 ≈ 9.59 bits per key at p = 1%.
  if constexpr (std::is_same_v<Policy, amq::ClassicBloom>) {
    const auto params = amq::size_for_fpr<Policy>(n, 0.01, 0);
    CHECK(static_cast<double>(params.bits) / n == doctest::Approx(9.59).epsilon(0.02));
    CHECK(params.probes == 7);
  }
  CHECK_THROWS_AS(amq::size_for_fpr<Policy>(0, 0.01, 0), amq::Error);
  CHECK_THROWS_AS(amq::size_for_fpr<Policy>(n, 0.0, 0), amq::Error);
  CHECK_THROWS_AS(amq::size_for_fpr<Policy>(n, 1.0, 0), amq::Error);
}
