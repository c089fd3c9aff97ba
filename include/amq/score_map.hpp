/// @file score_map.hpp
/// @brief From a W × H score map to the image: nearest-neighbour upsampling and the image score.
///
/// A score map holds one anomaly score per feature-map pixel, stored like a feature map: row by
/// row over y, then x (index y · width + x). The method compares it with images and masks at
/// their own resolution, so it is upsampled by nearest neighbour; the image score summarises the
/// upsampled map in one number.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/error.hpp"

namespace amq {

/// How an image score summarises the upsampled score map. The numeric values are stored in
/// model files and never change.
enum class ImageScore : std::uint32_t {
  mean = 0,  ///< Mean over all image pixels, as in the AMQ paper.
  max = 1,   ///< Largest pixel score, as in PatchCore.
};

/// The printable name of an image-score rule ("mean" or "max").
inline const char* to_string(ImageScore rule) {
  switch (rule) {
    case ImageScore::mean:
      return "mean";
    case ImageScore::max:
      return "max";
  }
  return "unknown";
}

namespace detail {

/// The score-map coordinate that image coordinate `i` of `image_size` reads: the source cell
/// whose span contains the image pixel's centre, floor((i + 1/2) · map_size / image_size),
/// computed in integers so that every platform picks the same cell.
inline std::size_t nearest_source(std::size_t i, std::size_t map_size, std::size_t image_size) {
  const std::size_t source = ((2 * i + 1) * map_size) / (2 * image_size);
  return std::min(source, map_size - 1);
}

inline void expect_score_map(const float* scores, std::size_t width, std::size_t height) {
  AMQ_EXPECTS(scores != nullptr, "score map data is null");
  AMQ_EXPECTS(width > 0 && height > 0,
              "score map must have at least one pixel, got " << width << " x " << height);
}

// The image must be non-empty and its pixel count must fit in size_t (and in the output).
inline void expect_image_size(std::size_t image_width, std::size_t image_height) {
  AMQ_EXPECTS(image_width > 0 && image_height > 0,
              "image size must be positive, got " << image_width << " x " << image_height);
  AMQ_EXPECTS(
      image_height <= SIZE_MAX / sizeof(float) / image_width,
      "image of " << image_width << " x " << image_height << " pixels overflows the address space");
}

}  // namespace detail

/// Upsamples a `width` × `height` score map to `image_width` × `image_height` by nearest
/// neighbour and writes the image-sized map to `out` (image_width · image_height floats).
/// Downsampling works the same way (each image pixel reads the cell containing its centre).
inline void upsample_nearest(const float* scores, std::size_t width, std::size_t height,
                             std::size_t image_width, std::size_t image_height, float* out) {
  detail::expect_score_map(scores, width, height);
  detail::expect_image_size(image_width, image_height);
  AMQ_EXPECTS(out != nullptr, "upsampled score map output is null");

  std::vector<std::size_t> source_x(image_width);
  for (std::size_t x = 0; x < image_width; ++x) {
    source_x[x] = detail::nearest_source(x, width, image_width);
  }
  for (std::size_t y = 0; y < image_height; ++y) {
    const float* source_row = scores + detail::nearest_source(y, height, image_height) * width;
    float* out_row = out + y * image_width;
    for (std::size_t x = 0; x < image_width; ++x) out_row[x] = source_row[source_x[x]];
  }
}

/// Vector-returning twin of upsample_nearest.
inline std::vector<float> upsample_nearest(const float* scores, std::size_t width,
                                           std::size_t height, std::size_t image_width,
                                           std::size_t image_height) {
  detail::expect_image_size(image_width, image_height);
  std::vector<float> out(image_width * image_height);
  upsample_nearest(scores, width, height, image_width, image_height, out.data());
  return out;
}

/// The image score of a `width` × `height` score map seen at `image_width` × `image_height`:
/// the mean (paper) or the maximum (PatchCore) of the nearest-neighbour upsampled map.
/// The upsampled map is never formed: a map cell weighs as many image pixels as read it.
/// An image size of 0 × 0 means the map's own size.
inline float image_score(const float* scores, std::size_t width, std::size_t height,
                         ImageScore rule, std::size_t image_width = 0,
                         std::size_t image_height = 0) {
  detail::expect_score_map(scores, width, height);
  AMQ_EXPECTS((image_width == 0) == (image_height == 0),
              "image size must be both zero (map size) or both positive, got "
                  << image_width << " x " << image_height);
  if (image_width == 0) {
    image_width = width;
    image_height = height;
  }

  if (rule == ImageScore::max) {
    // Every map cell is read by at least one image pixel when upsampling; when the image is
    // smaller than the map some cells are skipped, so take the maximum over those read.
    float best = -INFINITY;
    for (std::size_t y = 0; y < image_height; ++y) {
      const float* row = scores + detail::nearest_source(y, height, image_height) * width;
      if (image_width >= width) {
        best = std::max(best, *std::max_element(row, row + width));
      } else {
        for (std::size_t x = 0; x < image_width; ++x) {
          best = std::max(best, row[detail::nearest_source(x, width, image_width)]);
        }
      }
    }
    return best;
  }
  AMQ_EXPECTS(rule == ImageScore::mean,
              "unknown image-score rule " << static_cast<std::uint32_t>(rule));

  std::vector<double> weight_x(width, 0.0);
  std::vector<double> weight_y(height, 0.0);
  for (std::size_t x = 0; x < image_width; ++x) {
    weight_x[detail::nearest_source(x, width, image_width)] += 1.0;
  }
  for (std::size_t y = 0; y < image_height; ++y) {
    weight_y[detail::nearest_source(y, height, image_height)] += 1.0;
  }
  double sum = 0.0;
  for (std::size_t y = 0; y < height; ++y) {
    double row_sum = 0.0;
    for (std::size_t x = 0; x < width; ++x) row_sum += weight_x[x] * scores[y * width + x];
    sum += weight_y[y] * row_sum;
  }
  return static_cast<float>(sum / (static_cast<double>(image_width) * image_height));
}

}  // namespace amq
