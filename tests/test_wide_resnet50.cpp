// Wide ResNet-50-2 feature source: shapes in the random-weights mode, BatchNorm folding against
// an unfolded eval-mode forward pass, the safetensors weights path and its refusals.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
// LibTorch brings glog, whose CHECK macros would shadow doctest's.
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#include <doctest/doctest.h>

#include "amq/error.hpp"
#include "feature_source.hpp"
#include "safetensors.hpp"
#include "wide_resnet50.hpp"

namespace fs = std::filesystem;
using namespace amq::features;

namespace {

// A scratch folder of this test program, removed at exit.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / "amq_test_wide_resnet50";
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};
const ScratchDir scratch;

// Random BatchNorm statistics, so that folding them into the convolutions is exercised.
WideResNet50::StateDict with_random_batch_norm(WideResNet50::StateDict weights) {
  at::manual_seed(7);
  for (auto& [name, tensor] : weights) {
    const std::int64_t n = tensor.size(0);
    if (name.find("running_var") != std::string::npos) tensor = at::rand({n}) + 0.5;
    if (name.find("running_mean") != std::string::npos) tensor = at::randn({n}) * 0.1;
    if (name.find("bn") != std::string::npos || name.find("downsample.1") != std::string::npos) {
      if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
        tensor = at::rand({n}) * 0.5 + 0.5;
      } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
        tensor = at::randn({n}) * 0.1;
      }
    }
  }
  return weights;
}

// torchvision's forward pass written out with unfolded eval-mode BatchNorm.
std::vector<at::Tensor> unfolded_forward(const WideResNet50::StateDict& w, at::Tensor x) {
  auto bn = [&](const at::Tensor& y, const std::string& p) {
    return at::batch_norm(y, w.at(p + ".weight"), w.at(p + ".bias"), w.at(p + ".running_mean"),
                          w.at(p + ".running_var"), false, 0.1, 1e-5, false);
  };
  auto conv = [&](const at::Tensor& y, const std::string& name, std::int64_t stride,
                  std::int64_t padding) {
    return at::conv2d(y, w.at(name + ".weight"), {}, stride, padding);
  };
  x = at::max_pool2d(at::relu(bn(conv(x, "conv1", 2, 3), "bn1")), {3, 3}, {2, 2}, {1, 1});
  const int blocks[4] = {3, 4, 6, 3};
  std::vector<at::Tensor> outputs;
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < blocks[s]; ++b) {
      const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      const std::int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      at::Tensor y = at::relu(bn(conv(x, p + "conv1", 1, 0), p + "bn1"));
      y = at::relu(bn(conv(y, p + "conv2", stride, 1), p + "bn2"));
      y = bn(conv(y, p + "conv3", 1, 0), p + "bn3");
      const at::Tensor identity =
          b == 0 ? bn(conv(x, p + "downsample.0", stride, 0), p + "downsample.1") : x;
      x = at::relu(y + identity);
    }
    outputs.push_back(x);
  }
  return outputs;
}

std::map<std::string, F32Tensor> to_f32(const WideResNet50::StateDict& weights) {
  std::map<std::string, F32Tensor> tensors;
  for (const auto& [name, tensor] : weights) {
    const at::Tensor c = tensor.contiguous();
    tensors[name] = {c.sizes().vec(),
                     std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel())};
  }
  return tensors;
}

float relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<float>();
}

}  // namespace

TEST_CASE("WRN50 random weights: a 28x28x3584 feature map at 224, seeded") {
  FeatureOptions options = default_options(Backbone::wide_resnet50_2);
  auto source = make_feature_source(Backbone::wide_resnet50_2, "", options);
  CHECK(source->random_weights());
  CHECK(source->name().find("RANDOM WEIGHTS") != std::string::npos);
  CHECK(source->depth() == 3584);
  CHECK(source->width() == 28);
  CHECK(source->height() == 28);

  // A non-square image: resized to 320×256, then its central 224² goes in.
  std::vector<std::uint8_t> pixels(300 * 240 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i % 251);
  const FeatureMapBuffer map = source->extract(RgbImage{pixels.data(), 300, 240});
  CHECK(map.width == 28);
  CHECK(map.height == 28);
  CHECK(map.depth == 3584);
  REQUIRE(map.data.size() == 28 * 28 * 3584);
  bool finite = true;
  for (const float v : map.data) finite = finite && std::isfinite(v);
  CHECK(finite);

  const ImageRegion region = source->covered_region(300, 240);
  CHECK(region.width == doctest::Approx(210.0));
  CHECK(region.height == doctest::Approx(210.0));

  const WideResNet50::StateDict a = WideResNet50::random_state_dict(3);
  const WideResNet50::StateDict b = WideResNet50::random_state_dict(3);
  const WideResNet50::StateDict c = WideResNet50::random_state_dict(4);
  CHECK(at::equal(a.at("layer3.2.conv2.weight"), b.at("layer3.2.conv2.weight")));
  CHECK_FALSE(at::equal(a.at("layer3.2.conv2.weight"), c.at("layer3.2.conv2.weight")));
  CHECK(WideResNet50::parameter_shapes().size() == a.size());
}

TEST_CASE("WRN50: folded BatchNorm equals eval-mode BatchNorm; safetensors weights load") {
  const WideResNet50::StateDict weights =
      with_random_batch_norm(WideResNet50::random_state_dict(1));
  const at::Tensor input = at::randn({2, 3, 64, 96});

  const WideResNet50 network(weights, "test weights");
  const std::vector<at::Tensor> folded = network.forward(input, 4);
  const std::vector<at::Tensor> reference = unfolded_forward(weights, input);
  REQUIRE(folded.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("layer" << i + 1);
    CHECK(folded[i].sizes() == reference[i].sizes());
    CHECK(relative_difference(folded[i], reference[i]) < 1e-4f);
    CHECK(folded[i].size(1) == WideResNet50::layer_info("layer" + std::to_string(i + 1)).channels);
  }
  CHECK(folded[1].sizes().vec() == std::vector<std::int64_t>{2, 512, 8, 12});

  // As a torchvision export: extra tensors (the classifier) are ignored.
  std::map<std::string, F32Tensor> tensors = to_f32(weights);
  tensors["fc.weight"] = {{2, 2}, {1.0f, 2.0f, 3.0f, 4.0f}};
  const std::string path = scratch.file("wrn50.safetensors");
  write_safetensors(path, tensors);
  const WideResNet50 loaded = WideResNet50::from_file(path);
  const std::vector<at::Tensor> from_file = loaded.forward(input, 2);
  CHECK(at::equal(from_file[1], folded[1]));

  // The same file with one tensor of the wrong shape, then with one tensor missing.
  const F32Tensor kept = tensors["layer3.2.conv2.weight"];
  tensors["layer3.2.conv2.weight"].shape = {512, 512, 9};
  const std::string wrong_shape = scratch.file("wrong_shape.safetensors");
  write_safetensors(wrong_shape, tensors);
  CHECK_THROWS_WITH_AS(WideResNet50::from_file(wrong_shape),
                       doctest::Contains("'layer3.2.conv2.weight' has shape [512, 512, 9], "
                                         "expected [512, 512, 3, 3]"),
                       amq::Error);
  CHECK_THROWS_WITH_AS(make_feature_source(Backbone::wide_resnet50_2, wrong_shape,
                                           default_options(Backbone::wide_resnet50_2)),
                       doctest::Contains("wrong_shape.safetensors"), amq::Error);
  fs::remove(wrong_shape);

  tensors["layer3.2.conv2.weight"] = kept;
  tensors.erase("layer4.0.downsample.1.running_var");
  const std::string missing = scratch.file("missing.safetensors");
  write_safetensors(missing, tensors);
  CHECK_THROWS_WITH_AS(WideResNet50::from_file(missing),
                       doctest::Contains("'layer4.0.downsample.1.running_var' is missing"),
                       amq::Error);

  WideResNet50::StateDict broken = weights;
  broken["layer2.1.bn2.running_var"] = -at::ones({256});
  CHECK_THROWS_WITH_AS(WideResNet50(broken, "broken"), doctest::Contains("negative variance"),
                       amq::Error);
}

TEST_CASE("WRN50 layers and options") {
  CHECK(WideResNet50::layer_info("layer2").stride == 8);
  CHECK(WideResNet50::layer_info("layer4").channels == 2048);
  CHECK_THROWS_WITH_AS(WideResNet50::layer_index("layer5"), doctest::Contains("'layer5'"),
                       amq::Error);

  FeatureOptions options = default_options(Backbone::wide_resnet50_2);
  options.layers = {"layer2", "layer3"};
  options.image_size = 160;
  options.resize_size = 180;
  options.local_average = true;
  auto source = make_feature_source(Backbone::wide_resnet50_2, "", options);
  CHECK(source->depth() == 1536);
  CHECK(source->width() == 20);
  std::vector<std::uint8_t> pixels(200 * 200 * 3, 90);
  const std::vector<FeatureMapBuffer> maps =
      source->extract_batch({RgbImage{pixels.data(), 200, 200}, RgbImage{pixels.data(), 200, 200}});
  REQUIRE(maps.size() == 2);
  CHECK(maps[0].data.size() == 20 * 20 * 1536);
  CHECK(maps[0].data == maps[1].data);

  options.resize_size = 100;
  CHECK_THROWS_WITH_AS(make_feature_source(Backbone::wide_resnet50_2, "", options),
                       doctest::Contains("resize_size (100)"), amq::Error);
}

TEST_CASE("WRN50 on CUDA: refused without a CUDA LibTorch, equal to the CPU's with one") {
  FeatureOptions options = default_options(Backbone::wide_resnet50_2);
  options.layers = {"layer2"};
  options.cuda = true;
  if (!cuda_available()) {
    MESSAGE("LibTorch has no CUDA here: only the refusal is tested");
    CHECK_THROWS_WITH_AS(make_feature_source(Backbone::wide_resnet50_2, "", options),
                         doctest::Contains("LibTorch has no CUDA"), amq::Error);
    return;
  }
  std::vector<std::uint8_t> pixels(256 * 256 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i % 241);
  const RgbImage image{pixels.data(), 256, 256};
  const FeatureMapBuffer on_gpu =
      make_feature_source(Backbone::wide_resnet50_2, "", options)->extract(image);
  options.cuda = false;
  const FeatureMapBuffer on_cpu =
      make_feature_source(Backbone::wide_resnet50_2, "", options)->extract(image);
  REQUIRE(on_gpu.data.size() == on_cpu.data.size());
  const at::Tensor gpu = at::from_blob(const_cast<float*>(on_gpu.data.data()),
                                       {static_cast<std::int64_t>(on_gpu.data.size())});
  const at::Tensor cpu = at::from_blob(const_cast<float*>(on_cpu.data.data()),
                                       {static_cast<std::int64_t>(on_cpu.data.size())});
  CHECK(relative_difference(gpu, cpu) < 1e-3f);
}
