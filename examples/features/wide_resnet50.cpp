#include "wide_resnet50.hpp"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "amq/error.hpp"
#include "safetensors.hpp"
#include "torch_tensors.hpp"

namespace amq::features {
namespace {

constexpr int stage_count = 4;
constexpr int blocks_per_stage[stage_count] = {3, 4, 6, 3};
constexpr std::int64_t planes_per_stage[stage_count] = {64, 128, 256, 512};
constexpr std::int64_t stride_per_stage[stage_count] = {1, 2, 2, 2};
// Wide ResNet-50-2 doubles the bottleneck width (torchvision width_per_group = 128); the
// block output stays at 4 × planes.
constexpr std::int64_t width_factor = 2;
constexpr std::int64_t expansion = 4;
constexpr double batch_norm_epsilon = 1e-5;

// One convolution followed by a BatchNorm, by their torchvision names.
struct ConvSpec {
  std::string conv;
  std::string bn;
  std::vector<std::int64_t> shape;  // [out, in, kh, kw]
};

std::vector<ConvSpec> conv_specs() {
  std::vector<ConvSpec> specs = {{"conv1", "bn1", {64, 3, 7, 7}}};
  std::int64_t in = 64;
  for (int s = 0; s < stage_count; ++s) {
    const std::int64_t width = planes_per_stage[s] * width_factor;
    const std::int64_t out = planes_per_stage[s] * expansion;
    for (int b = 0; b < blocks_per_stage[s]; ++b) {
      const std::string block = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      specs.push_back({block + "conv1", block + "bn1", {width, in, 1, 1}});
      specs.push_back({block + "conv2", block + "bn2", {width, width, 3, 3}});
      specs.push_back({block + "conv3", block + "bn3", {out, width, 1, 1}});
      if (b == 0)
        specs.push_back({block + "downsample.0", block + "downsample.1", {out, in, 1, 1}});
      in = out;
    }
  }
  return specs;
}

const char* const bn_parameters[4] = {"weight", "bias", "running_mean", "running_var"};

}  // namespace

std::map<std::string, std::vector<std::int64_t>> WideResNet50::parameter_shapes() {
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const ConvSpec& spec : conv_specs()) {
    shapes[spec.conv + ".weight"] = spec.shape;
    for (const char* parameter : bn_parameters) shapes[spec.bn + "." + parameter] = {spec.shape[0]};
  }
  return shapes;
}

int WideResNet50::layer_index(const std::string& name) {
  for (int i = 1; i <= stage_count; ++i) {
    if (name == "layer" + std::to_string(i)) return i;
  }
  AMQ_FAIL("Wide ResNet-50-2 has no feature layer '" << name << "' (expected layer1 … layer4)");
}

LayerInfo WideResNet50::layer_info(const std::string& name) {
  const int index = layer_index(name);
  std::int64_t stride = 4;  // conv1 and the max pool
  for (int s = 0; s < index; ++s) stride *= stride_per_stage[s];
  return {planes_per_stage[index - 1] * expansion, stride};
}

WideResNet50::Conv WideResNet50::fold(const StateDict& weights, const std::string& origin,
                                      const std::string& conv, const std::string& bn,
                                      std::int64_t stride, std::int64_t padding) {
  auto get = [&](const std::string& name) { return weights.at(name); };
  const at::Tensor variance = get(bn + ".running_var");
  AMQ_EXPECTS(variance.min().item<float>() >= 0.0f,
              origin << ": '" << bn << ".running_var' holds a negative variance ("
                     << variance.min().item<float>() << ")");

  // Eval-mode BatchNorm is the affine map y = γ (x − μ) / √(σ² + ε) + β per channel, so it
  // folds into the convolution: W' = W · s, b' = β − μ · s with s = γ / √(σ² + ε).
  const at::Tensor scale = get(bn + ".weight") / at::sqrt(variance + batch_norm_epsilon);
  Conv folded;
  folded.weight = (get(conv + ".weight") * scale.view({-1, 1, 1, 1})).contiguous();
  folded.bias = get(bn + ".bias") - get(bn + ".running_mean") * scale;
  folded.stride = stride;
  folded.padding = padding;
  return folded;
}

WideResNet50::WideResNet50(const StateDict& weights, const std::string& origin) {
  for (const auto& [name, shape] : parameter_shapes()) {
    const auto found = weights.find(name);
    AMQ_EXPECTS(found != weights.end(), origin << ": tensor '" << name << "' is missing");
    AMQ_EXPECTS(found->second.scalar_type() == at::kFloat, origin << ": tensor '" << name << "' is "
                                                                  << found->second.scalar_type()
                                                                  << ", expected float32");
    AMQ_EXPECTS(found->second.sizes().vec() == shape, origin
                                                          << ": tensor '" << name << "' has shape "
                                                          << shape_text(found->second.sizes().vec())
                                                          << ", expected " << shape_text(shape));
  }

  stem_ = fold(weights, origin, "conv1", "bn1", 2, 3);
  for (int s = 0; s < stage_count; ++s) {
    std::vector<Bottleneck> stage;
    for (int b = 0; b < blocks_per_stage[s]; ++b) {
      const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      // torchvision "v1.5": the stride sits on the 3×3 conv, not on the first 1×1.
      const std::int64_t stride = b == 0 ? stride_per_stage[s] : 1;
      Bottleneck block;
      block.conv1 = fold(weights, origin, p + "conv1", p + "bn1", 1, 0);
      block.conv2 = fold(weights, origin, p + "conv2", p + "bn2", stride, 1);
      block.conv3 = fold(weights, origin, p + "conv3", p + "bn3", 1, 0);
      block.has_downsample = b == 0;
      if (block.has_downsample) {
        block.downsample = fold(weights, origin, p + "downsample.0", p + "downsample.1", stride, 0);
      }
      stage.push_back(std::move(block));
    }
    layers_.push_back(std::move(stage));
  }
}

WideResNet50 WideResNet50::from_file(const std::string& weights_path) {
  const SafetensorsFile file(weights_path);
  StateDict weights;
  for (const auto& [name, shape] : parameter_shapes()) {
    weights[name] = load_tensor(file, name, shape);
  }
  return WideResNet50(weights, weights_path);
}

WideResNet50::StateDict WideResNet50::random_state_dict(std::uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  StateDict weights;
  for (const ConvSpec& spec : conv_specs()) {
    // He initialisation for ReLU networks with fan-out, as torchvision's ResNet.
    const auto fan_out = static_cast<double>(spec.shape[0] * spec.shape[2] * spec.shape[3]);
    weights[spec.conv + ".weight"] = at::randn(spec.shape, generator) * std::sqrt(2.0 / fan_out);
    const std::int64_t channels = spec.shape[0];
    weights[spec.bn + ".weight"] = at::ones({channels});
    weights[spec.bn + ".bias"] = at::zeros({channels});
    weights[spec.bn + ".running_mean"] = at::zeros({channels});
    weights[spec.bn + ".running_var"] = at::ones({channels});
  }
  return weights;
}

void WideResNet50::to(const at::Device& device) {
  const auto move = [&](Conv& conv) {
    conv.weight = conv.weight.to(device);
    conv.bias = conv.bias.to(device);
  };
  move(stem_);
  for (std::vector<Bottleneck>& layer : layers_) {
    for (Bottleneck& block : layer) {
      move(block.conv1);
      move(block.conv2);
      move(block.conv3);
      if (block.has_downsample) move(block.downsample);
    }
  }
}

std::vector<at::Tensor> WideResNet50::forward(const at::Tensor& input, int last) const {
  AMQ_EXPECTS(last >= 1 && last <= stage_count,
              "WideResNet50::forward: last layer " << last << " is not in 1 … 4");
  AMQ_EXPECTS(input.dim() == 4 && input.size(1) == 3 && input.scalar_type() == at::kFloat,
              "WideResNet50::forward: input must be float [N, 3, H, W], got "
                  << input.sizes() << " " << input.scalar_type());

  auto conv = [](const Conv& c, const at::Tensor& x) {
    return at::conv2d(x, c.weight, c.bias, c.stride, c.padding);
  };
  at::Tensor x = at::max_pool2d(at::relu(conv(stem_, input)), {3, 3}, {2, 2}, {1, 1});
  std::vector<at::Tensor> outputs;
  for (int s = 0; s < last; ++s) {
    for (const Bottleneck& block : layers_[static_cast<std::size_t>(s)]) {
      at::Tensor y = at::relu(conv(block.conv1, x));
      y = conv(block.conv3, at::relu(conv(block.conv2, y)));
      x = at::relu(y + (block.has_downsample ? conv(block.downsample, x) : x));
    }
    outputs.push_back(x);
  }
  return outputs;
}

}  // namespace amq::features
