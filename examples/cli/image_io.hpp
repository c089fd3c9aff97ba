/// @file image_io.hpp
/// @brief Reading images and ground-truth masks with OpenCV, with errors that name the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

#include <opencv2/core.hpp>

namespace amq::cli {

/// Largest image (or mask) read, in pixels: 2^26, e.g. 8192 x 8192. Scoring and evaluating
/// one image holds about 25 bytes per pixel (image, score map, mask, heatmap), so this keeps an
/// image under 2 GB; the size is checked from the file's header, before decoding.
inline constexpr std::uint64_t max_image_pixels = std::uint64_t{1} << 26;

/// Reads a PNG or JPEG file as an 8-bit, 3-channel RGB image (channels interleaved, rows
/// contiguous). Grey and 16-bit images are converted (16-bit: the high byte), an alpha channel
/// is dropped. The format is recognised by the file's signature, not its name. Throws
/// amq::Error naming the file when it is missing, empty, not PNG or JPEG, larger than
/// max_image_pixels, a JPEG without its end marker (cut short), or cannot be decoded.
cv::Mat read_rgb_image(const std::filesystem::path& path);

/// A ground-truth mask: one byte per image pixel, 0 = normal, 1 = defect, row-major.
struct Mask {
  std::vector<std::uint8_t> pixels;  ///< width × height labels
  std::size_t width = 0;             ///< pixels per row
  std::size_t height = 0;            ///< rows
};

/// Reads a mask image (MVTec AD stores 0 and 255) and binarises it at half intensity (colour
/// masks are read as grey, 16-bit ones by their high byte). Throws amq::Error naming the file
/// as read_rgb_image does, and when it is not `width` × `height`.
Mask read_mask(const std::filesystem::path& path, std::size_t width, std::size_t height);

/// An all-normal mask of the given size, for a defect-free test image.
Mask normal_mask(std::size_t width, std::size_t height);

/// An 8-bit RGB image encoded as PNG bytes.
std::vector<unsigned char> encode_png(const cv::Mat& rgb);

}  // namespace amq::cli
