/// @file detail/split_block_avx2.hpp
/// @brief AVX2 probes of a split-block Bloom filter: the eight one-bit masks of a key are
/// built in one register and a whole 256-bit block is tested or updated at once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "amq/bloom_policies.hpp"
#include "amq/config.hpp"

#if AMQ_HAVE_AVX2_PATH
#include <immintrin.h>

namespace amq::detail {

/// The eight word masks of `pattern`, lane i holding SplitBlockBloom::word_mask(pattern, i).
AMQ_TARGET_AVX2 inline __m256i split_block_masks(std::uint32_t pattern) {
  const __m256i salts = _mm256_setr_epi32(
      static_cast<int>(SplitBlockBloom::salt(0)), static_cast<int>(SplitBlockBloom::salt(1)),
      static_cast<int>(SplitBlockBloom::salt(2)), static_cast<int>(SplitBlockBloom::salt(3)),
      static_cast<int>(SplitBlockBloom::salt(4)), static_cast<int>(SplitBlockBloom::salt(5)),
      static_cast<int>(SplitBlockBloom::salt(6)), static_cast<int>(SplitBlockBloom::salt(7)));
  const __m256i products = _mm256_mullo_epi32(_mm256_set1_epi32(static_cast<int>(pattern)), salts);
  return _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_srli_epi32(products, 27));
}

/// True when every bit of the key's masks is set in its block (one vptest).
AMQ_TARGET_AVX2 inline bool split_block_query_avx2(const std::uint32_t* words,
                                                   SplitBlockBloom::Location loc) {
  const __m256i block = _mm256_load_si256(reinterpret_cast<const __m256i*>(words + loc.block * 8));
  return _mm256_testc_si256(block, split_block_masks(loc.pattern)) != 0;
}

/// ORs the key's masks into its block.
AMQ_TARGET_AVX2 inline void split_block_insert_avx2(std::uint32_t* words,
                                                    SplitBlockBloom::Location loc) {
  auto* block = reinterpret_cast<__m256i*>(words + loc.block * 8);
  _mm256_store_si256(block,
                     _mm256_or_si256(_mm256_load_si256(block), split_block_masks(loc.pattern)));
}

/// Bulk insert of `n` keys with AVX2 (words must be 32-byte aligned); `prefetch` asks for
/// each batch's blocks ahead of use, worthwhile once the filter exceeds the caches.
AMQ_TARGET_AVX2 inline void split_block_add_avx2(std::uint32_t* words, const BloomParams& params,
                                                 const std::uint64_t* keys, std::size_t n,
                                                 bool prefetch) {
  SplitBlockBloom::Location loc[kProbeBatch];
  for (std::size_t first = 0; first < n; first += kProbeBatch) {
    const std::size_t m = n - first < kProbeBatch ? n - first : kProbeBatch;
    for (std::size_t i = 0; i < m; ++i) {
      loc[i] = SplitBlockBloom::locate(params, keys[first + i]);
      if (prefetch) SplitBlockBloom::prefetch(words, params, loc[i]);
    }
    for (std::size_t i = 0; i < m; ++i) split_block_insert_avx2(words, loc[i]);
  }
}

/// Bulk query of `n` keys with AVX2: found[i] = 1 when key i is (probably) present.
/// Returns the number found.
AMQ_TARGET_AVX2 inline std::size_t split_block_contains_avx2(const std::uint32_t* words,
                                                             const BloomParams& params,
                                                             const std::uint64_t* keys,
                                                             std::size_t n, std::uint8_t* found,
                                                             bool prefetch) {
  SplitBlockBloom::Location loc[kProbeBatch];
  std::size_t hits = 0;
  for (std::size_t first = 0; first < n; first += kProbeBatch) {
    const std::size_t m = n - first < kProbeBatch ? n - first : kProbeBatch;
    for (std::size_t i = 0; i < m; ++i) {
      loc[i] = SplitBlockBloom::locate(params, keys[first + i]);
      if (prefetch) SplitBlockBloom::prefetch(words, params, loc[i]);
    }
    for (std::size_t i = 0; i < m; ++i) {
      const bool hit = split_block_query_avx2(words, loc[i]);
      hits += hit;
      if (found != nullptr) found[first + i] = hit;
    }
  }
  return hits;
}

}  // namespace amq::detail
#endif
