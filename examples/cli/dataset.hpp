/// @file dataset.hpp
/// @brief The MVTec AD folder layout of one category:
/// `train/good/*.png` (normal images), `test/<defect>/*.png` (good and defective images) and
/// `ground_truth/<defect>/<name>_mask.png` (a mask for every defective test image).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace amq::cli {

/// The PNG and JPEG files of a folder (extensions .png, .jpg, .jpeg in any case), sorted by
/// name. Throws amq::Error naming the folder when it is missing or holds no image.
std::vector<std::filesystem::path> list_images(const std::filesystem::path& folder);

/// The normal training images of a category, `data/train/good`. Throws amq::Error when
/// `data` or its train/good folder is missing or holds no image.
std::vector<std::filesystem::path> training_images(const std::filesystem::path& data);

/// The normal images of some category folders: those the model is fit on and those held out.
struct TrainingImages {
  std::vector<std::filesystem::path> fit;   ///< Inserted into the filter (or memory bank).
  std::vector<std::filesystem::path> held;  ///< Kept out to choose the threshold.
};

/// The train/good images of `folders`, in order, with `holdout` of them (at least one, rounded)
/// held out, spread evenly over the list (sorted by name, so every part of an acquisition
/// series is represented). Throws amq::Error when fewer than 2 images are found.
TrainingImages split_training_images(const std::vector<std::filesystem::path>& folders,
                                     double holdout);

/// One test image of a category and where its ground truth lies.
struct TestSample {
  std::filesystem::path image;  ///< the test image
  std::string defect;           ///< the defect type: its folder name under test/ ("good" if none)
  std::filesystem::path mask;   ///< its mask; empty for a "good" image without one (all normal)
};

/// The name of the defect-free test folder.
inline const char* const good_defect = "good";

/// The test images of a category, `data/test/<defect>/*`, defect types sorted by name, with
/// masks from `data/ground_truth/<defect>/<stem>_mask.png`. Throws amq::Error when test/ is
/// missing or holds no image, or when a defective image has no mask (naming the mask).
std::vector<TestSample> test_samples(const std::filesystem::path& data);

}  // namespace amq::cli
