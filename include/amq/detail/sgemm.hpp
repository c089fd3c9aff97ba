/// @file detail/sgemm.hpp
/// @brief The one BLAS call of the dense projection, with its size checks.
#pragma once

#include <cblas.h>

#include <climits>
#include <cstddef>

#include "amq/error.hpp"
#include "amq/feature_map.hpp"

namespace amq::detail {

/// projected = features · directionsᵀ, where `directions` is G × D row-major: the w_k · x of
/// every pixel and hash function in one single-precision GEMM.
inline void project_sgemm(MatrixView<const float> features, const float* directions,
                          MatrixView<float> projected) {
  const std::size_t limit = static_cast<std::size_t>(INT_MAX);
  AMQ_EXPECTS(features.rows <= limit && features.cols <= limit && projected.cols <= limit,
              "BLAS sizes must fit in int, got " << features.rows << " x " << features.cols
                                                 << " features and " << projected.cols
                                                 << " hash functions");
  if (features.rows == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(features.rows),
              static_cast<int>(projected.cols), static_cast<int>(features.cols), 1.0f,
              features.data, static_cast<int>(features.cols), directions,
              static_cast<int>(features.cols), 0.0f, projected.data,
              static_cast<int>(projected.cols));
}

}  // namespace amq::detail
