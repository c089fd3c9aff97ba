#include "image_preprocessing.hpp"

#include <cmath>

#include "amq/error.hpp"

namespace amq::features {

FramingPlan plan_framing(const FeatureOptions& options, std::size_t width, std::size_t height) {
  AMQ_EXPECTS(width > 0 && height > 0, "image of " << width << "×" << height << " pixels is empty");
  const auto size = static_cast<std::int64_t>(options.image_size);
  if (options.framing == Framing::full_image) return {size, size, 0, 0};

  const auto w = static_cast<std::int64_t>(width);
  const auto h = static_cast<std::int64_t>(height);
  const auto shorter = static_cast<std::int64_t>(options.resize_size);
  FramingPlan plan;
  plan.resized_width = w <= h ? shorter : shorter * w / h;
  plan.resized_height = w <= h ? shorter * h / w : shorter;
  plan.crop_x = std::llround(static_cast<double>(plan.resized_width - size) / 2.0);
  plan.crop_y = std::llround(static_cast<double>(plan.resized_height - size) / 2.0);
  return plan;
}

ImageRegion framed_region(const FeatureOptions& options, std::size_t width, std::size_t height) {
  const FramingPlan plan = plan_framing(options, width, height);
  const double scale_x = static_cast<double>(width) / static_cast<double>(plan.resized_width);
  const double scale_y = static_cast<double>(height) / static_cast<double>(plan.resized_height);
  const auto size = static_cast<double>(options.image_size);
  return {static_cast<double>(plan.crop_x) * scale_x, static_cast<double>(plan.crop_y) * scale_y,
          size * scale_x, size * scale_y};
}

at::Tensor preprocess(const std::vector<RgbImage>& images, const FeatureOptions& options,
                      Normalisation normalisation) {
  AMQ_EXPECTS(!images.empty(), "preprocess: no images");
  const auto size = static_cast<std::int64_t>(options.image_size);
  std::vector<at::Tensor> inputs;
  for (const RgbImage& image : images) {
    AMQ_EXPECTS(image.pixels != nullptr, "preprocess: image has no pixel buffer");
    const FramingPlan plan = plan_framing(options, image.width, image.height);
    const auto w = static_cast<std::int64_t>(image.width);
    const auto h = static_cast<std::int64_t>(image.height);

    // Borrow the interleaved bytes as [H, W, 3], then go to planar float [1, 3, H, W].
    const at::Tensor bytes =
        at::from_blob(const_cast<std::uint8_t*>(image.pixels), {h, w, 3}, at::kByte);
    at::Tensor x = bytes.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
    if (plan.resized_width != w || plan.resized_height != h) {
      x = at::_upsample_bilinear2d_aa(x, {plan.resized_height, plan.resized_width}, false);
      x = at::clamp(at::round(x), 0.0, 255.0);
    }
    x = x.narrow(2, plan.crop_y, size).narrow(3, plan.crop_x, size);
    inputs.push_back(x);
  }
  at::Tensor batch = at::cat(inputs, 0);

  if (normalisation == Normalisation::symmetric_unit) return batch / 127.5 - 1.0;
  const at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return (batch / 255.0 - mean) / std;
}

}  // namespace amq::features
