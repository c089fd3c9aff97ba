#include "dataset.hpp"

#include <algorithm>
#include <cctype>

#include "amq/error.hpp"

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

bool is_image_file(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

void expect_folder(const fs::path& folder, const char* what) {
  std::error_code error;
  AMQ_EXPECTS(fs::is_directory(folder, error), what << " " << folder << " does not exist");
}

}  // namespace

std::vector<fs::path> list_images(const fs::path& folder) {
  expect_folder(folder, "image folder");
  std::vector<fs::path> images;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && is_image_file(entry.path())) images.push_back(entry.path());
  }
  AMQ_EXPECTS(!images.empty(), "image folder " << folder << " holds no .png or .jpg image");
  std::sort(images.begin(), images.end());
  return images;
}

std::vector<fs::path> training_images(const fs::path& data) {
  expect_folder(data, "data folder");
  const fs::path good = data / "train" / good_defect;
  AMQ_EXPECTS(fs::is_directory(good), "data folder " << data << " has no train/good folder ("
                                                     << good << "); expected the MVTec AD layout");
  return list_images(good);
}

std::vector<TestSample> test_samples(const fs::path& data) {
  expect_folder(data, "data folder");
  const fs::path test = data / "test";
  AMQ_EXPECTS(fs::is_directory(test), "data folder " << data << " has no test folder (" << test
                                          << "); expected the MVTec AD layout");
  std::vector<fs::path> defect_folders;
  for (const fs::directory_entry& entry : fs::directory_iterator(test)) {
    if (entry.is_directory()) defect_folders.push_back(entry.path());
  }
  std::sort(defect_folders.begin(), defect_folders.end());
  AMQ_EXPECTS(!defect_folders.empty(), "test folder " << test << " has no defect-type folder");

  std::vector<TestSample> samples;
  for (const fs::path& folder : defect_folders) {
    const std::string defect = folder.filename().string();
    for (const fs::path& image : list_images(folder)) {
      const fs::path mask =
          data / "ground_truth" / defect / (image.stem().string() + "_mask.png");
      TestSample sample{image, defect, {}};
      if (fs::exists(mask)) {
        sample.mask = mask;
      } else {
        AMQ_EXPECTS(defect == good_defect, "defective test image " << image << " has no mask "
                                                                   << mask);
      }
      samples.push_back(std::move(sample));
    }
  }
  return samples;
}

}  // namespace amq::cli
