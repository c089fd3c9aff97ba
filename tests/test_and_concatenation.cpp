// Tests of AND-concatenation (K codes per key): K = 1 reproduces the paper's keys, scores and
// version-1 model files exactly; K > 1 gives G/K tables, coarser and higher scores, and
// version-2 model files.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/random.hpp"

namespace {

constexpr std::size_t kWidth = 6;
constexpr std::size_t kHeight = 5;
constexpr std::size_t kDepth = 16;
constexpr std::size_t kHashes = 64;

std::vector<float> random_map(amq::Random& random, double scale = 1.0) {
  std::vector<float> data(kWidth * kHeight * kDepth);
  for (float& v : data) v = static_cast<float>(random.gaussian() * scale);
  return data;
}

amq::FeatureMap view(const std::vector<float>& data) {
  return {data.data(), kWidth, kHeight, kDepth};
}

amq::ScorerParams params_with(std::uint32_t codes_per_key) {
  amq::ScorerParams params;
  params.lsh = amq::LshParams{kDepth, kHashes, 1.5f, 21};
  params.filter_bits = std::uint64_t{1} << 20;
  params.codes_per_key = codes_per_key;
  return params;
}

std::uint32_t read_u32(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  return std::uint32_t{bytes[at]} | std::uint32_t{bytes[at + 1]} << 8 |
         std::uint32_t{bytes[at + 2]} << 16 | std::uint32_t{bytes[at + 3]} << 24;
}

}  // namespace

TEST_CASE("make_table_key with K = 1 is make_key; with K > 1 every code matters") {
  amq::Random random(3);
  for (int i = 0; i < 1000; ++i) {
    const auto table = static_cast<std::uint32_t>(random.next_u64() % 5000);
    const auto code = static_cast<std::int32_t>(random.next_u64());
    CHECK(amq::make_table_key(table, &code, 1) == amq::make_key(table, code));
  }
  const std::int32_t codes[4] = {3, -7, 11, 0};
  const std::uint64_t key = amq::make_table_key(2, codes, 4);
  std::set<std::uint64_t> others;
  for (int i = 0; i < 4; ++i) {
    std::int32_t changed[4] = {3, -7, 11, 0};
    changed[i] += 1;
    others.insert(amq::make_table_key(2, changed, 4));
  }
  others.insert(amq::make_table_key(3, codes, 4));
  others.insert(amq::make_table_key(2, codes, 3));
  CHECK(others.size() == 6);
  CHECK(others.count(key) == 0);
}

TEST_CASE("K = 1 scores equal the paper's eq. 6 computed by hand, and files stay version 1") {
  amq::Random random(1);
  std::vector<std::vector<float>> train;
  for (int i = 0; i < 4; ++i) train.push_back(random_map(random));
  amq::AmqScorer<> scorer(params_with(1));
  for (const auto& map : train) scorer.collect(view(map));
  const amq::SizingReport& report = scorer.build();
  CHECK(report.total_keys == 4 * kWidth * kHeight * kHashes);

  // The paper by hand: every (k, h_k(x)) of every training pixel into a filter of the same
  // parameters, then s = 1 − found/G.
  amq::BloomFilter<amq::ClassicBloom> filter(scorer.filter().params());
  for (const auto& map : train) {
    const auto codes = scorer.encoder().encode(view(map).matrix());
    for (std::size_t i = 0; i < codes.size(); ++i) {
      filter.add(amq::make_key(static_cast<std::uint32_t>(i % kHashes), codes[i]));
    }
  }
  CHECK(filter.words() == scorer.filter().words());
  const std::vector<float> test = random_map(random, 1.2);
  const auto codes = scorer.encoder().encode(view(test).matrix());
  const std::vector<float> scores = scorer.score(view(test));
  for (std::size_t p = 0; p < kWidth * kHeight; ++p) {
    std::size_t found = 0;
    for (std::size_t k = 0; k < kHashes; ++k) {
      const std::int32_t code = codes[p * kHashes + k];
      found += filter.contains(amq::make_key(static_cast<std::uint32_t>(k), code));
    }
    CHECK(scores[p] == static_cast<float>(1.0 - static_cast<double>(found) / kHashes));
  }

  const std::vector<std::uint8_t> bytes = scorer.to_bytes();
  CHECK(read_u32(bytes, 8) == 1);
  CHECK(bytes.size() ==
        196 + 4 * kHashes * kDepth + 4 * kHashes + 4 * scorer.filter().words().size());
}

TEST_CASE("K > 1: G/K tables, scores on a 1/(G/K) grid, training maps score 0") {
  amq::Random random(2);
  std::vector<std::vector<float>> train;
  for (int i = 0; i < 4; ++i) train.push_back(random_map(random));
  // A test map near the training data: each training pixel moved a little.
  std::vector<float> near = train[0];
  for (float& v : near) v += static_cast<float>(0.3 * random.gaussian());

  double previous_mean = -1.0;
  for (std::uint32_t k : {1u, 2u, 4u, 8u}) {
    CAPTURE(k);
    amq::AmqScorer<> scorer(params_with(k));
    for (const auto& map : train) scorer.collect(view(map));
    const amq::SizingReport& report = scorer.build();
    CHECK(scorer.tables() == kHashes / k);
    CHECK(report.total_keys == 4 * kWidth * kHeight * kHashes / k);
    CHECK(scorer.score(view(train[2])) == std::vector<float>(kWidth * kHeight, 0.0f));

    const std::vector<float> scores = scorer.score(view(near));
    double mean = 0.0;
    for (float s : scores) {
      const double steps = s * static_cast<double>(kHashes / k);
      CHECK(steps == doctest::Approx(std::round(steps)).epsilon(1e-6));
      mean += s;
    }
    mean /= static_cast<double>(scores.size());
    // All K codes must match: the found fraction falls roughly as p^K.
    CHECK(mean > previous_mean);
    previous_mean = mean;
  }
}

TEST_CASE("K > 1 models save as version 2 and load back; bad K is refused") {
  amq::Random random(4);
  const std::vector<float> train = random_map(random);
  const std::vector<float> test = random_map(random);
  amq::AmqScorer<> scorer(params_with(4));
  scorer.collect(view(train));
  scorer.build();
  const std::string path =
      (std::filesystem::temp_directory_path() / "amq_test_and_concatenation.model").string();
  scorer.save(path);
  const std::vector<std::uint8_t> bytes = scorer.to_bytes();
  CHECK(read_u32(bytes, 8) == 2);
  CHECK(read_u32(bytes, 92) == 4);
  const amq::AmqScorer<> loaded = amq::AmqScorer<>::load(path);
  CHECK(loaded.params().codes_per_key == 4);
  CHECK(loaded.score(view(test)) == scorer.score(view(test)));
  CHECK(loaded.to_bytes() == bytes);
  std::filesystem::remove(path);

  CHECK_THROWS_WITH_AS(amq::AmqScorer<>(params_with(0)),
                       doctest::Contains("codes per key K must be at least 1"), amq::Error);
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>(params_with(3)), doctest::Contains("got K = 3"),
                       amq::Error);
}
