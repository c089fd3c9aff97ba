// MobileNetV2 feature source: layer-by-layer agreement with the reference values shipped with
// the weights, the safetensors reader's checks, preprocessing geometry and the feature layout.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
#include <nlohmann/json.hpp>

#include "amq/error.hpp"
#include "feature_source.hpp"
#include "image_preprocessing.hpp"
#include "mobilenet_v2.hpp"
#include "safetensors.hpp"

namespace fs = std::filesystem;
using namespace amq::features;

namespace {

const std::string models_dir = AMQ_MODELS_DIR;
const std::string weights_path = models_dir + "/mobilenet_v2_1.0_224.safetensors";

// A scratch folder of this test program, removed at exit.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / "amq_test_mobilenet_v2";
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};
const ScratchDir scratch;

// The README's rule: |yours − ref| ≤ 1e-4 · max(|ref|, M), M = max(|min|, |max|) of the tensor.
bool close(double value, double reference, double magnitude) {
  return std::abs(value - reference) <= 1e-4 * std::max(std::abs(reference), magnitude);
}

void check_values(const std::string& what, const std::vector<float>& values,
                  const nlohmann::json& reference, double magnitude) {
  REQUIRE(values.size() == reference.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO(what << "[" << i << "] = " << values[i] << ", reference " << reference[i].get<double>());
    CHECK(close(values[i], reference[i].get<double>(), magnitude));
  }
}

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

void check_layer(const std::string& name, const at::Tensor& out, const nlohmann::json& ref) {
  INFO("layer " << name);
  CHECK(out.sizes().vec() == ref["shape"].get<std::vector<std::int64_t>>());
  const double magnitude =
      std::max(std::abs(ref["min"].get<double>()), std::abs(ref["max"].get<double>()));
  const at::Tensor d = out.to(at::kDouble);
  auto check_scalar = [&](const std::string& what, double value) {
    INFO(what << " = " << value << ", reference " << ref[what].get<double>());
    CHECK(close(value, ref[what].get<double>(), magnitude));
  };
  check_scalar("mean", d.mean().item<double>());
  check_scalar("std", d.std(false).item<double>());
  check_scalar("min", out.min().item<float>());
  check_scalar("max", out.max().item<float>());
  if (out.dim() != 4) return;

  const std::int64_t c = out.size(1);
  const std::int64_t h = out.size(2);
  const std::int64_t w = out.size(3);
  const std::int64_t n = std::min<std::int64_t>(8, w);
  check_values("c0_r0_first8", to_vector(out[0][0][0].narrow(0, 0, n)), ref["c0_r0_first8"],
               magnitude);
  check_values("clast_rlast_last8", to_vector(out[0][c - 1][h - 1].narrow(0, w - n, n)),
               ref["clast_rlast_last8"], magnitude);
  check_values("channel_means_first8", to_vector(out[0].narrow(0, 0, 8).mean({1, 2})),
               ref["channel_means_first8"], magnitude);
}

// Copies the weights file with one tensor changed (or dropped when `shape` is empty).
std::string altered_weights(const std::string& name, const std::string& tensor,
                            const std::vector<std::int64_t>& shape) {
  const SafetensorsFile original(weights_path);
  std::map<std::string, F32Tensor> tensors;
  for (const std::string& n : original.names()) {
    const SafetensorsEntry& e = original.entry(n);
    const float* values = original.f32_data(n, e.shape);
    tensors[n] = {e.shape, std::vector<float>(values, values + (e.end - e.begin) / 4)};
  }
  if (shape.empty()) {
    tensors.erase(tensor);
  } else {
    tensors[tensor].shape = shape;
  }
  const std::string path = scratch.file(name);
  write_safetensors(path, tensors);
  return path;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  const std::string path = scratch.file(name);
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// A safetensors file from a header text and a data section.
std::string raw_safetensors(const std::string& name, const std::string& header,
                            std::size_t data_bytes) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return write_bytes(name, bytes + header + std::string(data_bytes, '\0'));
}

std::string error_of(const std::string& path) {
  try {
    const SafetensorsFile file(path);
  } catch (const amq::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("MobileNetV2 matches the reference values from features.0 to the logits") {
  const MobileNetV2 network(weights_path);
  const SafetensorsFile inputs(models_dir + "/reference_inputs.safetensors");
  const nlohmann::json reference =
      nlohmann::json::parse(std::ifstream(models_dir + "/reference_values.json"));

  for (const std::string input_name : {"eagle", "synthetic"}) {
    INFO("input " << input_name);
    const float* values = inputs.f32_data(input_name, {1, 3, 224, 224});
    const at::Tensor input = at::from_blob(const_cast<float*>(values), {1, 3, 224, 224}).clone();
    const nlohmann::json& ref = reference["outputs"][input_name];

    const std::vector<at::Tensor> outputs = network.forward(input, MobileNetV2::layer_count - 1);
    REQUIRE(outputs.size() == 19);
    for (int i = 0; i < MobileNetV2::layer_count; ++i) {
      const std::string name = "features." + std::to_string(i);
      check_layer(name, outputs[static_cast<std::size_t>(i)], ref[name]);
      CHECK(MobileNetV2::layer_info(name).channels == outputs[static_cast<std::size_t>(i)].size(1));
    }

    const at::Tensor logits = network.logits(outputs.back());
    check_layer("logits", logits, ref["logits"]);
    const auto top = at::topk(logits[0], 5);
    const double magnitude = std::max(std::abs(ref["logits"]["min"].get<double>()),
                                      std::abs(ref["logits"]["max"].get<double>()));
    for (std::int64_t k = 0; k < 5; ++k) {
      const nlohmann::json& expected = ref["logits"]["top5"][static_cast<std::size_t>(k)];
      CHECK(std::get<1>(top)[k].item<std::int64_t>() == expected[0].get<std::int64_t>());
      CHECK(close(std::get<0>(top)[k].item<float>(), expected[1].get<double>(), magnitude));
    }
  }
}

TEST_CASE("A wrong MobileNetV2 weights file is refused with the tensor's name") {
  SUBCASE("missing tensor") {
    const std::string path = altered_weights("missing.safetensors", "features.5.project.bias", {});
    CHECK_THROWS_WITH_AS(MobileNetV2{path},
                         doctest::Contains("'features.5.project.bias' is missing"), amq::Error);
  }
  SUBCASE("wrong shape") {
    const std::string path = altered_weights("shape.safetensors", "features.0.weight", {32, 27});
    CHECK_THROWS_WITH_AS(MobileNetV2{path},
                         doctest::Contains("'features.0.weight' has shape [32, 27], expected "
                                           "[32, 3, 3, 3]"),
                         amq::Error);
  }
  SUBCASE("missing file") {
    CHECK_THROWS_WITH_AS(MobileNetV2{scratch.file("absent.safetensors")},
                         doctest::Contains("cannot open"), amq::Error);
  }
}

TEST_CASE("The safetensors reader refuses corrupt and truncated files") {
  std::ifstream in(weights_path, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());

  const std::string truncated = write_bytes("truncated.safetensors", original.substr(0, 100000));
  CHECK(contains(error_of(truncated), "truncated file?"));
  CHECK(contains(error_of(truncated), "truncated.safetensors"));

  const std::string header_cut = write_bytes("header_cut.safetensors", original.substr(0, 5000));
  CHECK(contains(error_of(header_cut), "header length 11072 exceeds"));

  CHECK(contains(error_of(write_bytes("tiny.safetensors", "abc")), "too short"));
  CHECK(
      contains(error_of(raw_safetensors("json.safetensors", "{\"a\": [1,", 0)), "not valid JSON"));

  const std::string f32 = R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  CHECK(error_of(raw_safetensors("good.safetensors", f32, 24)).empty());
  CHECK(contains(error_of(raw_safetensors("short.safetensors", f32, 20)),
                 "'t' ends at data byte 24 but the data section holds only 20"));
  CHECK(contains(error_of(raw_safetensors("trailing.safetensors", f32, 32)), "trailing bytes"));

  const std::string mismatch = R"({"t":{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}})";
  CHECK(
      contains(error_of(raw_safetensors("mismatch.safetensors", mismatch, 24)), "needs 32 bytes"));

  const std::string gap = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  CHECK(contains(error_of(raw_safetensors("gap.safetensors", gap, 12)), "overlap or gap"));

  const std::string misaligned = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})";
  CHECK(contains(error_of(raw_safetensors("misaligned.safetensors", misaligned, 6)),
                 "not a multiple of its F32 element size 4"));

  const std::string dtype = R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})";
  CHECK(contains(error_of(raw_safetensors("dtype.safetensors", dtype, 2)), "unknown dtype 'Q4'"));

  const std::string f16 = R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})";
  const SafetensorsFile half(raw_safetensors("f16.safetensors", f16, 4));
  CHECK_THROWS_WITH_AS(half.f32_data("t", {2}), doctest::Contains("has dtype F16, expected F32"),
                       amq::Error);
}

TEST_CASE("write_safetensors round-trips tensors and metadata") {
  std::map<std::string, F32Tensor> tensors;
  tensors["b"] = {{3}, {1.0f, -2.0f, 3.5f}};
  tensors["a.weight"] = {{2, 1, 2}, {0.25f, 0.5f, 0.75f, 1.0f}};
  const std::string path = scratch.file("roundtrip.safetensors");
  write_safetensors(path, tensors, {{"source", "test"}});

  const SafetensorsFile file(path);
  CHECK(file.names() == std::vector<std::string>{"a.weight", "b"});
  CHECK(file.metadata().at("source") == "test");
  const float* b = file.f32_data("b", {3});
  CHECK(std::vector<float>(b, b + 3) == tensors["b"].values);
  const float* a = file.f32_data("a.weight", {2, 1, 2});
  CHECK(std::vector<float>(a, a + 4) == tensors["a.weight"].values);
  CHECK_THROWS_AS(file.f32_data("b", {1, 3}), amq::Error);

  tensors["bad"] = {{2, 2}, {1.0f}};
  const std::string refused = scratch.file("refused.safetensors");
  CHECK_THROWS_WITH_AS(write_safetensors(refused, tensors), doctest::Contains("'bad'"), amq::Error);
  CHECK_FALSE(fs::exists(refused));
}

TEST_CASE("Framing: full image and torchvision-style center crop") {
  FeatureOptions options = default_options(Backbone::wide_resnet50_2);
  REQUIRE(options.framing == Framing::center_crop);

  // 300×200: the shorter side 200 → 256, so 300 → 384; crop 224 at ((384−224)/2, (256−224)/2).
  const FramingPlan plan = plan_framing(options, 300, 200);
  CHECK(plan.resized_width == 384);
  CHECK(plan.resized_height == 256);
  CHECK(plan.crop_x == 80);
  CHECK(plan.crop_y == 16);
  const ImageRegion crop = framed_region(options, 300, 200);
  CHECK(crop.x == doctest::Approx(62.5));
  CHECK(crop.y == doctest::Approx(12.5));
  CHECK(crop.width == doctest::Approx(175.0));
  CHECK(crop.height == doctest::Approx(175.0));

  // A square MVTec image keeps the central 224/256 = 87.5 % of each side.
  const ImageRegion square = framed_region(options, 900, 900);
  CHECK(square.x == doctest::Approx(900.0 * 16.0 / 256.0));
  CHECK(square.width == doctest::Approx(900.0 * 0.875));

  options.framing = Framing::full_image;
  const ImageRegion whole = framed_region(options, 300, 200);
  CHECK(whole.x == 0.0);
  CHECK(whole.y == 0.0);
  CHECK(whole.width == doctest::Approx(300.0));
  CHECK(whole.height == doctest::Approx(200.0));
}

TEST_CASE("Preprocessing: MobileNetV2 and ImageNet normalisation, resize keeps a flat image") {
  std::vector<std::uint8_t> pixels(224 * 224 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 7);
  const RgbImage image{pixels.data(), 224, 224};

  const FeatureOptions options = default_options(Backbone::mobilenet_v2);
  const at::Tensor x = preprocess({image}, options, Normalisation::symmetric_unit);
  CHECK(x.sizes().vec() == std::vector<std::int64_t>{1, 3, 224, 224});
  // Pixel (row 5, column 9), green channel: interleaved byte (5·224 + 9)·3 + 1.
  const std::size_t byte = (5 * 224 + 9) * 3 + 1;
  CHECK(x[0][1][5][9].item<float>() == doctest::Approx(pixels[byte] / 127.5 - 1.0));

  // A uniform image stays uniform through an antialiased resize and a crop.
  const std::vector<std::uint8_t> flat(333 * 250 * 3, 200);
  const at::Tensor y =
      preprocess({RgbImage{flat.data(), 333, 250}}, default_options(Backbone::wide_resnet50_2),
                 Normalisation::imagenet);
  CHECK(y.sizes().vec() == std::vector<std::int64_t>{1, 3, 224, 224});
  CHECK(y[0][0].min().item<float>() == doctest::Approx((200 / 255.0 - 0.485) / 0.229));
  CHECK(y[0][2].max().item<float>() == doctest::Approx((200 / 255.0 - 0.406) / 0.225));

  CHECK_THROWS_AS(preprocess({RgbImage{nullptr, 4, 4}}, options, Normalisation::imagenet),
                  amq::Error);
  CHECK_THROWS_AS(preprocess({RgbImage{flat.data(), 0, 4}}, options, Normalisation::imagenet),
                  amq::Error);
}

TEST_CASE("MobileNetV2 feature source: pixel-major layout of the chosen layers") {
  std::vector<std::uint8_t> pixels(224 * 224 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<std::uint8_t>((i * 31 + i / 672 * 5) % 256);
  }
  const RgbImage image{pixels.data(), 224, 224};

  FeatureOptions options = default_options(Backbone::mobilenet_v2);
  options.batch_size = 2;
  auto source = make_feature_source(Backbone::mobilenet_v2, weights_path, options);
  CHECK(source->depth() == 448);
  CHECK(source->width() == 28);
  CHECK(source->height() == 28);
  CHECK_FALSE(source->random_weights());

  const FeatureMapBuffer map = source->extract(image);
  REQUIRE(map.data.size() == 28 * 28 * 448);
  CHECK(map.view().pixels() == 28 * 28);

  // The same numbers by hand: features.6 as is, features.13 and .17 resized to 28×28.
  const MobileNetV2 network(weights_path);
  const at::Tensor input = preprocess({image}, options, Normalisation::symmetric_unit);
  const std::vector<at::Tensor> outputs = network.forward(input, 17);
  const at::Tensor layer13 = at::upsample_bilinear2d(outputs[13], {28, 28}, false);
  const at::Tensor layer17 = at::upsample_bilinear2d(outputs[17], {28, 28}, false);
  for (const auto& [y, x] : {std::pair<int, int>{0, 0}, {3, 17}, {27, 27}, {14, 0}}) {
    const float* pixel = map.data.data() + (static_cast<std::size_t>(y) * 28 + x) * 448;
    CHECK(pixel[0] == doctest::Approx(outputs[6][0][0][y][x].item<float>()).epsilon(1e-5));
    CHECK(pixel[31] == doctest::Approx(outputs[6][0][31][y][x].item<float>()).epsilon(1e-5));
    CHECK(pixel[32 + 50] == doctest::Approx(layer13[0][50][y][x].item<float>()).epsilon(1e-5));
    CHECK(pixel[128 + 319] == doctest::Approx(layer17[0][319][y][x].item<float>()).epsilon(1e-5));
  }

  // Batches of two give the same maps as one image at a time.
  std::vector<std::uint8_t> other(pixels.rbegin(), pixels.rend());
  const std::vector<RgbImage> images = {image, RgbImage{other.data(), 224, 224}, image};
  const std::vector<FeatureMapBuffer> maps = source->extract_batch(images);
  REQUIRE(maps.size() == 3);
  const FeatureMapBuffer single = source->extract(images[1]);
  float largest_difference = 0.0f;
  for (std::size_t i = 0; i < single.data.size(); ++i) {
    largest_difference = std::max(largest_difference, std::abs(single.data[i] - maps[1].data[i]));
    largest_difference = std::max(largest_difference, std::abs(map.data[i] - maps[2].data[i]));
  }
  CHECK(largest_difference < 1e-3f);
  CHECK(maps[0].data != maps[1].data);

  // The local average changes the features, not their shape.
  options.local_average = true;
  auto averaged = make_feature_source(Backbone::mobilenet_v2, weights_path, options);
  const FeatureMapBuffer smooth = averaged->extract(image);
  CHECK(smooth.data.size() == map.data.size());
  CHECK(smooth.data != map.data);
}

TEST_CASE("Feature source options are checked") {
  FeatureOptions options = default_options(Backbone::mobilenet_v2);
  options.layers = {"features.19"};
  CHECK_THROWS_WITH_AS(make_feature_source(Backbone::mobilenet_v2, weights_path, options),
                       doctest::Contains("no layer 'features.19'"), amq::Error);
  options.layers = {"features.6", "features.6"};
  CHECK_THROWS_AS(make_feature_source(Backbone::mobilenet_v2, weights_path, options), amq::Error);
  options = default_options(Backbone::mobilenet_v2);
  CHECK_THROWS_WITH_AS(make_feature_source(Backbone::mobilenet_v2, "", options),
                       doctest::Contains("needs a weights file"), amq::Error);
  options.batch_size = 0;
  CHECK_THROWS_AS(make_feature_source(Backbone::mobilenet_v2, weights_path, options), amq::Error);
  CHECK(parse_backbone("wrn50") == Backbone::wide_resnet50_2);
  CHECK_THROWS_WITH_AS(parse_backbone("resnet18"), doctest::Contains("'resnet18'"), amq::Error);

  options = default_options(Backbone::mobilenet_v2);
  options.layers = {"features.3", "features.18"};
  auto source = make_feature_source(Backbone::mobilenet_v2, weights_path, options);
  CHECK(source->depth() == 24 + 1280);
  CHECK(source->width() == 56);
}
