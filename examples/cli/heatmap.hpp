/// @file heatmap.hpp
/// @brief Heatmaps: the upsampled score map drawn over its image in a colour map, with the
/// ground-truth defect outlined when a mask is known.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

namespace amq::cli {

/// How a heatmap maps scores to colours and blends them over the image.
struct HeatmapStyle {
  float low = 0.0f;    ///< Score drawn in the coldest colour (and below).
  float high = 1.0f;   ///< Score drawn in the hottest colour (and above).
  double alpha = 0.5;  ///< Weight of the colour map against the image.
};

/// An RGB overlay of `scores` (one float per pixel of `rgb`, row-major) on `rgb` (8-bit, three
/// channels), coloured with the jet colour map between style.low and style.high. When `mask` is
/// not null (one 0/1 byte per pixel) the outline of each defect region is drawn in white.
cv::Mat render_heatmap(const cv::Mat& rgb, const float* scores, const std::uint8_t* mask,
                       const HeatmapStyle& style);

}  // namespace amq::cli
