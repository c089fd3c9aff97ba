/// @file device_logic.hpp
/// @brief The per-element steps of the CUDA kernels, written once for host and device: the
/// key of one projected value, the words a key sets, the split-block probe on a loaded block,
/// and the pixel score. This header needs no CUDA: CPU builds compile and test it, so the
/// arithmetic the GPU runs is checked on every CI machine.
#pragma once

#include <cstddef>
#include <cstdint>

#include "amq/bloom_policies.hpp"
#include "amq/config.hpp"
#include "amq/detail/quantize.hpp"
#include "amq/hashing.hpp"

namespace amq::cuda {

/// The key (k, h_k(x)) of one projected value w_k · x: h_k = floor((w_k · x + b_k) / ε) by the
/// CPU encoder's own quantiser, then make_key. False when the code is outside int32 (or the
/// value is NaN); `key` is then left unchanged.
AMQ_HOST_DEVICE inline bool projected_key(float projected, float offset, float bucket_width,
                                          std::uint32_t k, std::uint64_t& key) {
  std::int32_t code = 0;
  if (!amq::detail::quantize_one(projected, offset, bucket_width, code)) return false;
  key = make_key(k, code);
  return true;
}

/// Butterfly t (0 ≤ t < n/2) of the Walsh–Hadamard stage of half-width h: the pair
/// (x[j], x[j + h]) with j = (t / h)·2h + t mod h becomes (a + b, a − b). Running every t of
/// the stages h = 1, 2, 4, … in turn is detail::walsh_hadamard_scalar, bit for bit, in any
/// order of t within a stage.
AMQ_HOST_DEVICE inline void walsh_hadamard_butterfly(float* x, std::size_t t, std::size_t h) {
  const std::size_t j = (t / h) * 2 * h + t % h;
  const float a = x[j];
  const float b = x[j + h];
  x[j] = a + b;
  x[j + h] = a - b;
}

/// The pixel score of the paper's eq. 6, s = 1 − found / G, in the same double-precision
/// expression as the CPU scorer so that equal hit counts give bit-equal scores.
AMQ_HOST_DEVICE inline float pixel_score(std::uint32_t found, std::uint32_t hashes) {
  return static_cast<float>(1.0 - static_cast<double>(found) / static_cast<double>(hashes));
}

/// The 32-bit words a key sets, as (word index, one-bit mask) pairs; a device insert applies
/// each with atomicOr, a host one with |=. Specialised per Bloom policy.
template <class Policy>
struct ProbeWords;

/// Split-block: one bit in each of the eight words of the key's block.
template <>
struct ProbeWords<SplitBlockBloom> {
  /// Calls `visit(word_index, mask)` for the eight words of the key at `loc`.
  template <class Visit>
  AMQ_HOST_DEVICE static void for_each(const BloomParams& params, SplitBlockBloom::Location loc,
                                       Visit&& visit) {
    (void)params;
    const std::uint64_t first = loc.block * 8;
    for (int i = 0; i < 8; ++i) visit(first + i, SplitBlockBloom::word_mask(loc.pattern, i));
  }
};

/// Classic: B bit positions (h1 + i·h2) mod M.
template <>
struct ProbeWords<ClassicBloom> {
  /// Calls `visit(word_index, mask)` for each of the B probes of the key at `loc`.
  // Local copy of ClassicBloom's probe stepping, whose next_position is private: the sequence
  // must stay equal to ClassicBloom::insert (the CPU test of this header checks that it does).
  // Once bloom_policies.hpp exposes a host/device probe visitor, this should call it instead.
  template <class Visit>
  AMQ_HOST_DEVICE static void for_each(const BloomParams& params, ClassicBloom::Location loc,
                                       Visit&& visit) {
    std::uint64_t position = loc.first;
    for (std::uint32_t i = 0; i < params.probes; ++i) {
      visit(position >> 5, std::uint32_t{1} << (position & 31));
      position += loc.step;  // both below M <= 2^46: no overflow
      if (position >= params.bits) position -= params.bits;
    }
  }
};

/// The split-block probe on a block already loaded (eight words, e.g. by two 16-byte loads
/// on the GPU): true when every bit the pattern asks for is set. Equal to
/// SplitBlockBloom::query on the same block.
AMQ_HOST_DEVICE inline bool split_block_contains(const std::uint32_t (&block)[8],
                                                 std::uint32_t pattern) {
  std::uint32_t missing = 0;
  for (int i = 0; i < 8; ++i) missing |= SplitBlockBloom::word_mask(pattern, i) & ~block[i];
  return missing == 0;
}

/// The probe of one projected value: its key's membership in `words` (1 or 0) added to
/// `found`. False when the code is outside int32, and `found` is then unchanged.
template <class Policy>
AMQ_HOST_DEVICE inline bool probe_projected(float projected, float offset, float bucket_width,
                                            std::uint32_t k, const std::uint32_t* words,
                                            const BloomParams& params, std::uint32_t& found) {
  std::uint64_t key = 0;
  if (!projected_key(projected, offset, bucket_width, k, key)) return false;
  found += Policy::query(words, params, Policy::locate(params, key)) ? 1u : 0u;
  return true;
}

}  // namespace amq::cuda
