// Tests of the LSH encoder: stored projection values, agreement of the BLAS + AVX2 path with
// the plain reference, the locality property the method relies on, and bad-input errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "amq/lsh_encoder.hpp"
#include "amq/random.hpp"

namespace {

std::uint64_t fingerprint(const void* data, std::size_t bytes, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// P × D features drawn from N(0, scale²).
std::vector<float> random_features(std::size_t rows, std::size_t dim, std::uint64_t seed,
                                   double scale = 1.0) {
  amq::Random random(seed);
  std::vector<float> features(rows * dim);
  for (auto& v : features) v = static_cast<float>(random.gaussian() * scale);
  return features;
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

/// Chance that one hash gives two vectors the same code when their difference projects to
/// N(0, σ²) on the direction and the offset is uniform: E[(1 − |t|/ε)₊].
double collision_probability(double sigma, double eps) {
  const double ratio = eps / sigma;
  return 1.0 - 2.0 * normal_cdf(-ratio) -
         2.0 / (std::sqrt(2.0 * M_PI) * ratio) * (1.0 - std::exp(-ratio * ratio / 2.0));
}

}  // namespace

TEST_CASE("stored projection values: every compiler and machine must give these bits") {
  // Recorded from this implementation and checked identical with GCC 12 and Clang 14, at -O0
  // and at -O3 -march=native -ffp-contract=fast.
  const amq::LshEncoder<> encoder(amq::LshParams{96, 64, 0.5f, 12345});
  const auto& w = encoder.directions();
  const auto& b = encoder.offsets();
  REQUIRE(w.size() == 96 * 64);
  REQUIRE(b.size() == 64);
  CHECK(w[0] == 0x1.866fbp-6f);
  CHECK(w[1] == -0x1.9c3a5cp-4f);
  CHECK(w[2] == -0x1.00c00cp-3f);
  CHECK(b[0] == 0x1.ccf0a6p-2f);
  CHECK(b[1] == 0x1.ba9eb4p-3f);
  CHECK(b[2] == 0x1.ccb168p-4f);
  const std::uint64_t h = fingerprint(w.data(), w.size() * 4, 0xcbf29ce484222325ULL);
  CHECK(fingerprint(b.data(), b.size() * 4, h) == 0xc150fe7579141f40ULL);
}

TEST_CASE("directions have unit length and offsets lie in [0, eps)") {
  const amq::LshParams params{200, 300, 0.25f, 8};
  const amq::LshEncoder<> encoder(params);
  for (std::size_t k = 0; k < params.hashes; ++k) {
    double norm2 = 0.0;
    for (std::size_t d = 0; d < params.dim; ++d) {
      const double v = encoder.directions()[k * params.dim + d];
      norm2 += v * v;
    }
    REQUIRE(std::fabs(std::sqrt(norm2) - 1.0) < 1e-5);
    REQUIRE(encoder.offsets()[k] >= 0.0f);
    REQUIRE(encoder.offsets()[k] < params.bucket_width);
  }
}

TEST_CASE("same seed gives the same codes; another seed gives other codes") {
  const auto features = random_features(50, 64, 1);
  const amq::MatrixView<const float> view{features.data(), 50, 64};
  const auto a = amq::LshEncoder<>(amq::LshParams{64, 128, 1.0f, 5}).encode(view);
  const auto b = amq::LshEncoder<>(amq::LshParams{64, 128, 1.0f, 5}).encode(view);
  const auto c = amq::LshEncoder<>(amq::LshParams{64, 128, 1.0f, 6}).encode(view);
  CHECK(a == b);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += a[i] != c[i];
  CHECK(differ > a.size() / 2);
}

TEST_CASE("scalar and AVX2 quantisers give identical codes") {
  if (!amq::detail::has_avx2()) {
    MESSAGE("this processor has no AVX2: only the scalar quantiser runs here");
    return;
  }
#if AMQ_HAVE_AVX2_PATH
  amq::Random random(77);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t n = 1 + random.next_u64() % 300;  // odd lengths exercise the tail
    const auto width = static_cast<float>(
        std::ldexp(0.5 + random.uniform_double(), static_cast<int>(random.next_u64() % 8) - 4));
    std::vector<float> projected(n), offsets(n);
    for (std::size_t k = 0; k < n; ++k) {
      offsets[k] = random.uniform_float() * width;
      const double scale = std::ldexp(1.0, static_cast<int>(random.next_u64() % 20) - 6);
      projected[k] = static_cast<float>(random.gaussian() * scale);
      // Every fourth value is put exactly on a bucket edge, where rounding matters most.
      if (k % 4 == 0) projected[k] = std::round(projected[k] / width) * width - offsets[k];
    }
    std::vector<std::int32_t> scalar(n), avx2(n);
    CHECK(amq::detail::quantize_row_scalar(projected.data(), offsets.data(), width, n,
                                           scalar.data()));
    CHECK(amq::detail::quantize_row_avx2(projected.data(), offsets.data(), width, n, avx2.data()));
    REQUIRE(scalar == avx2);
  }

  // Both paths refuse a code beyond int32 and a NaN, wherever it sits in the row.
  for (const float bad : {3e9f, -3e9f, std::numeric_limits<float>::quiet_NaN()}) {
    for (const std::size_t position : {std::size_t{0}, std::size_t{13}, std::size_t{16}}) {
      std::vector<float> projected(17, 0.5f), offsets(17, 0.0f);
      projected[position] = bad;
      std::vector<std::int32_t> codes(17);
      CHECK_FALSE(amq::detail::quantize_row_scalar(projected.data(), offsets.data(), 1.0f, 17,
                                                   codes.data()));
      CHECK_FALSE(
          amq::detail::quantize_row_avx2(projected.data(), offsets.data(), 1.0f, 17, codes.data()));
    }
  }
#endif
}

TEST_CASE("BLAS encode agrees with the reference except within rounding of a bucket edge") {
  const amq::LshParams params{288, 256, 0.5f, 21};
  const std::size_t rows = 300;
  const amq::LshEncoder<> encoder(params);
  const auto features = random_features(rows, params.dim, 2);
  const amq::MatrixView<const float> view{features.data(), rows, params.dim};
  std::vector<std::int32_t> fast(rows * params.hashes), reference(rows * params.hashes);
  encoder.encode(view, {fast.data(), rows, params.hashes});
  encoder.encode_reference(view, {reference.data(), rows, params.hashes});

  // Tolerance: single-precision GEMM accumulation may differ from the exact dot product by at
  // most D·u·Σ|w_d x_d| (u = 2^-24); the float sum with b_k and the division each add one
  // more rounding of their result. A code may differ only by one, and only when the exact
  // value (w·x + b)/ε lies within that tolerance of the edge between the two buckets.
  const double u = std::ldexp(1.0, -24);
  std::size_t mismatches = 0;
  for (std::size_t p = 0; p < rows; ++p) {
    for (std::size_t k = 0; k < params.hashes; ++k) {
      const std::size_t i = p * params.hashes + k;
      if (fast[i] == reference[i]) continue;
      ++mismatches;
      double dot = 0.0, magnitude = 0.0;
      for (std::size_t d = 0; d < params.dim; ++d) {
        const double term = static_cast<double>(encoder.directions()[k * params.dim + d]) *
                            features[p * params.dim + d];
        dot += term;
        magnitude += std::fabs(term);
      }
      const double value = (dot + encoder.offsets()[k]) / params.bucket_width;
      const double edge = std::max(fast[i], reference[i]);
      const double tolerance =
          (params.dim * u * magnitude + 2 * u * (std::fabs(dot) + params.bucket_width)) /
              params.bucket_width +
          2 * u * std::fabs(value);
      CHECK(std::abs(fast[i] - reference[i]) == 1);
      CHECK(std::fabs(value - edge) <= tolerance);
    }
  }
  // Edge cases are rare: well under one code in a thousand.
  CHECK(mismatches * 1000 < fast.size());
}

TEST_CASE("collision probability falls as distance grows and matches the p-stable formula") {
  // With unit directions in D dimensions, a difference of length r projects to about
  // N(0, r²/D), so the theory is collision_probability(r/√D, ε).
  const amq::LshParams params{128, 2048, 1.0f, 3};
  const amq::LshEncoder<> encoder(params);
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
    const double theory = collision_probability(sigma, params.bucket_width);
    CAPTURE(sigma);
    CHECK(measured < previous);
    CHECK(std::fabs(measured - theory) < 0.02);
    previous = measured;
  }
}

TEST_CASE("the vector overload returns the same codes; zero pixels give zero codes") {
  const amq::LshEncoder<> encoder(amq::LshParams{32, 40, 2.0f, 9});
  const auto features = random_features(7, 32, 10, 5.0);
  const amq::MatrixView<const float> view{features.data(), 7, 32};
  std::vector<std::int32_t> codes(7 * 40);
  encoder.encode(view, {codes.data(), 7, 40});
  CHECK(encoder.encode(view) == codes);
  CHECK(encoder.encode(amq::MatrixView<const float>{nullptr, 0, 32}).empty());
}

TEST_CASE("bad parameters and bad features throw amq::Error") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{0, 16, 1.0f, 0}), amq::Error);
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{8, 0, 1.0f, 0}), amq::Error);
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{8, 16, 0.0f, 0}), amq::Error);
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{8, 16, -1.0f, 0}), amq::Error);
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{8, 16, nan, 0}), amq::Error);
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{8, 16, inf, 0}), amq::Error);
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{8, std::size_t{1} << 33, 1.0f, 0}), amq::Error);
  // G·D floats beyond the address space: refused before any allocation.
  CHECK_THROWS_AS(amq::LshEncoder<>(amq::LshParams{std::size_t{1} << 62, 16, 1.0f, 0}), amq::Error);

  const amq::LshEncoder<> encoder(amq::LshParams{8, 16, 1.0f, 0});
  std::vector<float> features(3 * 8, 0.25f);
  std::vector<std::int32_t> codes(3 * 16);
  const amq::MatrixView<std::int32_t> code_view{codes.data(), 3, 16};
  CHECK_NOTHROW(encoder.encode({features.data(), 3, 8}, code_view));
  CHECK_THROWS_AS(encoder.encode({features.data(), 4, 6}, code_view), amq::Error);
  CHECK_THROWS_AS(encoder.encode({features.data(), 3, 8}, {codes.data(), 3, 15}), amq::Error);
  CHECK_THROWS_AS(encoder.encode({features.data(), 3, 8}, {codes.data(), 2, 16}), amq::Error);

  for (const float bad : {nan, inf, -inf}) {
    features[13] = bad;
    CHECK_THROWS_AS(encoder.encode({features.data(), 3, 8}, code_view), amq::Error);
    CHECK_THROWS_AS(encoder.encode_reference({features.data(), 3, 8}, code_view), amq::Error);
  }

  // Finite features whose bucket index does not fit in int32.
  std::fill(features.begin(), features.end(), 1e30f);
  CHECK_THROWS_WITH_AS(encoder.encode({features.data(), 3, 8}, code_view),
                       doctest::Contains("outside int32"), amq::Error);
  CHECK_THROWS_AS(encoder.encode_reference({features.data(), 3, 8}, code_view), amq::Error);
}
