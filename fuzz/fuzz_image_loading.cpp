// libFuzzer target: the command line's image and mask loading (examples/cli/image_io.cpp) on
// arbitrary file contents. The bytes are written to a file, which is read as an RGB image and
// as a mask. Any crash, sanitizer report, exception other than amq::Error, an image that is not
// 8-bit RGB, or a mask label other than 0 and 1 is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "amq/error.hpp"
#include "image_io.hpp"

namespace {

const std::filesystem::path& input_path() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("amq_fuzz_image_" + std::to_string(::getpid()));
  return path;
}

void read_mask_of_size(std::size_t width, std::size_t height) {
  try {
    const amq::cli::Mask mask = amq::cli::read_mask(input_path(), width, height);
    if (mask.width != width || mask.height != height || mask.pixels.size() != width * height) {
      std::abort();
    }
    for (const std::uint8_t label : mask.pixels) {
      if (label > 1) std::abort();
    }
  } catch (const amq::Error&) {
    // refused with a message
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::FILE* file = std::fopen(input_path().c_str(), "wb");
  if (file == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);

  std::size_t width = 16;
  std::size_t height = 16;
  try {
    const cv::Mat rgb = amq::cli::read_rgb_image(input_path());
    if (rgb.empty() || rgb.type() != CV_8UC3 || !rgb.isContinuous()) std::abort();
    width = static_cast<std::size_t>(rgb.cols);
    height = static_cast<std::size_t>(rgb.rows);
  } catch (const amq::Error&) {
    // refused with a message
  }
  read_mask_of_size(width, height);
  return 0;
}
