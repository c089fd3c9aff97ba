/// @file feature_map.hpp
/// @brief Non-owning views of the row-major matrices amq reads and writes.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "amq/error.hpp"

namespace amq {

/// A row-major matrix of `rows` × `cols` elements that someone else owns.
template <class T>
struct MatrixView {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;

  /// The element at row `r`, column `c`.
  T& operator()(std::size_t r, std::size_t c) const { return data[r * cols + c]; }
  /// The first element of row `r`.
  T* row(std::size_t r) const { return data + r * cols; }
  std::size_t size() const { return rows * cols; }
  /// A view of the same elements as const (only for views of mutable elements).
  template <class U = T, class = std::enable_if_t<!std::is_const_v<U>>>
  operator MatrixView<const U>() const {
    return {data, rows, cols};
  }
};

/// A feature map: `width` × `height` pixels of `depth` channels, stored pixel by pixel
/// (row-major over y, then x; channels contiguous). As a matrix it has one row per pixel.
struct FeatureMap {
  const float* data = nullptr;
  std::size_t width = 0;
  std::size_t height = 0;
  std::size_t depth = 0;

  std::size_t pixels() const { return width * height; }
  /// The map as a pixels × depth matrix.
  MatrixView<const float> matrix() const { return {data, pixels(), depth}; }
};

namespace detail {

/// Refuses a feature matrix that holds NaN or infinity: such a pixel has no bucket.
inline void expect_finite(MatrixView<const float> features, const char* what) {
  for (std::size_t i = 0; i < features.size(); ++i) {
    AMQ_EXPECTS(std::isfinite(features.data[i]),
                what << " holds a non-finite value (" << features.data[i] << ") at row "
                     << i / features.cols << ", column " << i % features.cols);
  }
}

}  // namespace detail
}  // namespace amq
