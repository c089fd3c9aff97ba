/// @file detail/walsh_hadamard.hpp
/// @brief The fast Walsh–Hadamard transform x ← H x (H the unnormalised n × n Hadamard matrix in
/// natural order, n a power of two) in n log2 n additions: a scalar path for any element type
/// and an AVX2 path for floats that gives the same bits.
///
/// Both paths run the same butterflies in the same stage order (half-width 1, 2, 4, …): each
/// stage replaces the pair (a, b) = (x[j], x[j + h]) by (a + b, a − b). Each output element is
/// therefore the same sequence of IEEE additions and subtractions on either path.
#pragma once

#include <cstddef>

#include "amq/config.hpp"

#if AMQ_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

namespace amq::detail {

/// In-place fast Walsh–Hadamard transform of `n` values (n a power of two), plain loops.
template <class T>
inline void walsh_hadamard_scalar(T* x, std::size_t n) {
  for (std::size_t h = 1; h < n; h *= 2) {
    for (std::size_t i = 0; i < n; i += 2 * h) {
      for (std::size_t j = i; j < i + h; ++j) {
        const T a = x[j];
        const T b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
}

/// x[i] ← x[i] · signs[i] for i < n: a diagonal ±1 matrix, exact in floating point.
inline void flip_signs_scalar(float* x, const float* signs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] *= signs[i];
}

#if AMQ_HAVE_AVX2_PATH
/// The three butterfly stages inside one register of 8 floats (half-widths 1, 2, 4). In each
/// stage `partner` holds every lane's butterfly partner; the lower lane of a pair takes
/// x + partner = a + b, the upper lane partner − x = a − b, as in the scalar loop.
AMQ_TARGET_AVX2 inline __m256 walsh_hadamard_8(__m256 x) {
  __m256 partner = _mm256_permute_ps(x, 0xb1);  // lanes (1,0,3,2, 5,4,7,6)
  x = _mm256_blend_ps(_mm256_add_ps(x, partner), _mm256_sub_ps(partner, x), 0xaa);
  partner = _mm256_permute_ps(x, 0x4e);  // lanes (2,3,0,1, 6,7,4,5)
  x = _mm256_blend_ps(_mm256_add_ps(x, partner), _mm256_sub_ps(partner, x), 0xcc);
  partner = _mm256_permute2f128_ps(x, x, 0x01);  // the two 128-bit halves swapped
  return _mm256_blend_ps(_mm256_add_ps(x, partner), _mm256_sub_ps(partner, x), 0xf0);
}

/// The AVX2 twin of walsh_hadamard_scalar<float>; needs n ≥ 8 (smaller n: use the scalar).
AMQ_TARGET_AVX2 inline void walsh_hadamard_avx2(float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) {
    _mm256_storeu_ps(x + i, walsh_hadamard_8(_mm256_loadu_ps(x + i)));
  }
  for (std::size_t h = 8; h < n; h *= 2) {
    for (std::size_t i = 0; i < n; i += 2 * h) {
      for (std::size_t j = i; j < i + h; j += 8) {
        const __m256 a = _mm256_loadu_ps(x + j);
        const __m256 b = _mm256_loadu_ps(x + j + h);
        _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
      }
    }
  }
}

/// The AVX2 twin of flip_signs_scalar; needs n to be a multiple of 8.
AMQ_TARGET_AVX2 inline void flip_signs_avx2(float* x, const float* signs, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) {
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(signs + i)));
  }
}
#endif

/// x ← H · diag(signs) · x for n floats (n a power of two), with AVX2 when `use_avx2` is set,
/// the processor has it and n ≥ 8.
inline void signed_walsh_hadamard(float* x, const float* signs, std::size_t n, bool use_avx2) {
#if AMQ_HAVE_AVX2_PATH
  if (use_avx2 && n >= 8 && has_avx2()) {
    flip_signs_avx2(x, signs, n);
    walsh_hadamard_avx2(x, n);
    return;
  }
#endif
  (void)use_avx2;
  flip_signs_scalar(x, signs, n);
  walsh_hadamard_scalar(x, n);
}

}  // namespace amq::detail
