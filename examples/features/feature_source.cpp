#include "feature_source.hpp"

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <omp.h>

#include "amq/error.hpp"
#include "image_preprocessing.hpp"
#include "mobilenet_v2.hpp"
#include "wide_resnet50.hpp"

namespace amq::features {
namespace {

// The chosen layer outputs of a batch of network inputs, in the order of options.layers.
using LayerRunner = std::function<std::vector<at::Tensor>(const at::Tensor&)>;

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

class TorchFeatureSource final : public FeatureSource {
 public:
  TorchFeatureSource(std::string name, LayerRunner runner, Normalisation normalisation,
                     FeatureOptions options, std::size_t depth, std::size_t grid,
                     bool random_weights)
      : name_(std::move(name)),
        runner_(std::move(runner)),
        normalisation_(normalisation),
        options_(std::move(options)),
        depth_(depth),
        grid_(grid),
        random_weights_(random_weights) {}

  std::string name() const override { return name_; }
  std::size_t depth() const override { return depth_; }
  std::size_t width() const override { return grid_; }
  std::size_t height() const override { return grid_; }
  bool random_weights() const override { return random_weights_; }

  ImageRegion covered_region(std::size_t image_width, std::size_t image_height) const override {
    return framed_region(options_, image_width, image_height);
  }

  std::vector<FeatureMapBuffer> extract_batch(const std::vector<RgbImage>& images) override {
    const c10::InferenceMode inference;
    std::vector<FeatureMapBuffer> maps;
    maps.reserve(images.size());
    for (std::size_t start = 0; start < images.size(); start += options_.batch_size) {
      const std::size_t stop = std::min(images.size(), start + options_.batch_size);
      const std::vector<RgbImage> chunk(images.begin() + static_cast<std::ptrdiff_t>(start),
                                        images.begin() + static_cast<std::ptrdiff_t>(stop));
      const at::Tensor input = preprocess(chunk, options_, normalisation_).to(device());
      const at::Tensor features = assemble(runner_(input)).to(at::kCPU);
      const std::size_t values = grid_ * grid_ * depth_;
      for (std::int64_t n = 0; n < features.size(0); ++n) {
        const float* first = features[n].data_ptr<float>();
        maps.push_back({std::vector<float>(first, first + values), grid_, grid_, depth_});
      }
    }
    return maps;
  }

 private:
  at::Device device() const { return options_.cuda ? at::kCUDA : at::kCPU; }

  // Every layer (optionally averaged over 3×3 neighbourhoods) is resized bilinearly to the
  // finest layer's grid, the layers are concatenated along channels, and the result is laid
  // out pixel-major: [N, H, W, D] contiguous.
  at::Tensor assemble(const std::vector<at::Tensor>& layers) const {
    const auto grid = static_cast<std::int64_t>(grid_);
    std::vector<at::Tensor> parts;
    for (at::Tensor layer : layers) {
      if (options_.local_average) {
        // Zero padding would pull border pixels towards 0; average only real neighbours.
        layer = at::avg_pool2d(layer, {3, 3}, {1, 1}, {1, 1}, false, false);
      }
      if (layer.size(2) != grid || layer.size(3) != grid) {
        layer = at::upsample_bilinear2d(layer, {grid, grid}, false);
      }
      parts.push_back(layer);
    }
    at::Tensor features = at::cat(parts, 1).permute({0, 2, 3, 1}).contiguous();
    AMQ_EXPECTS(features.size(3) == static_cast<std::int64_t>(depth_),
                name_ << ": feature depth " << features.size(3) << ", expected " << depth_);
    return features;
  }

  std::string name_;
  LayerRunner runner_;
  Normalisation normalisation_;
  FeatureOptions options_;
  std::size_t depth_;
  std::size_t grid_;
  bool random_weights_;
};

void check_options(const FeatureOptions& options) {
  AMQ_EXPECTS(options.image_size >= 32 && options.image_size <= 4096,
              "image_size must be in 32 … 4096, got " << options.image_size);
  AMQ_EXPECTS(options.framing != Framing::center_crop || options.resize_size >= options.image_size,
              "resize_size (" << options.resize_size << ") must be at least image_size ("
                              << options.image_size << ") for a center crop");
  AMQ_EXPECTS(options.batch_size >= 1, "batch_size must be at least 1, got 0");
  AMQ_EXPECTS(options.threads >= 0, "threads must be 0 (default) or more, got " << options.threads);
  const std::set<std::string> unique(options.layers.begin(), options.layers.end());
  AMQ_EXPECTS(!options.layers.empty(), "no feature layers chosen");
  AMQ_EXPECTS(unique.size() == options.layers.size(), "a feature layer is listed twice");
}

std::string describe(const std::string& backbone, const FeatureOptions& options, std::size_t depth,
                     std::size_t grid, const std::string& weights) {
  std::ostringstream text;
  text << backbone << " [";
  for (std::size_t i = 0; i < options.layers.size(); ++i) {
    text << (i ? "+" : "") << options.layers[i];
  }
  text << "] " << grid << "x" << grid << "x" << depth << ", input " << options.image_size;
  if (options.framing == Framing::center_crop) {
    text << " (resize " << options.resize_size << ", center crop)";
  }
  text << (options.local_average ? ", 3x3 local average" : "") << (options.cuda ? ", CUDA" : "")
       << ", " << weights;
  return text.str();
}

// Layer indices, depth and grid side of a backbone's chosen layers.
template <class Network>
std::pair<std::vector<int>, std::pair<std::size_t, std::size_t>> layer_plan(
    const FeatureOptions& options) {
  std::vector<int> indices;
  std::int64_t depth = 0;
  std::int64_t finest = 0;
  for (const std::string& layer : options.layers) {
    indices.push_back(Network::layer_index(layer));
    const LayerInfo info = Network::layer_info(layer);
    depth += info.channels;
    finest = finest == 0 ? info.stride : std::min(finest, info.stride);
  }
  // Every stride-2 step of both networks yields ceil(in / 2), so a stride-s layer has
  // ceil(image_size / s) pixels per side.
  const std::int64_t grid = ceil_div(static_cast<std::int64_t>(options.image_size), finest);
  return {indices, {static_cast<std::size_t>(depth), static_cast<std::size_t>(grid)}};
}

std::vector<at::Tensor> pick(const std::vector<at::Tensor>& outputs,
                             const std::vector<int>& positions) {
  std::vector<at::Tensor> chosen;
  for (const int p : positions) chosen.push_back(outputs[static_cast<std::size_t>(p)]);
  return chosen;
}

}  // namespace

bool cuda_available() { return at::hasCUDA(); }

FeatureMapBuffer FeatureSource::extract(const RgbImage& image) {
  return std::move(extract_batch({image}).front());
}

FeatureOptions default_options(Backbone backbone) {
  FeatureOptions options;
  if (backbone == Backbone::mobilenet_v2) {
    options.layers = {"features.6", "features.13", "features.17"};
    options.framing = Framing::full_image;
    // MobileNetV2 is bound by memory traffic: one image's activations stay in cache, a batch's
    // do not, and batching measured slower per image (docs/results.md, "Feature sources").
    options.batch_size = 1;
  } else {
    options.layers = {"layer2", "layer3", "layer4"};
    options.framing = Framing::center_crop;
  }
  return options;
}

Backbone parse_backbone(const std::string& name) {
  if (name == "mobilenet_v2") return Backbone::mobilenet_v2;
  if (name == "wide_resnet50_2" || name == "wrn50") return Backbone::wide_resnet50_2;
  AMQ_FAIL("unknown backbone '" << name << "' (expected mobilenet_v2 or wide_resnet50_2)");
}

std::unique_ptr<FeatureSource> make_feature_source(Backbone backbone,
                                                   const std::string& weights_path,
                                                   const FeatureOptions& options) {
  FeatureOptions chosen = options;
  if (chosen.layers.empty()) chosen.layers = default_options(backbone).layers;
  check_options(chosen);
  // LibTorch's own default can be a single thread; follow OpenMP's count (OMP_NUM_THREADS or
  // all cores) unless told otherwise.
  at::set_num_threads(chosen.threads > 0 ? chosen.threads : omp_get_max_threads());
  AMQ_EXPECTS(!chosen.cuda || cuda_available(),
              "features on CUDA need a LibTorch built with CUDA and a CUDA device; this "
              "LibTorch has no CUDA or sees no device (docs/cuda.md: use a PyTorch wheel's)");

  if (backbone == Backbone::mobilenet_v2) {
    AMQ_EXPECTS(!weights_path.empty(),
                "mobilenet_v2 needs a weights file "
                "(mobilenet_v2_1.0_224.safetensors)");
    const auto [indices, shape] = layer_plan<MobileNetV2>(chosen);
    auto loaded = std::make_shared<MobileNetV2>(weights_path);
    if (chosen.cuda) loaded->to(at::kCUDA);
    const std::shared_ptr<const MobileNetV2> network = std::move(loaded);
    const int last = *std::max_element(indices.begin(), indices.end());
    LayerRunner runner = [network, indices = indices, last](const at::Tensor& input) {
      return pick(network->forward(input, last), indices);
    };
    return std::make_unique<TorchFeatureSource>(
        describe("mobilenet_v2", chosen, shape.first, shape.second, weights_path),
        std::move(runner), Normalisation::symmetric_unit, chosen, shape.first, shape.second, false);
  }

  const auto [indices, shape] = layer_plan<WideResNet50>(chosen);
  const bool random = weights_path.empty();
  auto loaded = std::make_shared<WideResNet50>(
      random ? WideResNet50(WideResNet50::random_state_dict(chosen.random_seed), "random weights")
             : WideResNet50::from_file(weights_path));
  if (chosen.cuda) loaded->to(at::kCUDA);
  const std::shared_ptr<const WideResNet50> network = std::move(loaded);
  const int last = *std::max_element(indices.begin(), indices.end());
  std::vector<int> positions;
  for (const int index : indices) positions.push_back(index - 1);
  LayerRunner runner = [network, positions, last](const at::Tensor& input) {
    return pick(network->forward(input, last), positions);
  };
  const std::string weights = random
                                  ? "RANDOM WEIGHTS (seed " + std::to_string(chosen.random_seed) +
                                        "; for shape and speed tests only)"
                                  : weights_path;
  return std::make_unique<TorchFeatureSource>(
      describe("wide_resnet50_2", chosen, shape.first, shape.second, weights), std::move(runner),
      Normalisation::imagenet, chosen, shape.first, shape.second, random);
}

}  // namespace amq::features
