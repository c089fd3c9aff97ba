/// @file image_preprocessing.hpp
/// @brief From a decoded 8-bit RGB image to the normalised input tensor of a network: framing
/// (whole image or center crop), antialiased bilinear resize, per-network normalisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "feature_source.hpp"

namespace amq::features {

/// How pixel values are mapped before the network.
enum class Normalisation {
  symmetric_unit,  ///< x / 127.5 − 1, in [−1, 1] (TF-slim MobileNetV2).
  imagenet         ///< (x / 255 − mean) / std with ImageNet's per-channel statistics.
};

/// Where an image lands in the network input: it is resized to resized_width ×
/// resized_height, and the input is the image_size square at (crop_x, crop_y) of that.
struct FramingPlan {
  std::int64_t resized_width = 0;   ///< Width after resizing.
  std::int64_t resized_height = 0;  ///< Height after resizing.
  std::int64_t crop_x = 0;          ///< Left edge of the input square in the resized image.
  std::int64_t crop_y = 0;          ///< Top edge of the input square in the resized image.
};

/// The framing of an image of this size. Center crop follows torchvision: the shorter side
/// becomes resize_size, the longer one resize_size · long / short truncated, and the crop
/// offset is round((resized − image_size) / 2).
FramingPlan plan_framing(const FeatureOptions& options, std::size_t width, std::size_t height);

/// The rectangle of the original image that the network input (and so the feature map) covers.
ImageRegion framed_region(const FeatureOptions& options, std::size_t width, std::size_t height);

/// The network input of a batch of images: [N, 3, image_size, image_size] float32. Each image
/// is resized with antialiased bilinear interpolation and rounded back to 8 bits (as an 8-bit
/// image library would), cropped, then normalised. Throws amq::Error for an empty image.
at::Tensor preprocess(const std::vector<RgbImage>& images, const FeatureOptions& options,
                      Normalisation normalisation);

}  // namespace amq::features
