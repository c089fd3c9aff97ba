/// @file hashing.hpp
/// @brief Keys of the method, (hash index k, code h_k(x)), and the MurmurHash3 the paper uses
/// to spread them over the Bloom filter. Everything here runs on host and device.
#pragma once

#include <cstdint>

#include "amq/config.hpp"

namespace amq {

/// The Bloom-filter key of code `code` from hash function `k`: k in the high 32 bits, the
/// code's two's-complement bits in the low 32, so equal codes of different hash functions
/// never collide.
AMQ_HOST_DEVICE constexpr std::uint64_t make_key(std::uint32_t k, std::int32_t code) {
  return (static_cast<std::uint64_t>(k) << 32) | static_cast<std::uint32_t>(code);
}

/// The key of LSH table `table` under AND-concatenation: the K = `codes_per_key` codes
/// codes[0 .. K) of hash functions table·K … table·K + K − 1 form one key, found only when all
/// K codes match. K = 1 is the paper's key, make_key(table, codes[0]), bit for bit. For K > 1
/// the codes are chained through MurmurHash3's finaliser (a bijection on 64 bits), so two
/// different K-tuples of one or two tables share a key with probability about 2^-64.
AMQ_HOST_DEVICE constexpr std::uint64_t make_table_key(std::uint32_t table,
                                                       const std::int32_t* codes,
                                                       std::uint32_t codes_per_key);

/// The 128-bit result of MurmurHash3 x64_128 as two 64-bit halves (h1 first).
struct Hash128 {
  std::uint64_t h1;  ///< First 64 bits of the digest.
  std::uint64_t h2;  ///< Second 64 bits of the digest.
};

namespace detail {

AMQ_HOST_DEVICE constexpr std::uint64_t rotl64(std::uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
AMQ_HOST_DEVICE constexpr std::uint64_t murmur3_fmix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

/// High 64 bits of the 128-bit product a·b; maps a hash to [0, n) as mul_high64(h, n)
/// without a division.
AMQ_HOST_DEVICE inline std::uint64_t mul_high64(std::uint64_t a, std::uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#elif defined(__SIZEOF_INT128__)
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#else
  const std::uint64_t a_lo = a & 0xffffffffULL, a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xffffffffULL, b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
  const std::uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffULL) + lo_hi;
  return a_hi * b_hi + (hi_lo >> 32) + (cross >> 32);
#endif
}

}  // namespace detail

AMQ_HOST_DEVICE constexpr std::uint64_t make_table_key(std::uint32_t table,
                                                       const std::int32_t* codes,
                                                       std::uint32_t codes_per_key) {
  std::uint64_t key = make_key(table, codes[0]);
  for (std::uint32_t i = 1; i < codes_per_key; ++i) {
    key = detail::murmur3_fmix64(key) ^ static_cast<std::uint32_t>(codes[i]);
  }
  return key;
}

/// MurmurHash3 x64_128 of the 8 little-endian bytes of `key` with a 32-bit `seed`; equal to
/// the reference algorithm run on an 8-byte buffer. An 8-byte input is only the tail block,
/// so it reduces to one mix of k1 followed by the finalisation.
AMQ_HOST_DEVICE constexpr Hash128 murmur3_x64_128(std::uint64_t key, std::uint32_t seed) {
  constexpr std::uint64_t c1 = 0x87c37b91114253d5ULL;
  constexpr std::uint64_t c2 = 0x4cf5ad432745937fULL;
  constexpr std::uint64_t length = 8;

  std::uint64_t h1 = seed;
  std::uint64_t h2 = seed;
  std::uint64_t k1 = key * c1;
  k1 = detail::rotl64(k1, 31);
  k1 *= c2;
  h1 ^= k1;

  h1 ^= length;
  h2 ^= length;
  h1 += h2;
  h2 += h1;
  h1 = detail::murmur3_fmix64(h1);
  h2 = detail::murmur3_fmix64(h2);
  h1 += h2;
  h2 += h1;
  return {h1, h2};
}

}  // namespace amq
