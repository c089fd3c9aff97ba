// AmqScorer's two scoring steps, encode and score_codes: together they give score's map bit for
// bit (both filters, K = 1 and K = 2), the codes are the encoder's, and bad input is refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "amq/amq.hpp"

namespace {

constexpr std::size_t kWidth = 7;
constexpr std::size_t kHeight = 4;
constexpr std::size_t kDepth = 12;

std::vector<float> gaussian_map(std::mt19937& rng, float spread) {
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<float> data(kWidth * kHeight * kDepth);
  for (float& v : data) v = normal(rng);
  return data;
}

amq::FeatureMap view(const std::vector<float>& data) {
  return {data.data(), kWidth, kHeight, kDepth};
}

amq::ScorerParams params(std::uint32_t codes_per_key) {
  amq::ScorerParams p;
  p.lsh.dim = kDepth;
  p.lsh.hashes = 64;
  p.lsh.bucket_width = 1.5f;
  p.lsh.seed = 11;
  p.filter_bits = std::uint64_t{1} << 16;
  p.codes_per_key = codes_per_key;
  return p;
}

template <class Scorer>
void check_two_steps(std::uint32_t codes_per_key) {
  std::mt19937 rng(3);
  std::vector<std::vector<float>> train;
  for (int i = 0; i < 4; ++i) train.push_back(gaussian_map(rng, 1.0f));
  Scorer scorer(params(codes_per_key));
  for (const auto& map : train) scorer.collect(view(map));
  scorer.build();

  // A map of training pixels and wider outliers, so that scores are neither all 0 nor all 1.
  std::vector<float> test = gaussian_map(rng, 10.0f);
  std::copy(train[1].begin(), train[1].begin() + 10 * kDepth, test.begin());
  const amq::FeatureMap map = view(test);

  const std::vector<std::int32_t> codes = scorer.encode(map);
  CHECK(codes == scorer.encoder().encode(map.matrix()));
  REQUIRE(codes.size() == map.pixels() * 64);

  std::vector<float> two_steps(map.pixels(), -1.0f);
  scorer.score_codes(codes.data(), map.pixels(), two_steps.data());
  const std::vector<float> one_step = scorer.score(map);
  CHECK(two_steps == one_step);
  for (std::size_t p = 0; p < 10; ++p) CHECK(two_steps[p] == 0.0f);
  CHECK(*std::max_element(two_steps.begin(), two_steps.end()) > 0.5f);

  // A part of the pixels alone scores as within the whole map.
  std::vector<float> part(3, -1.0f);
  scorer.score_codes(codes.data() + 5 * 64, 3, part.data());
  CHECK(part == std::vector<float>(one_step.begin() + 5, one_step.begin() + 8));
}

}  // namespace

TEST_CASE("encode then score_codes equals score, classic filter") {
  check_two_steps<amq::AmqScorer<>>(1);
  check_two_steps<amq::AmqScorer<>>(2);
}

TEST_CASE("encode then score_codes equals score, split-block filter") {
  using SplitBlock = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>>;
  check_two_steps<SplitBlock>(1);
  check_two_steps<SplitBlock>(2);
}

TEST_CASE("score_codes refuses an unbuilt model and null buffers; encode a wrong depth") {
  std::mt19937 rng(5);
  const std::vector<float> data = gaussian_map(rng, 1.0f);
  amq::AmqScorer<> scorer(params(1));
  const std::vector<std::int32_t> codes = scorer.encode(view(data));
  std::vector<float> out(kWidth * kHeight);
  CHECK_THROWS_AS(scorer.score_codes(codes.data(), kWidth * kHeight, out.data()), amq::Error);
  scorer.collect(view(data));
  scorer.build();
  CHECK_THROWS_AS(scorer.score_codes(nullptr, kWidth * kHeight, out.data()), amq::Error);
  CHECK_THROWS_AS(scorer.score_codes(codes.data(), kWidth * kHeight, nullptr), amq::Error);
  const amq::FeatureMap shallow{data.data(), kWidth, kHeight, kDepth - 1};
  CHECK_THROWS_AS(scorer.encode(shallow), amq::Error);
}
