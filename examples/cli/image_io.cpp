#include "image_io.hpp"

#include <algorithm>
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

/// What the first bytes of a file say: PNG, JPEG or neither, and the declared size if found.
struct Header {
  enum class Kind { other, png, jpeg } kind = Kind::other;
  std::uint64_t width = 0;   ///< 0 when the header does not say (yet)
  std::uint64_t height = 0;  ///< 0 when the header does not say (yet)
  bool complete = true;      ///< false for a JPEG without an end marker after its image data
};

std::uint64_t big_endian(const std::vector<unsigned char>& bytes, std::size_t at, int size) {
  std::uint64_t value = 0;
  for (int i = 0; i < size; ++i) value = value << 8 | bytes[at + i];
  return value;
}

/// The PNG signature and IHDR (width, height), or the JPEG markers up to the first scan: the
/// frame header (SOFn) gives the size, and the bytes after the scan must hold the end-of-image
/// marker FF D9 (in compressed data FF is always followed by 00 or a restart marker, so FF D9
/// there is the end; a JPEG cut short decodes with grey rows otherwise).
Header read_header(const std::vector<unsigned char>& bytes) {
  static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Header header;
  if (bytes.size() >= 8 && std::equal(png, png + 8, bytes.begin())) {
    header.kind = Header::Kind::png;
    if (bytes.size() >= 24 && std::equal(bytes.begin() + 12, bytes.begin() + 16, "IHDR")) {
      header.width = big_endian(bytes, 16, 4);
      header.height = big_endian(bytes, 20, 4);
    }
    return header;
  }
  if (bytes.size() < 3 || bytes[0] != 0xff || bytes[1] != 0xd8 || bytes[2] != 0xff) return header;
  header.kind = Header::Kind::jpeg;
  header.complete = false;
  std::size_t at = 2;  // at a marker's FF
  while (at + 1 < bytes.size() && bytes[at] == 0xff) {
    const unsigned char marker = bytes[at + 1];
    if (marker == 0xff) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      at += 2;
      continue;
    }
    if (marker == 0xd9 || at + 4 > bytes.size()) return header;
    const bool frame =
        marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (frame && at + 9 <= bytes.size()) {
      header.height = big_endian(bytes, at + 5, 2);
      header.width = big_endian(bytes, at + 7, 2);
    }
    const std::size_t next = at + 2 + big_endian(bytes, at + 2, 2);
    if (marker == 0xda) {
      for (std::size_t i = next; i + 1 < bytes.size(); ++i) {
        if (bytes[i] == 0xff && bytes[i + 1] == 0xd9) header.complete = true;
      }
      return header;
    }
    at = next;
  }
  return header;
}

/// Refuses what the decoder should not see: another format, a JPEG cut short, and a size that
/// would take gigabytes to decode and score (a few hundred bytes of PNG can declare that).
void check_header(const std::vector<unsigned char>& bytes, const std::filesystem::path& path,
                  const char* what) {
  const Header header = read_header(bytes);
  AMQ_EXPECTS(header.kind != Header::Kind::other,
              "cannot decode " << what << " " << path << ": not a PNG or JPEG image");
  AMQ_EXPECTS(
      header.width == 0 || header.height == 0 || header.width * header.height <= max_image_pixels,
      what << " " << path << " is " << header.width << " x " << header.height
           << " pixels, more than the " << max_image_pixels << " (2^26) amq reads");
  AMQ_EXPECTS(header.complete, "cannot decode " << what << " " << path
                                                << ": truncated or corrupt JPEG (no end-of-image "
                                                   "marker after its image data)");
}

cv::Mat decode(const std::filesystem::path& path, const char* what, int flags) {
  const std::vector<unsigned char> bytes = read_bytes(path, what);
  check_header(bytes, path, what);
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
