/// @file feature_cache.hpp
/// @brief The feature maps of one MVTec AD category, extracted once and kept in a file, so that
/// several methods (`amq compare`) or many parameter settings (the figure-7 sweep) are
/// evaluated on the same features without running the network again.
///
/// File layout, all integers little-endian:
///
///     8 bytes   magic "AMQ-FEAT"
///     u32       version (1)
///     u64       length of the metadata, then that many bytes of UTF-8 JSON (below)
///     u64 + f32 the fit maps, one after another (count of floats, then the floats)
///     u64 + f32 the held-out maps
///     u64 + f32 the test maps
///     u64       FNV-1a 64 checksum of every byte before it
///
/// The metadata holds the feature settings (backbone, weights fingerprint, layers, input), the
/// data folder and hold-out fraction, the image lists, the map shape, each test image's size
/// and covered region, and the time the extraction took.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataset.hpp"
#include "feature_source.hpp"

namespace amq::cli {

/// Where a test image's feature map lies in it: the image's size and the covered rectangle
/// (whole pixels, clipped to the image), the part whose pixels are scored.
struct TestRegion {
  std::size_t image_width = 0;   ///< The whole image's width.
  std::size_t image_height = 0;  ///< The whole image's height.
  std::size_t x = 0;             ///< Left edge of the covered part.
  std::size_t y = 0;             ///< Top edge.
  std::size_t width = 0;         ///< Its width.
  std::size_t height = 0;        ///< Its height.
};

/// The features of one category, as `amq train` and `amq test` would compute them.
struct CategoryFeatures {
  /// The feature settings (FeatureSettings::to_json), data folder and hold-out fraction: what
  /// must match for the cache to stand for a new extraction.
  nlohmann::json key;
  std::vector<std::filesystem::path> fit_images;   ///< Normal images the model is fit on.
  std::vector<std::filesystem::path> held_images;  ///< Normal images held out (threshold).
  std::vector<TestSample> samples;                 ///< Test images with defect and mask.
  std::vector<TestRegion> regions;                 ///< One per test image.
  std::vector<features::FeatureMapBuffer> fit;     ///< Maps of fit_images.
  std::vector<features::FeatureMapBuffer> held;    ///< Maps of held_images.
  std::vector<features::FeatureMapBuffer> test;    ///< Maps of the test images.
  double load_ms = 0.0;                            ///< Reading and decoding all images, wall clock.
  double backbone_ms = 0.0;                        ///< The network on all images, wall clock.
  double load_cpu_ms = 0.0;                        ///< load_ms as CPU time of the process.
  double backbone_cpu_ms = 0.0;                    ///< backbone_ms as CPU time of the process.

  /// Images whose features were extracted (fit, held out and test).
  std::size_t image_count() const { return fit.size() + held.size() + test.size(); }
};

/// Writes `features` to `path` atomically (layout in the file comment).
void write_category_features(const std::filesystem::path& path, const CategoryFeatures& features);

/// Reads a file written by write_category_features. Throws amq::Error naming the file when it is
/// not a feature cache, is of another version, truncated, corrupted or inconsistent.
CategoryFeatures read_category_features(const std::filesystem::path& path);

}  // namespace amq::cli
