/// @file detail/quantize.hpp
/// @brief Quantisation of projected values into LSH codes, h = floor((w·x + b) / ε), with a
/// scalar path and an AVX2 path that give identical codes.
///
/// Both paths compute the same three IEEE single-precision operations per value: one
/// addition, one true division (never a reciprocal multiply) and a floor, so each code is a
/// function of the projected value alone, whichever path ran.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "amq/config.hpp"

#if AMQ_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

namespace amq::detail {

/// Smallest and one past the largest floor value that converts to int32 exactly.
inline constexpr float kCodeLow = -2147483648.0f;
inline constexpr float kCodeHigh = 2147483648.0f;

/// The bucket of one projected value, or false when it falls outside int32 (or is NaN).
AMQ_HOST_DEVICE inline bool quantize_one(float projected, float offset, float bucket_width,
                                         std::int32_t& code) {
  const float bucket = std::floor((projected + offset) / bucket_width);
  if (!(bucket >= kCodeLow && bucket < kCodeHigh)) return false;
  code = static_cast<std::int32_t>(bucket);
  return true;
}

/// Codes of one pixel: codes[k] = floor((projected[k] + offsets[k]) / bucket_width) for
/// k < n. Returns false if any code is out of int32 range; such a code's value is unspecified.
inline bool quantize_row_scalar(const float* projected, const float* offsets, float bucket_width,
                                std::size_t n, std::int32_t* codes) {
  bool in_range = true;
  for (std::size_t k = 0; k < n; ++k) {
    in_range &= quantize_one(projected[k], offsets[k], bucket_width, codes[k]);
  }
  return in_range;
}

#if AMQ_HAVE_AVX2_PATH
/// The AVX2 twin of quantize_row_scalar: eight codes per step, same operations, same codes.
AMQ_TARGET_AVX2 inline bool quantize_row_avx2(const float* projected, const float* offsets,
                                              float bucket_width, std::size_t n,
                                              std::int32_t* codes) {
  const __m256 width = _mm256_set1_ps(bucket_width);
  const __m256 low = _mm256_set1_ps(kCodeLow);
  const __m256 high = _mm256_set1_ps(kCodeHigh);
  __m256 all_valid = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 sum = _mm256_add_ps(_mm256_loadu_ps(projected + k), _mm256_loadu_ps(offsets + k));
    const __m256 bucket = _mm256_floor_ps(_mm256_div_ps(sum, width));
    // Ordered comparisons are false for NaN, so NaN counts as out of range.
    const __m256 valid = _mm256_and_ps(_mm256_cmp_ps(bucket, low, _CMP_GE_OQ),
                                       _mm256_cmp_ps(bucket, high, _CMP_LT_OQ));
    all_valid = _mm256_and_ps(all_valid, valid);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + k), _mm256_cvttps_epi32(bucket));
  }
  const bool body_valid = _mm256_movemask_ps(all_valid) == 0xff;
  const bool tail_valid =
      quantize_row_scalar(projected + k, offsets + k, bucket_width, n - k, codes + k);
  return body_valid && tail_valid;
}
#endif

/// Quantises one pixel with AVX2 when the processor has it and `allow_avx2` is set.
inline bool quantize_row(const float* projected, const float* offsets, float bucket_width,
                         std::size_t n, std::int32_t* codes, bool allow_avx2 = true) {
#if AMQ_HAVE_AVX2_PATH
  if (allow_avx2 && has_avx2()) {
    return quantize_row_avx2(projected, offsets, bucket_width, n, codes);
  }
#endif
  (void)allow_avx2;
  return quantize_row_scalar(projected, offsets, bucket_width, n, codes);
}

}  // namespace amq::detail
