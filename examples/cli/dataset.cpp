#include "dataset.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "amq/error.hpp"

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

/// Held-out images: `count` of `total`, spread evenly over the list (which is sorted by name,
/// so every part of an acquisition series is represented).
std::vector<bool> holdout_mask(std::size_t total, std::size_t count) {
  std::vector<bool> held(total, false);
  for (std::size_t j = 0; j < count; ++j) held[(2 * j + 1) * total / (2 * count)] = true;
  return held;
}

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

TrainingImages split_training_images(const std::vector<fs::path>& folders, double holdout) {
  std::vector<fs::path> images;
  for (const fs::path& data : folders) {
    const std::vector<fs::path> found = training_images(data);
    images.insert(images.end(), found.begin(), found.end());
  }
  const auto held_count = static_cast<std::size_t>(
      std::max(1.0, std::round(holdout * static_cast<double>(images.size()))));
  AMQ_EXPECTS(images.size() > held_count,
              "training needs at least 2 normal images (one to fit, one to set the threshold), "
              "found " << images.size());
  const std::vector<bool> held = holdout_mask(images.size(), held_count);
  TrainingImages split;
  for (std::size_t i = 0; i < images.size(); ++i) {
    (held[i] ? split.held : split.fit).push_back(images[i]);
  }
  return split;
}

}  // namespace amq::cli
