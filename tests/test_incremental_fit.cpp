// Incremental and sharded training: fit(A ∪ B) against fit(A) then add(B), and against shards
// built from summed totals and united (what the MPI fit does across processes).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <unordered_set>
#include <vector>

#include "amq/amq.hpp"

namespace {

constexpr std::size_t kWidth = 7;
constexpr std::size_t kHeight = 5;
constexpr std::size_t kDepth = 12;

using Classic = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::ClassicBloom>>;
using SplitBlock = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>>;

// Normal maps: pixels near a few fixed centres, so that keys repeat across maps and the
// distinct-key count is well below N·W·H·G.
std::vector<std::vector<float>> normal_maps(std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> spread(0.0f, 3.0f);
  std::vector<std::vector<float>> centres(5, std::vector<float>(kDepth));
  for (auto& centre : centres) {
    for (float& v : centre) v = spread(rng);
  }
  std::normal_distribution<float> jitter(0.0f, 0.3f);
  std::uniform_int_distribution<std::size_t> pick(0, centres.size() - 1);
  std::vector<std::vector<float>> maps(count, std::vector<float>(kWidth * kHeight * kDepth));
  for (auto& map : maps) {
    for (std::size_t p = 0; p < kWidth * kHeight; ++p) {
      const std::vector<float>& centre = centres[pick(rng)];
      for (std::size_t d = 0; d < kDepth; ++d) map[p * kDepth + d] = centre[d] + jitter(rng);
    }
  }
  return maps;
}

amq::FeatureMap view(const std::vector<float>& data) {
  return {data.data(), kWidth, kHeight, kDepth};
}

std::vector<amq::FeatureMap> views(const std::vector<std::vector<float>>& maps, std::size_t begin,
                                   std::size_t end) {
  std::vector<amq::FeatureMap> out;
  for (std::size_t i = begin; i < end; ++i) out.push_back(view(maps[i]));
  return out;
}

amq::ScorerParams small_params() {
  amq::ScorerParams params;
  params.lsh.dim = kDepth;
  params.lsh.hashes = 48;
  params.lsh.bucket_width = 0.8f;
  params.lsh.seed = 11;
  params.filter_bits = std::uint64_t{1} << 17;
  params.filter_seed = 3;
  return params;
}

template <class Scorer>
bool same_words(const Scorer& a, const Scorer& b) {
  const auto& wa = a.filter().words();
  const auto& wb = b.filter().words();
  return wa.size() == wb.size() &&
         std::memcmp(wa.data(), wb.data(), wa.size() * sizeof(std::uint32_t)) == 0;
}

void append_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// Offsets of the bytes where two saved models differ.
std::vector<std::size_t> differing_offsets(const std::vector<std::uint8_t>& a,
                                           const std::vector<std::uint8_t>& b) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) out.push_back(i);
  }
  return out;
}

// The offset of the sizing figures that describe the build rather than the filter: the
// distinct-key count and the rules' probe counts and sizes, which follow N, W, H and the key
// count in the model format (docs/model-format.md). Found by that 32-byte sequence.
std::size_t build_figures_offset(const std::vector<std::uint8_t>& bytes,
                                 const amq::SizingReport& s) {
  std::vector<std::uint8_t> pattern;
  append_u64(pattern, s.images);
  append_u64(pattern, s.width);
  append_u64(pattern, s.height);
  append_u64(pattern, s.total_keys);
  const auto at = std::search(bytes.begin(), bytes.end(), pattern.begin(), pattern.end());
  REQUIRE(at != bytes.end());
  return static_cast<std::size_t>(at - bytes.begin()) + pattern.size();
}

template <class Scorer>
void check_incremental_identity(const amq::ScorerParams& params) {
  const auto maps = normal_maps(12, 5);
  Scorer all(params);
  all.fit(views(maps, 0, maps.size()));

  Scorer resumed(params);
  resumed.fit(views(maps, 0, 5));
  // Through the model file, as the command line resumes.
  const std::vector<std::uint8_t> saved = resumed.to_bytes();
  Scorer loaded = Scorer::from_bytes(saved.data(), saved.size(), "model of A");
  for (std::size_t i = 5; i < maps.size(); ++i) loaded.add(view(maps[i]));

  CHECK(same_words(all, loaded));
  CHECK(all.sizing().images == loaded.sizing().images);
  CHECK(all.sizing().total_keys == loaded.sizing().total_keys);
  CHECK(all.sizing().bits == loaded.sizing().bits);
  CHECK(all.sizing().probes == loaded.sizing().probes);
  CHECK(all.sizing().estimated_fpr == loaded.sizing().estimated_fpr);
  const auto probe = normal_maps(1, 99);
  CHECK(all.score(view(probe[0])) == loaded.score(view(probe[0])));

  // Byte for byte, except the figures of the build itself: the distinct keys counted before
  // build (a built filter cannot count them) and what each rule computed from the counts then.
  const std::vector<std::uint8_t> a = all.to_bytes();
  const std::vector<std::uint8_t> b = loaded.to_bytes();
  REQUIRE(a.size() == b.size());
  const std::size_t figures = build_figures_offset(a, all.sizing());
  CHECK(figures == build_figures_offset(b, loaded.sizing()));
  // distinct u64, paper M u64, paper B u32, FPR-rule M u64, FPR-rule B u32, then the estimate.
  const std::size_t distinct = figures;
  const std::size_t paper_probes = figures + 16;
  const std::size_t estimate = figures + 32;
  for (const std::size_t offset : differing_offsets(a, b)) {
    INFO("bytes differ at offset " << offset);
    const bool build_figure = (offset >= distinct && offset < distinct + 8) ||
                              (offset >= paper_probes && offset < estimate);
    const bool checksum = offset >= a.size() - 8;
    CHECK((build_figure || checksum));
  }
  CHECK(all.sizing().distinct_keys > loaded.sizing().distinct_keys);
}

}  // namespace

TEST_CASE("fit(A ∪ B) equals fit(A) then add(B) at the same M and B") {
  SUBCASE("classic filter, B given") {
    amq::ScorerParams params = small_params();
    params.probes = 5;
    check_incremental_identity<Classic>(params);
  }
  SUBCASE("split-block filter, default sizing (B = 8 always)") {
    check_incremental_identity<SplitBlock>(small_params());
  }
}

TEST_CASE("without a fixed B, eq. 5 gives the larger training set fewer probes") {
  const auto maps = normal_maps(12, 5);
  Classic all(small_params());
  all.fit(views(maps, 0, maps.size()));
  Classic part(small_params());
  part.fit(views(maps, 0, 5));
  for (std::size_t i = 5; i < maps.size(); ++i) part.add(view(maps[i]));
  // add keeps M and B of the first fit, so resuming matches a fit given --probes B only.
  CHECK(part.sizing().probes > all.sizing().probes);
  CHECK_FALSE(same_words(all, part));
}

// Shards collect separately, build from the summed totals (distinct keys counted over the
// union of their key sets) and are united: the model equals one fit on all maps, byte for byte.
template <class Scorer>
void check_shard_identity(const amq::ScorerParams& params, std::size_t shard_count) {
  const auto maps = normal_maps(11, 8);
  Scorer single(params);
  single.fit(views(maps, 0, maps.size()));

  std::vector<Scorer> shards;
  for (std::size_t s = 0; s < shard_count; ++s) shards.emplace_back(params);
  // Round robin, as the MPI fit deals images to ranks; with more shards than maps some are
  // empty.
  for (std::size_t i = 0; i < maps.size(); ++i) shards[i % shard_count].collect(view(maps[i]));

  amq::SizingReport totals;
  std::unordered_set<std::uint64_t> distinct;
  for (const Scorer& shard : shards) {
    totals.images += shard.sizing().images;
    totals.total_keys += shard.sizing().total_keys;
    if (shard.sizing().images > 0) {
      totals.width = shard.sizing().width;
      totals.height = shard.sizing().height;
    }
    shard.for_each_collected_key([&](std::uint64_t key) { distinct.insert(key); });
  }
  totals.distinct_keys = distinct.size();
  for (Scorer& shard : shards) shard.build(totals);
  for (std::size_t s = 1; s < shard_count; ++s) shards[0].unite(shards[s].filter());

  CHECK(same_words(single, shards[0]));
  CHECK(single.to_bytes() == shards[0].to_bytes());
}

TEST_CASE("shards built from summed totals and united equal one fit, byte for byte") {
  amq::ScorerParams paper = small_params();
  amq::ScorerParams by_fpr = small_params();
  by_fpr.sizing = amq::SizingRule::target_fpr;
  by_fpr.target_fpr = 1e-4;
  SUBCASE("paper rule, 3 shards") { check_shard_identity<Classic>(paper, 3); }
  SUBCASE("target FPR, 4 shards") { check_shard_identity<Classic>(by_fpr, 4); }
  SUBCASE("split-block, 2 shards") { check_shard_identity<SplitBlock>(paper, 2); }
  SUBCASE("more shards than maps") { check_shard_identity<SplitBlock>(by_fpr, 13); }
}

TEST_CASE("shard builds and unions refuse inconsistent input") {
  const auto maps = normal_maps(3, 2);
  Classic shard(small_params());
  shard.collect(view(maps[0]));
  amq::SizingReport totals;
  totals.images = 2;
  totals.width = kWidth;
  totals.height = kHeight;
  totals.distinct_keys = 1u << 20;
  SUBCASE("key count not N·W·H·G") {
    totals.total_keys = 5;
    CHECK_THROWS_WITH_AS(shard.build(totals), doctest::Contains("expected N·W·H·G/K"), amq::Error);
  }
  SUBCASE("other map size") {
    totals.width = kWidth + 1;
    totals.total_keys = totals.images * totals.width * kHeight * 48;
    CHECK_THROWS_WITH_AS(shard.build(totals), doctest::Contains("this shard's maps are"),
                         amq::Error);
  }
  SUBCASE("fewer distinct keys than the shard's own") {
    totals.total_keys = 2 * kWidth * kHeight * 48;
    totals.distinct_keys = 1;
    CHECK_THROWS_WITH_AS(shard.build(totals), doctest::Contains("below this shard's own"),
                         amq::Error);
  }
  SUBCASE("union of filters of different sizes") {
    shard.build();
    amq::ScorerParams other_params = small_params();
    other_params.filter_bits *= 2;
    Classic other(other_params);
    other.fit(views(maps, 1, 3));
    CHECK_THROWS_WITH_AS(shard.unite(other.filter()), doctest::Contains("different parameters"),
                         amq::Error);
  }
}
