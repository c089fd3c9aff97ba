/// @file mobilenet_v2.hpp
/// @brief MobileNetV2 1.0 with TF-slim ImageNet weights (BatchNorm folded), in LibTorch.
/// Layout, padding and weights file: ../shared/models/README.md and docs/feature-sources.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace amq::features {

/// Where a layer's output sits in the network: its channels and its stride to the input.
struct LayerInfo {
  std::int64_t channels = 0;  ///< Channels of the layer's output.
  std::int64_t stride = 0;    ///< Input pixels per output pixel along each axis.
};

/// MobileNetV2 1.0: features.0 (stride-2 conv), features.1–17 (inverted residual blocks),
/// features.18 (1×1 conv to 1280), global average pool, classifier (1001 logits). Every
/// convolution pads like TensorFlow "SAME" (stride-2 3×3 convs on even sizes pad only bottom
/// and right), every activation is ReLU6, the project convs are linear.
class MobileNetV2 {
 public:
  /// Number of `features.i` layers (0 … 18).
  static constexpr int layer_count = 19;

  /// Loads the 106 float32 tensors of `weights_path`; throws amq::Error when the file is not
  /// valid safetensors or a tensor is missing, unexpected, not F32 or of the wrong shape.
  explicit MobileNetV2(const std::string& weights_path);

  /// Channels and stride of layer "features.i"; throws amq::Error for another name.
  static LayerInfo layer_info(const std::string& name);
  /// The index i of layer "features.i"; throws amq::Error for another name.
  static int layer_index(const std::string& name);

  /// Outputs of features.0 … features.`last` for a preprocessed batch [N, 3, H, W]
  /// (values x/127.5 − 1); each block output is taken after its residual add.
  std::vector<at::Tensor> forward(const at::Tensor& input, int last) const;
  /// The 1001 ImageNet logits (index 0 = background) from the output of features.18.
  at::Tensor logits(const at::Tensor& features18) const;
  /// Moves every weight to `device`; forward() then takes inputs on that device.
  void to(const at::Device& device);

 private:
  struct Conv {
    at::Tensor weight;
    at::Tensor bias;
    std::int64_t stride = 1;
    std::int64_t groups = 1;
    bool relu6 = true;
  };
  struct Block {
    bool has_expand = false;
    Conv expand;
    Conv depthwise;
    Conv project;
    bool residual = false;
  };

  static at::Tensor apply(const Conv& conv, const at::Tensor& x);

  Conv stem_;
  std::vector<Block> blocks_;
  Conv head_;
  at::Tensor classifier_weight_;
  at::Tensor classifier_bias_;
};

}  // namespace amq::features
