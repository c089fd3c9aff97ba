/// @file image_io.hpp
/// @brief Reading images and ground-truth masks with OpenCV, with errors that name the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

#include <opencv2/core.hpp>

namespace amq::cli {

/// Reads a PNG or JPEG file as an 8-bit, 3-channel RGB image (channels interleaved, rows
/// contiguous). Grey and 16-bit images are converted. Throws amq::Error naming the file when it
/// is missing, empty or cannot be decoded.
cv::Mat read_rgb_image(const std::filesystem::path& path);

/// A ground-truth mask: one byte per image pixel, 0 = normal, 1 = defect, row-major.
struct Mask {
  std::vector<std::uint8_t> pixels;  ///< width × height labels
  std::size_t width = 0;             ///< pixels per row
  std::size_t height = 0;            ///< rows
};

/// Reads a mask image (MVTec AD stores 0 and 255) and binarises it at half intensity.
/// Throws amq::Error naming the file when it is missing, empty, undecodable, or not
/// `width` × `height`.
Mask read_mask(const std::filesystem::path& path, std::size_t width, std::size_t height);

/// An all-normal mask of the given size, for a defect-free test image.
Mask normal_mask(std::size_t width, std::size_t height);

/// An 8-bit RGB image encoded as PNG bytes.
std::vector<unsigned char> encode_png(const cv::Mat& rgb);

}  // namespace amq::cli
