#include "mobilenet_v2.hpp"

#include <set>

#include "amq/error.hpp"
#include "safetensors.hpp"
#include "torch_tensors.hpp"

namespace amq::features {
namespace {

// One inverted residual block: expansion factor t, input/output channels, depthwise stride.
struct BlockSpec {
  std::int64_t t;
  std::int64_t in;
  std::int64_t out;
  std::int64_t stride;
};

// features.1 … features.17 (MobileNetV2 paper, table 2, width multiplier 1.0).
constexpr BlockSpec block_specs[17] = {
    {1, 32, 16, 1},   {6, 16, 24, 2},  {6, 24, 24, 1}, {6, 24, 32, 2},  {6, 32, 32, 1},
    {6, 32, 32, 1},   {6, 32, 64, 2},  {6, 64, 64, 1}, {6, 64, 64, 1},  {6, 64, 64, 1},
    {6, 64, 96, 1},   {6, 96, 96, 1},  {6, 96, 96, 1}, {6, 96, 160, 2}, {6, 160, 160, 1},
    {6, 160, 160, 1}, {6, 160, 320, 1}};

constexpr std::int64_t head_channels = 1280;
constexpr std::int64_t class_count = 1001;

// TensorFlow "SAME" padding of one axis: out = ceil(in / s), the shortfall split with the
// smaller half before and the larger half after.
std::pair<std::int64_t, std::int64_t> same_padding(std::int64_t in, std::int64_t kernel,
                                                   std::int64_t stride) {
  const std::int64_t out = (in + stride - 1) / stride;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * stride + kernel - in, 0);
  return {total / 2, total - total / 2};
}

}  // namespace

int MobileNetV2::layer_index(const std::string& name) {
  const std::string prefix = "features.";
  if (name.compare(0, prefix.size(), prefix) == 0) {
    const std::string digits = name.substr(prefix.size());
    if (!digits.empty() && digits.size() <= 2 &&
        digits.find_first_not_of("0123456789") == std::string::npos) {
      const int index = std::stoi(digits);
      if (index < layer_count && std::to_string(index) == digits) return index;
    }
  }
  AMQ_FAIL("MobileNetV2 has no layer '" << name << "' (expected features.0 … features.18)");
}

LayerInfo MobileNetV2::layer_info(const std::string& name) {
  const int index = layer_index(name);
  if (index == 0) return {32, 2};
  if (index == layer_count - 1) return {head_channels, 32};
  std::int64_t stride = 2;
  for (int i = 1; i <= index; ++i) stride *= block_specs[i - 1].stride;
  return {block_specs[index - 1].out, stride};
}

MobileNetV2::MobileNetV2(const std::string& weights_path) {
  const SafetensorsFile file(weights_path);
  std::set<std::string> expected;
  auto conv = [&](const std::string& name, std::vector<std::int64_t> shape, std::int64_t stride,
                  std::int64_t groups, bool relu6) {
    const std::int64_t out = shape[0];
    expected.insert(name + ".weight");
    expected.insert(name + ".bias");
    return Conv{load_tensor(file, name + ".weight", shape),
                load_tensor(file, name + ".bias", {out}), stride, groups, relu6};
  };

  stem_ = conv("features.0", {32, 3, 3, 3}, 2, 1, true);
  for (int i = 1; i < layer_count - 1; ++i) {
    const BlockSpec& spec = block_specs[i - 1];
    const std::string prefix = "features." + std::to_string(i);
    const std::int64_t hidden = spec.in * spec.t;
    Block block;
    block.has_expand = spec.t != 1;
    if (block.has_expand)
      block.expand = conv(prefix + ".expand", {hidden, spec.in, 1, 1}, 1, 1, true);
    block.depthwise = conv(prefix + ".depthwise", {hidden, 1, 3, 3}, spec.stride, hidden, true);
    block.project = conv(prefix + ".project", {spec.out, hidden, 1, 1}, 1, 1, false);
    block.residual = spec.stride == 1 && spec.in == spec.out;
    blocks_.push_back(std::move(block));
  }
  head_ = conv("features.18", {head_channels, 320, 1, 1}, 1, 1, true);
  classifier_weight_ = load_tensor(file, "classifier.weight", {class_count, head_channels});
  classifier_bias_ = load_tensor(file, "classifier.bias", {class_count});
  expected.insert({"classifier.weight", "classifier.bias"});

  for (const std::string& name : file.names()) {
    AMQ_EXPECTS(expected.count(name) != 0, weights_path << ": unexpected tensor '" << name
                                                        << "' (not a MobileNetV2 1.0 file?)");
  }
}

void MobileNetV2::to(const at::Device& device) {
  const auto move = [&](Conv& conv) {
    conv.weight = conv.weight.to(device);
    conv.bias = conv.bias.to(device);
  };
  move(stem_);
  for (Block& block : blocks_) {
    if (block.has_expand) move(block.expand);
    move(block.depthwise);
    move(block.project);
  }
  move(head_);
  classifier_weight_ = classifier_weight_.to(device);
  classifier_bias_ = classifier_bias_.to(device);
}

at::Tensor MobileNetV2::apply(const Conv& conv, const at::Tensor& x) {
  const std::int64_t kernel = conv.weight.size(2);
  const auto [top, bottom] = same_padding(x.size(2), kernel, conv.stride);
  const auto [left, right] = same_padding(x.size(3), kernel, conv.stride);
  at::Tensor y;
  if (top == bottom && left == right) {
    y = at::conv2d(x, conv.weight, conv.bias, conv.stride, {top, left}, 1, conv.groups);
  } else {
    y = at::conv2d(at::constant_pad_nd(x, {left, right, top, bottom}), conv.weight, conv.bias,
                   conv.stride, std::vector<std::int64_t>{0, 0}, 1, conv.groups);
  }
  return conv.relu6 ? at::clamp(y, 0.0, 6.0) : y;
}

std::vector<at::Tensor> MobileNetV2::forward(const at::Tensor& input, int last) const {
  AMQ_EXPECTS(last >= 0 && last < layer_count,
              "MobileNetV2::forward: last layer " << last << " is not in 0 … 18");
  AMQ_EXPECTS(input.dim() == 4 && input.size(1) == 3 && input.scalar_type() == at::kFloat,
              "MobileNetV2::forward: input must be float [N, 3, H, W], got "
                  << input.sizes() << " " << input.scalar_type());

  std::vector<at::Tensor> outputs;
  at::Tensor x = apply(stem_, input);
  outputs.push_back(x);
  for (int i = 1; i <= last && i < layer_count - 1; ++i) {
    const Block& block = blocks_[static_cast<std::size_t>(i - 1)];
    at::Tensor y = block.has_expand ? apply(block.expand, x) : x;
    y = apply(block.project, apply(block.depthwise, y));
    x = block.residual ? x + y : y;
    outputs.push_back(x);
  }
  if (last == layer_count - 1) outputs.push_back(apply(head_, x));
  return outputs;
}

at::Tensor MobileNetV2::logits(const at::Tensor& features18) const {
  AMQ_EXPECTS(features18.dim() == 4 && features18.size(1) == head_channels,
              "MobileNetV2::logits: expected the [N, 1280, H, W] output of features.18, got "
                  << features18.sizes());
  return at::linear(features18.mean({2, 3}), classifier_weight_, classifier_bias_);
}

}  // namespace amq::features
