// Tests of the structured (sign flips + Walsh–Hadamard) projection: unit rows that behave like
// random directions, the fast transform against the explicit matrix, AVX2 against scalar, the
// locality property, and model files of a scorer that uses it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/detail/walsh_hadamard.hpp"
#include "amq/random.hpp"
#include "amq/structured_projection.hpp"

namespace {

using StructuredEncoder = amq::LshEncoder<amq::StructuredProjection>;

std::vector<float> random_features(std::size_t rows, std::size_t dim, std::uint64_t seed) {
  amq::Random random(seed);
  std::vector<float> features(rows * dim);
  for (auto& v : features) v = static_cast<float>(random.gaussian());
  return features;
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Chance that one hash gives two vectors the same code when their difference projects to
// N(0, σ²): E[(1 − |t|/ε)₊] (as in test_lsh_encoder.cpp).
double collision_probability(double sigma, double eps) {
  const double ratio = eps / sigma;
  return 1.0 - 2.0 * normal_cdf(-ratio) -
         2.0 / (std::sqrt(2.0 * M_PI) * ratio) * (1.0 - std::exp(-ratio * ratio / 2.0));
}

}  // namespace

TEST_CASE("Walsh-Hadamard transform: H applied twice is n times the identity") {
  for (std::size_t n : {1u, 2u, 8u, 64u, 1024u}) {
    const std::vector<float> x = random_features(1, n, n);
    std::vector<float> y = x;
    amq::detail::walsh_hadamard_scalar(y.data(), n);
    amq::detail::walsh_hadamard_scalar(y.data(), n);
    // Rounding grows with the sums' size, n·max|x|, not with each entry.
    double largest = 0.0;
    for (float v : x) largest = std::max(largest, std::fabs(double{v}));
    for (std::size_t i = 0; i < n; ++i) CHECK(std::fabs(y[i] - n * x[i]) < 1e-5 * n * largest);
  }
  // First entries of H·(1, 2, 3, 4) by hand: (10, -2, -4, 0).
  std::vector<std::int64_t> v{1, 2, 3, 4};
  amq::detail::walsh_hadamard_scalar(v.data(), 4);
  CHECK(v == std::vector<std::int64_t>{10, -2, -4, 0});
}

TEST_CASE("rows have unit length and coordinates like normalised Gaussian directions") {
  for (const auto& shape :
       {std::pair<std::size_t, std::size_t>{288, 2048}, {100, 64}, {1000, 300}}) {
    const std::size_t dim = shape.first;
    const std::size_t hashes = shape.second;
    CAPTURE(dim);
    const amq::StructuredProjection projection(amq::LshParams{dim, hashes, 1.0f, 7});
    const std::vector<float>& w = projection.directions();
    REQUIRE(w.size() == dim * hashes);
    CHECK(projection.blocks() == (hashes + projection.padded_dim() - 1) / projection.padded_dim());
    double fourth = 0.0;
    double second = 0.0;
    for (std::size_t k = 0; k < hashes; ++k) {
      double norm2 = 0.0;
      for (std::size_t d = 0; d < dim; ++d) {
        const double v = w[k * dim + d];
        norm2 += v * v;
        second += v * v * dim;
        fourth += v * v * v * v * dim * dim;
      }
      CHECK(std::sqrt(norm2) == doctest::Approx(1.0).epsilon(1e-5));
    }
    // Coordinates of a random unit direction times √D are close to N(0, 1), whose kurtosis
    // is 3; a single sign-flip + Hadamard round would give ±1 coordinates (kurtosis 1).
    const double kurtosis = fourth / second * static_cast<double>(dim * hashes) / second;
    CHECK(kurtosis > 2.6);
    CHECK(kurtosis < 3.4);
  }
}

TEST_CASE("with D a power of two, the rows of one block are orthonormal") {
  const amq::StructuredProjection projection(amq::LshParams{128, 128, 1.0f, 3});
  const std::vector<float>& w = projection.directions();
  double worst = 0.0;
  for (std::size_t i = 0; i < 128; ++i) {
    for (std::size_t j = i + 1; j < 128; ++j) {
      double dot = 0.0;
      for (std::size_t d = 0; d < 128; ++d) dot += double{w[i * 128 + d]} * w[j * 128 + d];
      worst = std::max(worst, std::fabs(dot));
    }
  }
  CHECK(worst < 1e-6);
}

TEST_CASE("fast projections equal the explicit matrix product within float rounding") {
  for (const auto& shape :
       {std::pair<std::size_t, std::size_t>{288, 2048}, {5, 13}, {3584, 512}}) {
    const std::size_t dim = shape.first;
    const std::size_t hashes = shape.second;
    CAPTURE(dim);
    const amq::StructuredProjection projection(amq::LshParams{dim, hashes, 1.0f, 11});
    const std::size_t rows = 20;
    const std::vector<float> x = random_features(rows, dim, 5);
    std::vector<float> y(rows * hashes);
    projection.project({x.data(), rows, dim}, {y.data(), rows, hashes});
    double worst = 0.0;
    for (std::size_t p = 0; p < rows; ++p) {
      double norm2 = 0.0;
      for (std::size_t d = 0; d < dim; ++d) norm2 += double{x[p * dim + d]} * x[p * dim + d];
      for (std::size_t k = 0; k < hashes; ++k) {
        const double exact = projection.project_reference(x.data() + p * dim, k);
        worst = std::max(worst, std::fabs(y[p * hashes + k] - exact) / std::sqrt(norm2));
      }
    }
    CHECK(worst < 2e-5);
  }
}

TEST_CASE("AVX2 and scalar transforms give identical bits") {
  if (!amq::detail::has_avx2()) {
    MESSAGE("this processor has no AVX2: only the scalar path runs");
    return;
  }
  for (std::size_t dim : {1u, 7u, 8u, 288u, 3584u}) {
    CAPTURE(dim);
    const std::size_t hashes = 700;
    const amq::StructuredProjection projection(amq::LshParams{dim, hashes, 1.0f, 2});
    const std::size_t rows = 33;
    const std::vector<float> x = random_features(rows, dim, dim);
    std::vector<float> fast(rows * hashes);
    std::vector<float> plain(rows * hashes);
    projection.project({x.data(), rows, dim}, {fast.data(), rows, hashes}, true);
    projection.project({x.data(), rows, dim}, {plain.data(), rows, hashes}, false);
    CHECK(std::memcmp(fast.data(), plain.data(), fast.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("collision probability falls with distance and matches the p-stable formula") {
  const amq::LshParams params{128, 2048, 1.0f, 3};
  const StructuredEncoder encoder(params);
  const std::size_t pairs = 20;
  amq::Random random(4);
  double previous = 1.1;
  for (const double sigma : {0.05, 0.2, 0.5, 1.0, 2.0, 4.0}) {
    const double distance = sigma * std::sqrt(static_cast<double>(params.dim));
    std::vector<float> points(2 * pairs * params.dim);
    for (std::size_t i = 0; i < pairs; ++i) {
      float* x = &points[2 * i * params.dim];
      float* y = x + params.dim;
      std::vector<double> step(params.dim);
      double norm2 = 0.0;
      for (auto& s : step) {
        s = random.gaussian();
        norm2 += s * s;
      }
      for (std::size_t d = 0; d < params.dim; ++d) {
        x[d] = static_cast<float>(random.gaussian());
        y[d] = static_cast<float>(x[d] + distance * step[d] / std::sqrt(norm2));
      }
    }
    const auto codes = encoder.encode({points.data(), 2 * pairs, params.dim});
    std::size_t same = 0;
    for (std::size_t i = 0; i < pairs; ++i) {
      for (std::size_t k = 0; k < params.hashes; ++k) {
        same += codes[2 * i * params.hashes + k] == codes[(2 * i + 1) * params.hashes + k];
      }
    }
    const double measured = static_cast<double>(same) / (pairs * params.hashes);
    CAPTURE(sigma);
    CHECK(measured < previous);
    CHECK(std::fabs(measured - collision_probability(sigma, params.bucket_width)) < 0.03);
    previous = measured;
  }
}

TEST_CASE("encode agrees with the reference codes except within rounding of a bucket edge") {
  const StructuredEncoder encoder(amq::LshParams{288, 2048, 0.25f, 8});
  const std::size_t rows = 40;
  const std::vector<float> x = random_features(rows, 288, 9);
  const auto fast = encoder.encode({x.data(), rows, 288});
  std::vector<std::int32_t> slow(fast.size());
  encoder.encode_reference({x.data(), rows, 288}, {slow.data(), rows, 2048});
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < fast.size(); ++i) {
    CHECK(std::abs(fast[i] - slow[i]) <= 1);
    mismatches += fast[i] != slow[i];
  }
  CHECK(mismatches * 1000 < fast.size());
}

TEST_CASE("same seed, same directions; another seed, other directions; bad D refused") {
  const amq::StructuredProjection a(amq::LshParams{50, 100, 1.0f, 1});
  const amq::StructuredProjection b(amq::LshParams{50, 100, 1.0f, 1});
  const amq::StructuredProjection c(amq::LshParams{50, 100, 1.0f, 2});
  CHECK(a.directions() == b.directions());
  CHECK(a.directions() != c.directions());
  CHECK_THROWS_AS(StructuredEncoder(amq::LshParams{0, 100, 1.0f, 1}), amq::Error);
  CHECK_THROWS_WITH_AS(
      amq::StructuredProjection(amq::LshParams{(std::size_t{1} << 20) + 1, 1, 1.0f, 1}),
      doctest::Contains("structured projection needs 0 < D <= 1048576"), amq::Error);
}

TEST_CASE("a scorer with the structured projection saves and loads; dense readers refuse it") {
  using Scorer = amq::AmqScorer<StructuredEncoder>;
  amq::ScorerParams params;
  params.lsh = amq::LshParams{24, 64, 0.8f, 5};
  params.filter_bits = 1 << 14;
  Scorer scorer(params);
  const std::vector<float> train = random_features(4 * 3 * 3, 24, 1);
  for (std::size_t i = 0; i < 3; ++i) scorer.collect({train.data() + i * 12 * 24, 4, 3, 24});
  scorer.build();
  const std::vector<float> test = random_features(12, 24, 2);
  const amq::FeatureMap test_map{test.data(), 4, 3, 24};

  const std::string path =
      (std::filesystem::temp_directory_path() / "amq_test_structured.model").string();
  scorer.save(path);
  const Scorer loaded = Scorer::load(path);
  CHECK(loaded.score(test_map) == scorer.score(test_map));
  CHECK(loaded.to_bytes() == scorer.to_bytes());
  CHECK(scorer.score({train.data(), 4, 3, 24}) == std::vector<float>(12, 0.0f));
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>::load(path),
                       doctest::Contains("encoder kind 2, expected 1"), amq::Error);
  std::filesystem::remove(path);
}
