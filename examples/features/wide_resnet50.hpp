/// @file wide_resnet50.hpp
/// @brief Wide ResNet-50-2 in the torchvision layout (bottleneck width doubled), in LibTorch,
/// with BatchNorm folded into the convolutions at load time (inference only).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "mobilenet_v2.hpp"

namespace amq::features {

/// Wide ResNet-50-2 up to layer4: conv1 (7×7, stride 2) + bn1 + ReLU + 3×3 max pool, then
/// layer1 … layer4 of 3, 4, 6, 3 bottleneck blocks (256, 512, 1024, 2048 output channels;
/// strides 4, 8, 16, 32). The classifier (fc) is not needed for features and is not loaded.
class WideResNet50 {
 public:
  /// Torchvision parameter names mapped to tensors (conv1.weight, bn1.running_mean, …).
  using StateDict = std::map<std::string, at::Tensor>;

  /// Builds the network from a state dict with torchvision's names; checks that every needed
  /// tensor is present, float32 and of torchvision's shape, and folds each BatchNorm
  /// (eval mode, ε = 1e-5) into the convolution before it. `origin` names the source in
  /// messages.
  WideResNet50(const StateDict& weights, const std::string& origin);

  /// Loads a torchvision checkpoint exported as safetensors (extra tensors such as fc.* and
  /// num_batches_tracked are ignored); throws amq::Error for a bad file or tensor.
  static WideResNet50 from_file(const std::string& weights_path);

  /// A state dict of seeded random weights with torchvision's initialisation (He normal
  /// convolutions, BatchNorm as identity): the same seed gives the same weights everywhere.
  /// For shape and speed tests only: its features mean nothing.
  static StateDict random_state_dict(std::uint64_t seed);

  /// Every tensor the network needs, with its torchvision name and shape.
  static std::map<std::string, std::vector<std::int64_t>> parameter_shapes();

  /// Channels and stride of "layer1" … "layer4"; throws amq::Error for another name.
  static LayerInfo layer_info(const std::string& name);
  /// The index i of layer "layeri"; throws amq::Error for another name.
  static int layer_index(const std::string& name);

  /// Outputs of layer1 … layer`last` (1 ≤ last ≤ 4) for a preprocessed batch [N, 3, H, W]
  /// (ImageNet mean/std normalised).
  std::vector<at::Tensor> forward(const at::Tensor& input, int last) const;
  /// Moves every weight to `device`; forward() then takes inputs on that device.
  void to(const at::Device& device);

 private:
  struct Conv {  // a convolution with its BatchNorm folded in
    at::Tensor weight;
    at::Tensor bias;
    std::int64_t stride = 1;
    std::int64_t padding = 0;
  };
  struct Bottleneck {
    Conv conv1;
    Conv conv2;
    Conv conv3;
    bool has_downsample = false;
    Conv downsample;
  };

  static Conv fold(const StateDict& weights, const std::string& origin, const std::string& conv,
                   const std::string& bn, std::int64_t stride, std::int64_t padding);

  Conv stem_;
  std::vector<std::vector<Bottleneck>> layers_;
};

}  // namespace amq::features
