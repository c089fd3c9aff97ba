/// @file feature_source.hpp
/// @brief Feature sources: pretrained CNNs that turn a decoded RGB image into the W×H×D feature
/// map amq scores. This header needs no LibTorch; the networks live behind it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "amq/feature_map.hpp"

namespace amq::features {

/// A decoded 8-bit RGB image that someone else owns: `height` rows of `width` pixels, each
/// pixel three bytes R, G, B, rows packed without padding (row stride 3·width).
struct RgbImage {
  const std::uint8_t* pixels = nullptr;  ///< First byte of the top-left pixel.
  std::size_t width = 0;                 ///< Pixels per row.
  std::size_t height = 0;                ///< Rows.
};

/// An owning feature map, stored like amq::FeatureMap: pixel by pixel (row-major over y, then
/// x), channels contiguous.
struct FeatureMapBuffer {
  std::vector<float> data;  ///< width · height · depth values.
  std::size_t width = 0;    ///< Feature-grid columns.
  std::size_t height = 0;   ///< Feature-grid rows.
  std::size_t depth = 0;    ///< Channels per feature-grid pixel (D).

  /// A non-owning view for the scorer; valid while this buffer lives and is not resized.
  FeatureMap view() const { return {data.data(), width, height, depth}; }
};

/// The rectangle of the original image, in its pixel coordinates, that a feature map covers.
/// Feature pixel (i, j) (row i, column j) of a W×H map covers the cell
/// [x + j·width/W, x + (j+1)·width/W) × [y + i·height/H, y + (i+1)·height/H).
struct ImageRegion {
  double x = 0.0;       ///< Left edge.
  double y = 0.0;       ///< Top edge.
  double width = 0.0;   ///< Horizontal extent.
  double height = 0.0;  ///< Vertical extent.
};

/// The pretrained networks a feature source can run.
enum class Backbone {
  mobilenet_v2,    ///< MobileNetV2 1.0 (TF-slim ImageNet weights), D = 448 by default.
  wide_resnet50_2  ///< Wide ResNet-50-2 (torchvision layout), stages 2–4, D = 3584.
};

/// How the image is framed before it enters the network.
enum class Framing {
  full_image,  ///< Resize the whole image to image_size × image_size (aspect not kept).
  center_crop  ///< Resize the shorter side to resize_size, then cut the central square.
};

/// Options of a feature source; default_options() gives each backbone's usual values.
struct FeatureOptions {
  /// Network layers whose outputs form the feature map, in order; empty = the backbone's
  /// default. MobileNetV2: "features.0" … "features.18"; WRN50: "layer1" … "layer4".
  std::vector<std::string> layers;
  Framing framing = Framing::full_image;  ///< Whole image or central crop.
  std::size_t image_size = 224;           ///< Side of the square network input.
  std::size_t resize_size = 256;          ///< Shorter side before a center crop.
  /// Average each layer over 3×3 neighbourhoods before resizing (PatchCore's local
  /// aggregation), so every feature pixel also describes its surroundings.
  bool local_average = false;
  /// Images per forward pass in extract_batch() (default_options: 1 for MobileNetV2, 8 for
  /// WRN50, the faster per image on a CPU).
  std::size_t batch_size = 8;
  /// Intra-op threads of LibTorch (a process-wide setting); 0 = OpenMP's count.
  int threads = 0;
  /// Seed of the random-weights mode (used only when no weights file is given).
  std::uint64_t random_seed = 42;
  /// Run the network on the current CUDA device; needs a LibTorch built with CUDA and a
  /// device (cuda_available()). Feature maps are copied back to host memory either way.
  bool cuda = false;
};

/// True when LibTorch was built with CUDA and sees a device, so FeatureOptions::cuda works.
bool cuda_available();

/// The usual options of a backbone: MobileNetV2 on the full image resized to 224 (as its
/// reference values), one image per forward pass; WRN50 on a 256-resize + 224 center crop (as
/// PatchCore on MVTec AD), 8 images per forward pass.
FeatureOptions default_options(Backbone backbone);

/// The backbone named "mobilenet_v2" or "wide_resnet50_2" (also "wrn50"); throws amq::Error
/// for any other name.
Backbone parse_backbone(const std::string& name);

/// A pretrained network that yields one feature map per image. Not thread-safe: use one
/// source per thread (LibTorch already spreads one forward pass over the cores).
class FeatureSource {
 public:
  virtual ~FeatureSource() = default;

  /// A short description: backbone, layers, weights (or "RANDOM WEIGHTS").
  virtual std::string name() const = 0;
  /// Channels per feature pixel (D).
  virtual std::size_t depth() const = 0;
  /// Feature-grid columns (equal for every image: the input is always image_size square).
  virtual std::size_t width() const = 0;
  /// Feature-grid rows.
  virtual std::size_t height() const = 0;
  /// True when the network runs on seeded random weights (for shape and speed tests only).
  virtual bool random_weights() const = 0;

  /// The part of an image of this size that the feature map covers (all of it with
  /// Framing::full_image, the central crop with Framing::center_crop).
  virtual ImageRegion covered_region(std::size_t image_width, std::size_t image_height) const = 0;

  /// Feature maps of several images, computed batch_size images per forward pass.
  virtual std::vector<FeatureMapBuffer> extract_batch(const std::vector<RgbImage>& images) = 0;

  /// The feature map of one image.
  FeatureMapBuffer extract(const RgbImage& image);
};

/// Builds a feature source. `weights_path` is a safetensors file (see docs/feature-sources.md);
/// MobileNetV2 needs one, while WRN50 with an empty path runs on seeded random weights and says
/// so in name(). Throws amq::Error for a bad option or a missing, corrupt or mismatched file.
std::unique_ptr<FeatureSource> make_feature_source(Backbone backbone,
                                                   const std::string& weights_path,
                                                   const FeatureOptions& options);

}  // namespace amq::features
