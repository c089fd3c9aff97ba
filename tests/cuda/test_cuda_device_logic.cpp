// The per-element functions the CUDA kernels run (amq/cuda/device_logic.hpp), tested on the
// CPU against the CPU library: a GPU that runs them gets the CPU's keys, words and scores.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/cuda/device_logic.hpp"
#include "amq/random.hpp"
#include "amq/structured_projection.hpp"

namespace {

std::vector<std::uint64_t> random_keys(std::size_t n, std::uint64_t seed) {
  amq::Random random(seed);
  std::vector<std::uint64_t> keys(n);
  for (auto& key : keys) key = random.next_u64();
  return keys;
}

std::vector<float> gaussian_features(std::size_t n, std::uint64_t seed) {
  amq::Random random(seed);
  std::vector<float> values(n);
  for (auto& v : values) v = static_cast<float>(random.gaussian());
  return values;
}

// Words set by ProbeWords with plain |=, as the device insert does with atomicOr.
template <class Policy>
std::vector<std::uint32_t> insert_by_probe_words(const amq::BloomParams& params,
                                                 const std::vector<std::uint64_t>& keys) {
  std::vector<std::uint32_t> words(Policy::word_count(params), 0);
  for (const std::uint64_t key : keys) {
    amq::cuda::ProbeWords<Policy>::for_each(
        params, Policy::locate(params, key),
        [&](std::uint64_t word, std::uint32_t mask) { words[word] |= mask; });
  }
  return words;
}

template <class Policy>
void check_probe_words(const amq::BloomParams& requested) {
  amq::BloomFilter<Policy> filter(requested);
  const amq::BloomParams params = filter.params();
  const std::vector<std::uint64_t> keys = random_keys(5000, 7);
  filter.add(keys.data(), keys.size());

  const std::vector<std::uint32_t> words = insert_by_probe_words<Policy>(params, keys);
  REQUIRE(words.size() == filter.words().size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < words.size(); ++i) differing += words[i] != filter.words()[i];
  CHECK(differing == 0);
}

// A small trained scorer: maps of W x H pixels and D channels, G hash functions.
template <class Policy>
amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<Policy>> trained_scorer(
    std::vector<std::vector<float>>& storage) {
  amq::ScorerParams params;
  params.lsh = {16, 64, 2.0f, 11};
  params.sizing = amq::SizingRule::target_fpr;
  params.target_fpr = 1e-3;
  amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<Policy>> scorer(params);
  std::vector<amq::FeatureMap> maps;
  for (std::uint64_t i = 0; i < 4; ++i) {
    storage.push_back(gaussian_features(6 * 5 * 16, 100 + i));
    maps.push_back({storage.back().data(), 6, 5, 16});
  }
  scorer.fit(maps);
  return scorer;
}

// The fused scoring kernel's per-pixel loop, run on the host: projection, then for every hash
// function the probe of its key, then the pixel score.
template <class Scorer, class Policy>
std::vector<float> score_by_device_logic(const Scorer& scorer, const amq::FeatureMap& map) {
  const auto& encoder = scorer.encoder();
  const std::size_t g = encoder.hashes();
  std::vector<float> projected(map.pixels() * g);
  encoder.projection().project(map.matrix(), {projected.data(), map.pixels(), g});

  const auto& filter = scorer.filter();
  std::vector<float> scores(map.pixels());
  for (std::size_t p = 0; p < map.pixels(); ++p) {
    std::uint32_t found = 0;
    for (std::size_t k = 0; k < g; ++k) {
      const bool in_range = amq::cuda::probe_projected<Policy>(
          projected[p * g + k], encoder.offsets()[k], encoder.params().bucket_width,
          static_cast<std::uint32_t>(k), filter.words().data(), filter.params(), found);
      REQUIRE(in_range);
    }
    scores[p] = amq::cuda::pixel_score(found, static_cast<std::uint32_t>(g));
  }
  return scores;
}

template <class Policy>
void check_scores_match_cpu_scorer() {
  std::vector<std::vector<float>> storage;
  const auto scorer = trained_scorer<Policy>(storage);
  // One normal map (mostly found) and one new map (mostly not found): both ends of the score.
  storage.push_back(gaussian_features(6 * 5 * 16, 999));
  for (const std::vector<float>* values : {&storage.front(), &storage.back()}) {
    const amq::FeatureMap map{values->data(), 6, 5, 16};
    const std::vector<float> expected = scorer.score(map);
    const std::vector<float> actual = score_by_device_logic<decltype(scorer), Policy>(scorer, map);
    REQUIRE(actual.size() == expected.size());
    for (std::size_t p = 0; p < expected.size(); ++p) {
      CAPTURE(p);
      CHECK(actual[p] == expected[p]);
    }
  }
}

}  // namespace

TEST_CASE("ProbeWords sets the words BloomFilter::add sets") {
  SUBCASE("split-block") { check_probe_words<amq::SplitBlockBloom>({1 << 16, 8, 3}); }
  SUBCASE("classic, M not a multiple of 32") {
    check_probe_words<amq::ClassicBloom>({100003, 7, 5});
  }
  SUBCASE("classic, one probe") { check_probe_words<amq::ClassicBloom>({1 << 15, 1, 0}); }
}

TEST_CASE("split_block_contains answers as SplitBlockBloom::query") {
  amq::BloomFilter<amq::SplitBlockBloom> filter({1 << 12, 8, 1});
  const std::vector<std::uint64_t> inserted = random_keys(300, 1);
  filter.add(inserted.data(), inserted.size());
  const amq::BloomParams params = filter.params();

  std::size_t hits = 0;
  for (const std::uint64_t key : random_keys(4000, 2)) {
    const auto loc = amq::SplitBlockBloom::locate(params, key);
    std::uint32_t block[8];
    for (int i = 0; i < 8; ++i) block[i] = filter.words()[loc.block * 8 + i];
    const bool found = amq::cuda::split_block_contains(block, loc.pattern);
    CHECK(found == amq::SplitBlockBloom::query(filter.words().data(), params, loc));
    hits += found;
  }
  // The filter is filled enough that both answers occur, so both branches were compared.
  CHECK(hits > 0);
  CHECK(hits < 4000);
  for (const std::uint64_t key : inserted) {
    const auto loc = amq::SplitBlockBloom::locate(params, key);
    std::uint32_t block[8];
    for (int i = 0; i < 8; ++i) block[i] = filter.words()[loc.block * 8 + i];
    CHECK(amq::cuda::split_block_contains(block, loc.pattern));
  }
}

TEST_CASE("projected_key gives the encoder's keys") {
  const amq::LshEncoder<> encoder({32, 96, 0.5f, 3});
  const std::size_t pixels = 40, g = encoder.hashes();
  const std::vector<float> features = gaussian_features(pixels * encoder.dim(), 4);
  const amq::MatrixView<const float> matrix{features.data(), pixels, encoder.dim()};
  const std::vector<std::int32_t> codes = encoder.encode(matrix);
  std::vector<float> projected(pixels * g);
  encoder.projection().project(matrix, {projected.data(), pixels, g});

  std::size_t differing = 0;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const auto k = static_cast<std::uint32_t>(i % g);
    std::uint64_t key = 0;
    REQUIRE(amq::cuda::projected_key(projected[i], encoder.offsets()[k], 0.5f, k, key));
    differing += key != amq::make_key(k, codes[i]);
  }
  CHECK(differing == 0);
}

TEST_CASE("projected_key refuses codes outside int32 and NaN") {
  std::uint64_t key = 42;
  CHECK_FALSE(amq::cuda::projected_key(3.0e9f, 0.0f, 1.0f, 0, key));
  CHECK_FALSE(amq::cuda::projected_key(-3.0e9f, 0.0f, 1.0f, 0, key));
  CHECK_FALSE(
      amq::cuda::projected_key(std::numeric_limits<float>::quiet_NaN(), 0.0f, 1.0f, 0, key));
  CHECK_FALSE(amq::cuda::projected_key(1.0f, 0.0f, 1e-30f, 0, key));
  CHECK(key == 42);
  REQUIRE(amq::cuda::projected_key(-2.5f, 0.25f, 1.0f, 7, key));
  CHECK(key == amq::make_key(7, -3));
}

TEST_CASE("pixel_score is 1 - found / G") {
  CHECK(amq::cuda::pixel_score(0, 2048) == 1.0f);
  CHECK(amq::cuda::pixel_score(2048, 2048) == 0.0f);
  CHECK(amq::cuda::pixel_score(1, 4) == 0.75f);
  CHECK(amq::cuda::pixel_score(1, 3) == static_cast<float>(1.0 - 1.0 / 3.0));
}

TEST_CASE("the fused kernel's per-pixel loop reproduces AmqScorer::score") {
  SUBCASE("split-block") { check_scores_match_cpu_scorer<amq::SplitBlockBloom>(); }
  SUBCASE("classic") { check_scores_match_cpu_scorer<amq::ClassicBloom>(); }
}

TEST_CASE("the structured projection kernel's steps reproduce StructuredProjection bit for bit") {
  // D = 37 (n = 64, 16 blocks), 448 (n = 512; G = 1000: one full and one truncated block),
  // 3584 (n = 4096, one truncated block).
  for (const auto& [dim, hashes] :
       std::vector<std::pair<std::size_t, std::size_t>>{{37, 1024}, {448, 1000}, {3584, 2048}}) {
    CAPTURE(dim);
    const amq::StructuredProjection projection(amq::LshParams{dim, hashes, 1.0f, 7});
    const std::size_t n = projection.padded_dim();
    const std::size_t pixels = 5;
    const std::vector<float> features = gaussian_features(pixels * dim, 11);
    std::vector<float> expected(pixels * hashes);
    projection.project({features.data(), pixels, dim}, {expected.data(), pixels, hashes});

    // What one thread block does per (pixel, block), its threads' loops run one after another;
    // within a stage the butterflies are taken in reverse, as threads may finish in any order.
    std::vector<float> got(pixels * hashes);
    std::vector<float> x(n);
    for (std::size_t p = 0; p < pixels; ++p) {
      for (std::size_t b = 0; b < projection.blocks(); ++b) {
        for (std::size_t i = 0; i < n; ++i) x[i] = i < dim ? features[p * dim + i] : 0.0f;
        for (std::size_t round = 0; round < 3; ++round) {
          const float* s = projection.signs().data() + (3 * b + round) * n;
          for (std::size_t i = 0; i < n; ++i) x[i] *= s[i];
          for (std::size_t h = 1; h < n; h *= 2) {
            for (std::size_t t = n / 2; t-- > 0;)
              amq::cuda::walsh_hadamard_butterfly(x.data(), t, h);
          }
        }
        const std::size_t first = b * n;
        for (std::size_t k = 0; k < n && first + k < hashes; ++k) {
          got[p * hashes + first + k] = x[k] * projection.scales()[first + k];
        }
      }
    }
    CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
  }
}
