// End-to-end throughput on a CUDA device: Wide ResNet-50-2 with seeded random weights on
// 224 x 224 inputs (LibTorch) -> feature maps [N, 28, 28, 3584] left in device memory ->
// CudaAmqScorer (cuBLAS projection + fused probe kernel) -> score maps and image scores on the
// host. Random weights make the numbers a measure of speed only.
//
// Usage: amq_wrn50_cuda_throughput [batch sizes...]   (default 1 2 4 8 16 32 64)
// Prints one line per batch size; exits with 77 when LibTorch has no CUDA or no device is
// present.
#include <torch/cuda.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "cuda_amq_scorer.hpp"
#include "wide_resnet50.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::int64_t kImageSize = 224, kGrid = 28, kDepth = 3584, kHashes = 2048;

// Stages 2, 3 and 4 resized bilinearly to the stage-2 grid and concatenated: the paper's
// D = 3584 feature map, laid out pixel-major [N, 28, 28, 3584] as amq reads it.
at::Tensor feature_maps(const amq::features::WideResNet50& network, const at::Tensor& input) {
  const std::vector<at::Tensor> layers = network.forward(input, 4);
  std::vector<at::Tensor> parts;
  for (std::size_t i = 1; i < layers.size(); ++i) {
    at::Tensor layer = layers[i];
    if (layer.size(2) != kGrid) layer = at::upsample_bilinear2d(layer, {kGrid, kGrid}, false);
    parts.push_back(layer);
  }
  return at::cat(parts, 1).permute({0, 2, 3, 1}).contiguous();
}

amq::CudaAmqScorer::SplitBlockScorer train_on_host(const amq::features::WideResNet50& network) {
  amq::ScorerParams params;
  params.lsh = {static_cast<std::size_t>(kDepth), static_cast<std::size_t>(kHashes), 4.0f, 1};
  params.sizing = amq::SizingRule::target_fpr;
  amq::CudaAmqScorer::SplitBlockScorer scorer(params);
  const at::Tensor input = at::randn({2, 3, kImageSize, kImageSize}, at::kCUDA);
  const at::Tensor features = feature_maps(network, input).to(at::kCPU);
  const std::size_t values = static_cast<std::size_t>(kGrid * kGrid * kDepth);
  std::vector<amq::FeatureMap> maps;
  for (std::size_t n = 0; n < 2; ++n) {
    maps.push_back({features.data_ptr<float>() + n * values, static_cast<std::size_t>(kGrid),
                    static_cast<std::size_t>(kGrid), static_cast<std::size_t>(kDepth)});
  }
  scorer.fit(maps);
  return scorer;
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::int64_t> batches;
  for (int i = 1; i < argc; ++i) batches.push_back(std::atoll(argv[i]));
  if (batches.empty()) batches = {1, 2, 4, 8, 16, 32, 64};
  if (!torch::cuda::is_available() || !amq::CudaAmqScorer::device_available()) {
    std::printf("skipped: LibTorch without CUDA or no CUDA device\n");
    return 77;
  }
  c10::InferenceMode inference;

  auto weights = amq::features::WideResNet50::random_state_dict(42);
  for (auto& entry : weights) entry.second = entry.second.to(at::kCUDA);
  const amq::features::WideResNet50 network(weights, "random weights");
  const auto host_scorer = train_on_host(network);
  amq::CudaAmqScorer scorer(host_scorer);
  std::printf("device: %s\n", scorer.device_name());

  std::size_t peak_used = amq::CudaAmqScorer::device_used_bytes();
  for (const std::int64_t batch : batches) {
    const at::Tensor input = at::randn({batch, 3, kImageSize, kImageSize}, at::kCUDA);
    std::vector<float> scores(static_cast<std::size_t>(batch) * scorer.map_pixels());
    std::vector<float> image_scores(static_cast<std::size_t>(batch));
    const auto run = [&] {
      const at::Tensor features = feature_maps(network, input);
      torch::cuda::synchronize();  // the scorer queues its work behind LibTorch's
      scorer.score_device(features.data_ptr<float>(), static_cast<std::size_t>(batch),
                          scores.data());
      for (std::int64_t n = 0; n < batch; ++n) {
        image_scores[static_cast<std::size_t>(n)] =
            host_scorer.image_score(scores.data() + n * scorer.map_pixels());
      }
    };
    run();  // warm-up: cuDNN algorithm choice, workspaces
    run();
    peak_used = std::max(peak_used, amq::CudaAmqScorer::device_used_bytes());

    int iterations = 0;
    const Clock::time_point start = Clock::now();
    double seconds = 0.0;
    while (iterations < 5 || seconds < 1.0) {
      run();
      ++iterations;
      seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    const double per_batch_ms = seconds * 1e3 / iterations;
    std::printf("wrn50_e2e batch=%lld images_per_s=%.1f ms_per_batch=%.2f\n",
                static_cast<long long>(batch), static_cast<double>(batch) * 1e3 / per_batch_ms,
                per_batch_ms);
    std::fflush(stdout);
  }
  std::printf("wrn50_e2e peak_device_used_MiB=%.0f amq_peak_MiB=%.0f\n",
              static_cast<double>(peak_used) / (1024.0 * 1024.0),
              static_cast<double>(scorer.peak_device_bytes()) / (1024.0 * 1024.0));
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "amq_wrn50_cuda_throughput: %s\n", error.what());
  return 1;
}
