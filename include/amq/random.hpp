/// @file random.hpp
/// @brief A seeded random generator whose streams are bit-identical on every compiler and
/// machine: the projection of the LSH encoder is drawn from it.
///
/// Bits come from xoshiro256** seeded through splitmix64. Uniform values are formed from the
/// top bits by an exact scaling. Gaussians use Marsaglia's polar method with a logarithm
/// written in this file from exact IEEE operations (add, multiply, divide, square root, fused
/// multiply-add), so no libm transcendental whose last bit varies between libraries enters the
/// stream. The arithmetic assumes IEEE binary64 without excess precision (checked below) and
/// no value-changing optimisation such as -ffast-math.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>

namespace amq {

static_assert(std::numeric_limits<double>::is_iec559 && std::numeric_limits<float>::is_iec559,
              "amq's reproducible random streams need IEEE 754 float and double");
#if defined(FLT_EVAL_METHOD)
static_assert(FLT_EVAL_METHOD == 0,
              "amq's reproducible random streams need floating point without excess precision");
#endif

/// One step of splitmix64: advances `state` and returns a well-mixed 64-bit value. Used to
/// expand a user seed into generator state and to derive independent sub-seeds.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  state += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A sub-seed for stream number `stream` of `seed`; distinct streams are statistically
/// independent, so work split over threads can draw from its own stream and stay reproducible.
constexpr std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) noexcept {
  std::uint64_t state = seed ^ (stream * 0xd1b54a32d192ed03ULL);
  splitmix64(state);
  return splitmix64(state);
}

namespace detail {

/// Natural logarithm of a positive, finite, normal `x`, from exact IEEE operations only.
/// x = m · 2^e with m in [√½, √2); ln m = 2 atanh(s) with s = (m − 1)/(m + 1), |s| < 0.172,
/// summed as the odd series 2(s + s³/3 + s⁵/5 + …) to the term s²³/23 (error below 1e-17).
inline double portable_log(double x) noexcept {
  int e = 0;
  double m = std::frexp(x, &e);  // exact: m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;  // exact
    --e;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double series = 1.0 / 23.0;
  for (int k = 21; k >= 1; k -= 2) series = std::fma(series, s2, 1.0 / k);
  const double log_m = (2.0 * s) * series;
  return std::fma(static_cast<double>(e), 0.69314718055994530942, log_m);
}

}  // namespace detail

/// xoshiro256** generator with uniform and Gaussian draws that are reproducible everywhere.
/// Satisfies UniformRandomBitGenerator, so it also works with std::shuffle.
class Random {
 public:
  using result_type = std::uint64_t;

  /// A generator whose whole stream is a function of `seed`.
  explicit Random(std::uint64_t seed) noexcept {
    std::uint64_t state = seed;
    for (auto& word : state_) word = splitmix64(state);
  }

  /// A generator started from raw xoshiro256** state (not all zero), e.g. to check the
  /// published reference outputs.
  static Random from_state(std::uint64_t s0, std::uint64_t s1, std::uint64_t s2,
                           std::uint64_t s3) noexcept {
    Random random(0);
    random.state_[0] = s0;
    random.state_[1] = s1;
    random.state_[2] = s2;
    random.state_[3] = s3;
    return random;
  }

  /// Smallest value operator() returns.
  static constexpr result_type min() noexcept { return 0; }
  /// Largest value operator() returns.
  static constexpr result_type max() noexcept { return ~result_type{0}; }

  /// The next 64 random bits.
  result_type operator()() noexcept { return next_u64(); }

  /// The next 64 random bits (xoshiro256** step).
  std::uint64_t next_u64() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) on the grid of multiples of 2^-53 (the top 53 bits, scaled exactly).
  double uniform_double() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  /// Uniform in [0, 1) on the grid of multiples of 2^-24 (the top 24 bits, scaled exactly).
  float uniform_float() noexcept { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

  /// A standard normal value (mean 0, variance 1) by Marsaglia's polar method.
  /// The pair point (u, v) is drawn on a 2^-31 grid and its squared radius is summed in
  /// integers, so the only rounding steps are single IEEE operations.
  double gaussian() noexcept {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    for (;;) {
      const std::uint64_t bits = next_u64();
      const std::int64_t a = static_cast<std::int32_t>(static_cast<std::uint32_t>(bits >> 32));
      const std::int64_t b = static_cast<std::int32_t>(static_cast<std::uint32_t>(bits));
      // a² + b² <= 2^63 fits in uint64; the point lies strictly inside the unit disc when the
      // sum is in (0, 2^62).
      const std::uint64_t radius2 =
          static_cast<std::uint64_t>(a * a) + static_cast<std::uint64_t>(b * b);
      if (radius2 == 0 || radius2 >= (std::uint64_t{1} << 62)) continue;

      const double s = static_cast<double>(radius2) * 0x1.0p-62;
      const double factor = std::sqrt((-2.0 * detail::portable_log(s)) / s);
      spare_ = (static_cast<double>(b) * 0x1.0p-31) * factor;
      has_spare_ = true;
      return (static_cast<double>(a) * 0x1.0p-31) * factor;
    }
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }

  std::uint64_t state_[4] = {};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace amq
