// Tests of the portable random generator: published reference outputs, stored streams that
// every compiler must reproduce, and the statistics of uniform and Gaussian draws.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "amq/random.hpp"

namespace {

/// FNV-1a over raw bytes: a fingerprint of a whole stream for the stored-value checks.
std::uint64_t fingerprint(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("splitmix64 matches its published outputs from state 0") {
  std::uint64_t state = 0;
  CHECK(amq::splitmix64(state) == 0xe220a8397b1dcdafULL);
  CHECK(amq::splitmix64(state) == 0x6e789e6aa1b965f4ULL);
  CHECK(amq::splitmix64(state) == 0x06c45d188009454fULL);
}

TEST_CASE("xoshiro256** matches the reference outputs from state {1, 2, 3, 4}") {
  auto random = amq::Random::from_state(1, 2, 3, 4);
  const std::uint64_t expected[] = {11520ULL,
                                    0ULL,
                                    1509978240ULL,
                                    1215971899390074240ULL,
                                    1216172134540287360ULL,
                                    607988272756665600ULL,
                                    16172922978634559625ULL,
                                    8476171486693032832ULL,
                                    10595114339597558777ULL,
                                    2904607092377533576ULL};
  for (const std::uint64_t value : expected) CHECK(random.next_u64() == value);
}

TEST_CASE("same seed gives the same stream, other seeds and streams differ") {
  amq::Random a(99), b(99), c(100);
  int equal_to_other_seed = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t x = a.next_u64();
    CHECK(x == b.next_u64());
    equal_to_other_seed += x == c.next_u64();
  }
  CHECK(equal_to_other_seed == 0);
  CHECK(amq::derive_seed(5, 0) != amq::derive_seed(5, 1));
  CHECK(amq::derive_seed(5, 0) != amq::derive_seed(6, 0));
}

TEST_CASE("stored Gaussian stream: every compiler and machine must give these bits") {
  // Recorded from this implementation; any change of the stream (and so of every projection)
  // fails here. Checked identical with GCC 12 and Clang 14, with and without FMA contraction.
  amq::Random random(7);
  std::vector<double> values(100000);
  for (auto& v : values) v = random.gaussian();
  CHECK(values[0] == -0.5413413905643043);
  CHECK(values[1] == 0.55774031448022876);
  CHECK(values[2] == 0.57130353615947305);
  CHECK(fingerprint(values.data(), values.size() * sizeof(double)) == 0xd9bb4d1efb27a679ULL);
}

TEST_CASE("portable_log agrees with the C library to within a few ulp") {
  amq::Random random(3);
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    // Spread over many binades, plus values next to 1 where ln is small.
    const double x = i % 2 == 0 ? std::ldexp(0.5 + random.uniform_double(), i % 200 - 100)
                                : 1.0 + (random.uniform_double() - 0.5) * 1e-6;
    const double exact = std::log(x);
    const double error = std::fabs(amq::detail::portable_log(x) - exact);
    worst = std::max(worst, error / std::max(std::fabs(exact), 1e-300));
  }
  CHECK(worst < 1e-14);
  CHECK(amq::detail::portable_log(1.0) == 0.0);
}

TEST_CASE("uniform draws lie in [0, 1) with mean 1/2") {
  amq::Random random(11);
  const int n = 200000;
  double sum_double = 0.0, sum_float = 0.0;
  for (int i = 0; i < n; ++i) {
    const double u = random.uniform_double();
    const float f = random.uniform_float();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    REQUIRE(f >= 0.0f);
    REQUIRE(f < 1.0f);
    sum_double += u;
    sum_float += f;
  }
  // Standard error of the mean is sqrt(1/12/n) = 6.5e-4; allow 5 of them.
  CHECK(std::fabs(sum_double / n - 0.5) < 3.3e-3);
  CHECK(std::fabs(sum_float / n - 0.5) < 3.3e-3);
}

TEST_CASE("Gaussian draws follow the standard normal distribution") {
  amq::Random random(2024);
  const int n = 200000;
  std::vector<double> values(n);
  double sum = 0.0, sum2 = 0.0, sum4 = 0.0;
  for (auto& v : values) {
    v = random.gaussian();
    sum += v;
    sum2 += v * v;
    sum4 += v * v * v * v;
  }
  const double mean = sum / n;
  const double variance = sum2 / n - mean * mean;
  CHECK(std::fabs(mean) < 0.012);            // 5 standard errors (1/sqrt(n) = 2.2e-3)
  CHECK(std::fabs(variance - 1.0) < 0.016);  // 5 standard errors (sqrt(2/n) = 3.2e-3)
  CHECK(std::fabs(sum4 / n - 3.0) < 0.07);   // fourth moment 3 (s.e. sqrt(96/n) = 0.022)

  // Kolmogorov–Smirnov distance to Φ; the 0.1% critical value at this n is 1.95/sqrt(n).
  std::sort(values.begin(), values.end());
  double distance = 0.0;
  for (int i = 0; i < n; ++i) {
    const double cdf = normal_cdf(values[i]);
    distance = std::max(
        {distance, cdf - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - cdf});
  }
  CHECK(distance < 1.95 / std::sqrt(static_cast<double>(n)));
}
