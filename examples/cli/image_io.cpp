#include "image_io.hpp"

#include <fstream>
#include <iterator>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "amq/error.hpp"

namespace amq::cli {
namespace {

/// The file's bytes; throws when it is missing, not a file or empty.
std::vector<unsigned char> read_bytes(const std::filesystem::path& path, const char* what) {
  std::error_code error;
  AMQ_EXPECTS(std::filesystem::is_regular_file(path, error),
              what << " " << path << " does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  AMQ_EXPECTS(in.is_open(), "cannot open " << what << " " << path);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  AMQ_EXPECTS(!bytes.empty(), what << " " << path << " is empty (0 bytes)");
  return bytes;
}

cv::Mat decode(const std::filesystem::path& path, const char* what, int flags) {
  const std::vector<unsigned char> bytes = read_bytes(path, what);
  cv::Mat image;
  try {
    image = cv::imdecode(bytes, flags);
  } catch (const cv::Exception& e) {
    AMQ_FAIL("cannot decode " << what << " " << path << ": " << e.what());
  }
  AMQ_EXPECTS(!image.empty(), "cannot decode " << what << " " << path
                                               << " (not a PNG or JPEG image, or corrupt)");
  return image;
}

}  // namespace

cv::Mat read_rgb_image(const std::filesystem::path& path) {
  const cv::Mat bgr = decode(path, "image", cv::IMREAD_COLOR);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

Mask read_mask(const std::filesystem::path& path, std::size_t width, std::size_t height) {
  const cv::Mat grey = decode(path, "mask", cv::IMREAD_GRAYSCALE);
  AMQ_EXPECTS(static_cast<std::size_t>(grey.cols) == width &&
                  static_cast<std::size_t>(grey.rows) == height,
              "mask " << path << " is " << grey.cols << " x " << grey.rows
                      << " but its image is " << width << " x " << height);
  Mask mask;
  mask.width = width;
  mask.height = height;
  mask.pixels.resize(width * height);
  for (std::size_t y = 0; y < height; ++y) {
    const std::uint8_t* row = grey.ptr<std::uint8_t>(static_cast<int>(y));
    for (std::size_t x = 0; x < width; ++x) mask.pixels[y * width + x] = row[x] >= 128 ? 1 : 0;
  }
  return mask;
}

Mask normal_mask(std::size_t width, std::size_t height) {
  return Mask{std::vector<std::uint8_t>(width * height, 0), width, height};
}

std::vector<unsigned char> encode_png(const cv::Mat& rgb) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<unsigned char> png;
  AMQ_EXPECTS(cv::imencode(".png", bgr, png),
              "cannot encode a " << rgb.cols << " x " << rgb.rows << " image as PNG");
  return png;
}

}  // namespace amq::cli
