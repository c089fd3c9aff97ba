/// @file bloom_policies.hpp
/// @brief Bloom filter layouts: where a key's bits go. ClassicBloom is the paper's filter
/// (M bits, B probes anywhere in it); SplitBlockBloom puts all of a key's bits in one 256-bit
/// block, one cache line per probe. The per-key functions run on host and device and are
/// shared by every backend, so filters are bit-identical wherever they are built.
///
/// A policy provides: normalized(params) (validate, round), word_count, a Location computed
/// once per key from its MurmurHash3, insert/query of a Location on raw words, a host
/// prefetch, and the theory used for sizing (expected_fpr, best_probes, granule_bits).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "amq/config.hpp"
#include "amq/error.hpp"
#include "amq/hashing.hpp"

namespace amq {

/// Size and hashing of a Bloom filter.
struct BloomParams {
  std::uint64_t bits = 0;    ///< M, filter size in bits.
  std::uint32_t probes = 0;  ///< B, bits set per key (split-block: always 8).
  std::uint32_t seed = 0;    ///< MurmurHash3 seed of the keys.
};

/// Parameters are equal when size, probe count and seed all are.
constexpr bool operator==(const BloomParams& a, const BloomParams& b) {
  return a.bits == b.bits && a.probes == b.probes && a.seed == b.seed;
}
/// Negation of operator==.
constexpr bool operator!=(const BloomParams& a, const BloomParams& b) { return !(a == b); }

/// Prints `{bits=…, probes=…, seed=…}` for error messages and logs.
inline std::ostream& operator<<(std::ostream& out, const BloomParams& p) {
  return out << "{bits=" << p.bits << ", probes=" << p.probes << ", seed=" << p.seed << '}';
}

namespace detail {

/// Largest filter accepted: 2^46 bits (8 TiB), far above any machine here, low enough that
/// probe arithmetic on bit positions cannot overflow.
inline constexpr std::uint64_t kMaxFilterBits = std::uint64_t{1} << 46;

/// Bytes of physical memory of this machine; 0 where the system does not say.
inline std::uint64_t physical_memory_bytes() {
#if defined(__unix__) || defined(__APPLE__)
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
  }
#endif
  return 0;
}

/// Refuses a filter of `bits` that exceeds 2^46 bits or the machine's physical memory: such a
/// request is a wrong M (or a target FPR far too small), and it is named before any training
/// time is spent or any allocation is tried.
inline void expect_filter_fits(std::uint64_t bits) {
  AMQ_EXPECTS(bits <= kMaxFilterBits, "filter size M must be at most 2^46 bits, got " << bits);
  const std::uint64_t memory = physical_memory_bytes();
  AMQ_EXPECTS(memory == 0 || bits / 8 <= memory,
              "a filter of M = " << bits << " bits needs " << bits / 8 << " bytes, more than the "
                                 << memory << " bytes of physical memory");
}

/// Keys handled per batch by bulk add and contains: located and prefetched first, probed
/// second, so up to this many keys' cache misses are in flight at once.
inline constexpr std::size_t kProbeBatch = 16;

/// Hints the cache to fetch the line holding `address`; a no-op where unsupported.
inline void prefetch(const void* address) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(address, 0, 3);
#else
  (void)address;
#endif
}

/// Set bits in a 32-bit word.
inline int popcount32(std::uint32_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcount(x);
#else
  int count = 0;
  for (; x != 0; x &= x - 1) ++count;
  return count;
#endif
}

/// Poisson probability of `j` events at mean `mean`, computed in log space so large means
/// neither overflow nor underflow.
inline double poisson_pmf(double mean, double j) {
  if (mean == 0.0) return j == 0.0 ? 1.0 : 0.0;
  return std::exp(j * std::log(mean) - mean - std::lgamma(j + 1.0));
}

}  // namespace detail

/// The paper's Bloom filter: M bits, B probes at (h1 + i·h2) mod M for i = 0 … B−1, where
/// (h1, h2) is the key's MurmurHash3 x64_128 (double hashing, Kirsch–Mitzenmacher). The sum
/// is taken modulo M in exact integer arithmetic: ((h1 mod M) + i·(h2 mod M)) mod M.
struct ClassicBloom {
  /// A key's probe sequence: first bit position and stride, both in [0, M).
  struct Location {
    std::uint64_t first;  ///< h1 mod M.
    std::uint64_t step;   ///< h2 mod M.
  };

  /// Sizes searched by size_for_fpr are multiples of this many bits (one cache line).
  static constexpr std::uint64_t granule_bits = 512;

  /// Validated parameters: M in [1, 2^46] and B >= 1, kept as given.
  static BloomParams normalized(const BloomParams& params) {
    AMQ_EXPECTS(params.bits > 0 && params.bits <= detail::kMaxFilterBits,
                "classic Bloom filter size must be in [1, 2^46] bits, got " << params.bits);
    AMQ_EXPECTS(params.probes > 0,
                "classic Bloom filter probe count B must be positive, got " << params.probes);
    return params;
  }

  /// 32-bit words holding M bits; the bits past M in the last word stay zero.
  static std::size_t word_count(const BloomParams& params) {
    return static_cast<std::size_t>((params.bits + 31) / 32);
  }

  /// The probe sequence of `key`.
  AMQ_HOST_DEVICE static Location locate(const BloomParams& params, std::uint64_t key) {
    const Hash128 h = murmur3_x64_128(key, params.seed);
    return {h.h1 % params.bits, h.h2 % params.bits};
  }

  /// Sets the B bits of a key (not atomic: one writer at a time).
  AMQ_HOST_DEVICE static void insert(std::uint32_t* words, const BloomParams& params,
                                     Location loc) {
    std::uint64_t position = loc.first;
    for (std::uint32_t i = 0; i < params.probes; ++i) {
      words[position >> 5] |= std::uint32_t{1} << (position & 31);
      position = next_position(position, loc.step, params.bits);
    }
  }

  /// True when all B bits of a key are set; stops at the first clear bit.
  AMQ_HOST_DEVICE static bool query(const std::uint32_t* words, const BloomParams& params,
                                    Location loc) {
    std::uint64_t position = loc.first;
    for (std::uint32_t i = 0; i < params.probes; ++i) {
      if ((words[position >> 5] & (std::uint32_t{1} << (position & 31))) == 0) return false;
      position = next_position(position, loc.step, params.bits);
    }
    return true;
  }

  /// Asks the cache for the words of every probe of a key ahead of insert or query.
  static void prefetch(const std::uint32_t* words, const BloomParams& params, Location loc) {
    std::uint64_t position = loc.first;
    for (std::uint32_t i = 0; i < params.probes; ++i) {
      detail::prefetch(words + (position >> 5));
      position = next_position(position, loc.step, params.bits);
    }
  }

  /// Theoretical false-positive rate after `keys` distinct insertions: (1 − e^(−B·n/M))^B.
  static double expected_fpr(std::uint64_t bits, std::uint32_t probes, double keys) {
    const double b = probes;
    return std::pow(-std::expm1(-b * keys / static_cast<double>(bits)), b);
  }

  /// The probe count with the lowest expected_fpr for M bits and n keys: the integer on
  /// either side of (M/n)·ln 2, at least 1 and at most 64 (beyond that the rate is nil).
  static std::uint32_t best_probes(std::uint64_t bits, double keys) {
    const double ideal = static_cast<double>(bits) / std::max(keys, 1.0) * 0.6931471805599453;
    const double low = std::clamp(std::floor(ideal), 1.0, 64.0);
    const double high = std::clamp(std::ceil(ideal), 1.0, 64.0);
    const auto b_low = static_cast<std::uint32_t>(low), b_high = static_cast<std::uint32_t>(high);
    return expected_fpr(bits, b_low, keys) <= expected_fpr(bits, b_high, keys) ? b_low : b_high;
  }

  /// Observed false-positive rate of a random query against `words`: fill^B.
  static double estimated_fpr(const std::uint32_t* words, const BloomParams& params,
                              std::uint64_t set_bits) {
    (void)words;
    return std::pow(static_cast<double>(set_bits) / static_cast<double>(params.bits),
                    static_cast<double>(params.probes));
  }

 private:
  AMQ_HOST_DEVICE static std::uint64_t next_position(std::uint64_t position, std::uint64_t step,
                                                     std::uint64_t bits) {
    position += step;  // both < M <= 2^46: no overflow
    return position >= bits ? position - bits : position;
  }
};

/// Split-block Bloom filter (Putze et al.; the layout of Apache Parquet): the filter is an
/// array of 256-bit blocks, each eight 32-bit words. A key picks one block from the high
/// half of the hash (h1) and sets one bit in each of the block's eight words, the bit of
/// word i being the top five bits of pattern · salt_i, with the pattern taken from h2. One
/// key touches one 32-byte block, hence one cache line; B is always 8.
struct SplitBlockBloom {
  /// A key's block index and the 32-bit pattern its eight bits are derived from.
  struct Location {
    std::uint64_t block;    ///< Block index in [0, M/256), from h1.
    std::uint32_t pattern;  ///< Low 32 bits of h2.
  };

  /// Bits per block, and the granule of M.
  static constexpr std::uint64_t granule_bits = 256;
  /// Bits set per key.
  static constexpr std::uint32_t block_probes = 8;

  /// Odd multipliers, one per word of a block (the Parquet specification's constants).
  AMQ_HOST_DEVICE static constexpr std::uint32_t salt(int i) {
    constexpr std::uint32_t salts[8] = {0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
                                        0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U};
    return salts[i];
  }

  /// Validated parameters with M rounded up to a whole number of blocks and B set to 8.
  static BloomParams normalized(const BloomParams& params) {
    AMQ_EXPECTS(params.bits > 0 && params.bits <= detail::kMaxFilterBits,
                "split-block Bloom filter size must be in [1, 2^46] bits, got " << params.bits);
    BloomParams out = params;
    out.bits = (params.bits + granule_bits - 1) / granule_bits * granule_bits;
    out.probes = block_probes;
    return out;
  }

  /// 32-bit words of the filter: eight per block.
  static std::size_t word_count(const BloomParams& params) {
    return static_cast<std::size_t>(params.bits / 32);
  }

  /// Block and pattern of `key`. The block is mul_high64(h1, blocks), an unbiased map of
  /// h1 onto [0, blocks) without a division.
  AMQ_HOST_DEVICE static Location locate(const BloomParams& params, std::uint64_t key) {
    const Hash128 h = murmur3_x64_128(key, params.seed);
    return {detail::mul_high64(h.h1, params.bits / granule_bits), static_cast<std::uint32_t>(h.h2)};
  }

  /// The bit the pattern sets in word `i` of its block, as a one-bit mask.
  AMQ_HOST_DEVICE static constexpr std::uint32_t word_mask(std::uint32_t pattern, int i) {
    return std::uint32_t{1} << ((pattern * salt(i)) >> 27);
  }

  /// Sets the key's eight bits (not atomic: one writer at a time).
  AMQ_HOST_DEVICE static void insert(std::uint32_t* words, const BloomParams& params,
                                     Location loc) {
    (void)params;
    std::uint32_t* block = words + loc.block * 8;
    for (int i = 0; i < 8; ++i) block[i] |= word_mask(loc.pattern, i);
  }

  /// True when all eight bits of the key are set in its block.
  AMQ_HOST_DEVICE static bool query(const std::uint32_t* words, const BloomParams& params,
                                    Location loc) {
    (void)params;
    const std::uint32_t* block = words + loc.block * 8;
    std::uint32_t missing = 0;
    for (int i = 0; i < 8; ++i) missing |= word_mask(loc.pattern, i) & ~block[i];
    return missing == 0;
  }

  /// Asks the cache for the key's block.
  static void prefetch(const std::uint32_t* words, const BloomParams& params, Location loc) {
    (void)params;
    detail::prefetch(words + loc.block * 8);
  }

  /// Theoretical false-positive rate after n distinct insertions: the block load is Poisson
  /// with mean λ = n/blocks, and a block holding j keys answers a random query positively
  /// with probability (1 − (31/32)^j)^8. Summed over j within ±12 standard deviations.
  static double expected_fpr(std::uint64_t bits, std::uint32_t probes, double keys) {
    (void)probes;
    const double mean = keys / static_cast<double>(bits / granule_bits);
    const double spread = 12.0 * std::sqrt(mean) + 12.0;
    const double first = std::max(0.0, std::floor(mean - spread));
    const double last = std::ceil(mean + spread);
    double fpr = 0.0;
    for (double j = first; j <= last; j += 1.0) {
      fpr += detail::poisson_pmf(mean, j) * std::pow(-std::expm1(j * std::log1p(-1.0 / 32)), 8);
    }
    return fpr;
  }

  /// Always 8: the layout fixes one bit per word of a block.
  static std::uint32_t best_probes(std::uint64_t, double) { return block_probes; }

  /// Observed false-positive rate of a random query: the mean over blocks of the product of
  /// the eight word fills (a query hits one uniformly chosen block and one bit per word).
  static double estimated_fpr(const std::uint32_t* words, const BloomParams& params,
                              std::uint64_t set_bits) {
    (void)set_bits;
    const std::uint64_t blocks = params.bits / granule_bits;
    double sum = 0.0;
    for (std::uint64_t b = 0; b < blocks; ++b) {
      double product = 1.0;
      for (int i = 0; i < 8; ++i) product *= detail::popcount32(words[b * 8 + i]) / 32.0;
      sum += product;
    }
    return sum / static_cast<double>(blocks);
  }
};

/// Number of probes by the paper's eq. 5: B = round(M / (N·W·H·G) · ln 2), at least 1, where
/// `inserted_keys` is N·W·H·G, the count of (k, code) insertions including repeats.
inline std::uint32_t paper_probe_count(std::uint64_t bits, std::uint64_t inserted_keys) {
  AMQ_EXPECTS(bits > 0, "filter size M must be positive, got " << bits);
  AMQ_EXPECTS(inserted_keys > 0, "inserted key count N*W*H*G must be positive, got 0");
  const double b = std::round(static_cast<double>(bits) / static_cast<double>(inserted_keys) *
                              0.6931471805599453);
  const double limit = static_cast<double>(std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(std::clamp(b, 1.0, limit));
}

/// Smallest filter (a multiple of Policy::granule_bits) whose theoretical false-positive rate
/// after `distinct_keys` insertions is at most `fpr`, with the best probe count for that size.
/// This sizes by distinct keys, which can be far fewer than the paper's N·W·H·G.
template <class Policy>
BloomParams size_for_fpr(std::uint64_t distinct_keys, double fpr, std::uint32_t seed) {
  AMQ_EXPECTS(distinct_keys > 0, "distinct key count must be positive, got 0");
  AMQ_EXPECTS(fpr > 0.0 && fpr < 1.0, "target false-positive rate must be in (0, 1), got " << fpr);
  const auto keys = static_cast<double>(distinct_keys);
  const auto rate_at = [&](std::uint64_t granules) {
    const std::uint64_t bits = granules * Policy::granule_bits;
    return Policy::expected_fpr(bits, Policy::best_probes(bits, keys), keys);
  };

  // Double until the target is met, then bisect; with the best B the rate falls with M.
  const std::uint64_t max_granules = detail::kMaxFilterBits / Policy::granule_bits;
  std::uint64_t high = 1;
  while (rate_at(high) > fpr) {
    AMQ_EXPECTS(high < max_granules, "no filter up to 2^46 bits reaches false-positive rate "
                                         << fpr << " for " << distinct_keys << " keys");
    high = std::min(high * 2, max_granules);
  }
  std::uint64_t low = high / 2;  // rate_at(low) > fpr, or low == 0
  while (high - low > 1) {
    const std::uint64_t middle = low + (high - low) / 2;
    (rate_at(middle) > fpr ? low : high) = middle;
  }
  const std::uint64_t bits = high * Policy::granule_bits;
  return {bits, Policy::best_probes(bits, keys), seed};
}

}  // namespace amq
