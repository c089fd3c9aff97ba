// Tests of the multi-radius scorer: R = 1 is the single-radius AMQ scorer exactly, scores keep
// growing with distance where one radius saturates, both radius rules by hand, no false
// negatives, and model files.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/multi_radius_scorer.hpp"
#include "amq/random.hpp"

namespace {

constexpr std::size_t kWidth = 5;
constexpr std::size_t kHeight = 4;
constexpr std::size_t kDepth = 32;

std::vector<float> random_map(amq::Random& random) {
  std::vector<float> data(kWidth * kHeight * kDepth);
  for (float& v : data) v = static_cast<float>(random.gaussian());
  return data;
}

amq::FeatureMap view(const std::vector<float>& data) {
  return {data.data(), kWidth, kHeight, kDepth};
}

amq::MultiRadiusParams multi_params(std::uint32_t radii, float eps) {
  amq::MultiRadiusParams params;
  params.scorer.lsh = amq::LshParams{kDepth, 256, eps, 13};
  params.scorer.filter_bits = std::uint64_t{1} << 22;
  params.radii = radii;
  return params;
}

double mean(const std::vector<float>& v) {
  double sum = 0.0;
  for (float x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

}  // namespace

TEST_CASE("the score rules by hand") {
  const float fractions[4] = {0.2f, 0.6f, 0.9f, 1.0f};
  CHECK(amq::multi_radius_score(fractions, 4, amq::RadiusRule::not_found_mean, 0.5) ==
        doctest::Approx((0.8 + 0.4 + 0.1 + 0.0) / 4).epsilon(1e-6));
  CHECK(amq::multi_radius_score(fractions, 4, amq::RadiusRule::first_found, 0.5) ==
        doctest::Approx((1 + 0.4) / 4).epsilon(1e-6));
  CHECK(amq::multi_radius_score(fractions, 4, amq::RadiusRule::first_found, 0.95) ==
        doctest::Approx(3.0 / 4).epsilon(1e-6));
  const float none[2] = {0.1f, 0.3f};
  CHECK(amq::multi_radius_score(none, 2, amq::RadiusRule::first_found, 0.5) == 1.0f);
}

TEST_CASE("R = 1 gives exactly the single-radius scorer's filter and scores") {
  amq::Random random(1);
  std::vector<std::vector<float>> train;
  for (int i = 0; i < 3; ++i) train.push_back(random_map(random));
  const amq::MultiRadiusParams params = multi_params(1, 2.0f);
  amq::MultiRadiusScorer<> multi(params);
  amq::AmqScorer<> single(params.scorer);
  for (const auto& map : train) {
    multi.collect(view(map));
    single.collect(view(map));
  }
  multi.build();
  single.build();
  CHECK(multi.filter().words() == single.filter().words());
  const std::vector<float> test = random_map(random);
  CHECK(multi.score(view(test)) == single.score(view(test)));
}

TEST_CASE("scores keep rising with distance after one small radius saturates") {
  amq::Random random(2);
  const std::vector<float> train = random_map(random);
  // A small ε (1 % of the feature spread): one radius sees every moved pixel as far away.
  amq::MultiRadiusScorer<> multi(multi_params(6, 0.01f));
  amq::AmqScorer<> single(multi_params(1, 0.01f).scorer);
  multi.collect(view(train));
  single.collect(view(train));
  multi.build();
  single.build();
  CHECK(multi.score(view(train)) == std::vector<float>(kWidth * kHeight, 0.0f));
  CHECK(multi.bucket_width(5) == doctest::Approx(0.01 * 32));

  std::vector<double> multi_means;
  std::vector<double> single_means;
  for (const double distance : {0.004, 0.016, 0.06, 0.24, 0.96}) {
    std::vector<float> moved = train;
    const double spread = distance / std::sqrt(static_cast<double>(kDepth));
    for (float& v : moved) v += static_cast<float>(spread * random.gaussian());
    multi_means.push_back(mean(multi.score(view(moved))));
    single_means.push_back(mean(single.score(view(moved))));
  }
  for (std::size_t i = 1; i < multi_means.size(); ++i) {
    CAPTURE(i);
    CHECK(multi_means[i] > multi_means[i - 1]);
  }
  // Over the last factor 4 of distance the single radius barely moves (it is near 1); the
  // multi-radius score still rises by a clear step.
  CHECK(single_means.back() > 0.9);
  CHECK(single_means.back() - single_means[3] < 0.1);
  CHECK(multi_means.back() - multi_means[3] > 0.15);
  CHECK(multi_means.back() < 0.85);
}

TEST_CASE("found fractions grow with the radius") {
  amq::Random random(3);
  const std::vector<float> train = random_map(random);
  amq::MultiRadiusScorer<> multi(multi_params(5, 0.1f));
  multi.collect(view(train));
  multi.build();
  std::vector<float> moved = train;
  for (float& v : moved) v += static_cast<float>(0.2 * random.gaussian());
  std::vector<float> fractions(kWidth * kHeight * 5);
  multi.found_fractions(view(moved), fractions.data());
  std::vector<double> per_radius(5, 0.0);
  for (std::size_t p = 0; p < kWidth * kHeight; ++p) {
    for (std::size_t i = 0; i < 5; ++i) per_radius[i] += fractions[p * 5 + i];
  }
  for (std::size_t i = 1; i < 5; ++i) CHECK(per_radius[i] > per_radius[i - 1]);
}

TEST_CASE("multi-radius models save, load and refuse bad files and parameters") {
  amq::Random random(4);
  const std::vector<float> train = random_map(random);
  const std::vector<float> test = random_map(random);
  amq::MultiRadiusParams params = multi_params(3, 0.5f);
  params.rule = amq::RadiusRule::first_found;
  params.found_threshold = 0.4;
  params.scorer.codes_per_key = 2;
  amq::MultiRadiusScorer<> scorer(params);
  scorer.collect(view(train));
  scorer.build();

  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / "amq_test_multi_radius.model").string();
  scorer.save(path);
  const auto loaded = amq::MultiRadiusScorer<>::load(path);
  CHECK(loaded.params().rule == amq::RadiusRule::first_found);
  CHECK(loaded.params().found_threshold == 0.4);
  CHECK(loaded.params().scorer.codes_per_key == 2);
  CHECK(loaded.score(view(test)) == scorer.score(view(test)));
  CHECK(loaded.to_bytes() == scorer.to_bytes());

  std::vector<std::uint8_t> bytes = scorer.to_bytes();
  bytes[bytes.size() / 2] ^= 1;
  CHECK_THROWS_WITH_AS(amq::MultiRadiusScorer<>::from_bytes(bytes.data(), bytes.size(), "x"),
                       doctest::Contains("checksum mismatch"), amq::Error);
  amq::AmqScorer<> single(params.scorer);
  single.collect(view(train));
  single.build();
  const std::vector<std::uint8_t> other = single.to_bytes();
  CHECK_THROWS_WITH_AS(amq::MultiRadiusScorer<>::from_bytes(other.data(), other.size(), "y"),
                       doctest::Contains("not an amq multi-radius model"), amq::Error);
  CHECK_THROWS_WITH_AS(amq::MultiRadiusScorer<>::from_bytes(bytes.data(), 10, "z"),
                       doctest::Contains("truncated"), amq::Error);
  std::filesystem::remove(path);

  CHECK_THROWS_WITH_AS(amq::MultiRadiusScorer<>(multi_params(0, 1.0f)),
                       doctest::Contains("radius count R must be in [1, 64], got 0"), amq::Error);
  amq::MultiRadiusParams bad_tau = multi_params(2, 1.0f);
  bad_tau.found_threshold = 0.0;
  CHECK_THROWS_WITH_AS(amq::MultiRadiusScorer<>{bad_tau}, doctest::Contains("found threshold"),
                       amq::Error);
}
