/// @file amq_scorer.cuh
/// @brief The AMQ scorer on a CUDA device: w_k · x for a batch of feature maps by one cuBLAS
/// sgemm, then one fused kernel that quantises, forms the keys, probes the filter and turns
/// each pixel's hit count into its score s = 1 − (1/G) Σ_k E_k (the paper's eq. 6).
///
/// It is built from a trained host amq::AmqScorer (projection and filter words are copied), so
/// its scores equal the host's wherever the codes do (see lsh_encoder.cuh for when codes can
/// differ). It can also insert further normal maps into its filter on the device.
#pragma once

#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/cuda/bloom_filter.cuh"
#include "amq/cuda/cuda_error.cuh"
#include "amq/cuda/device_buffer.cuh"
#include "amq/cuda/device_logic.hpp"
#include "amq/cuda/lsh_encoder.cuh"

namespace amq::cuda {
namespace detail {

/// Threads per pixel in the scoring kernel: G = 2048 gives each thread eight probes.
inline constexpr unsigned kScoreThreads = 256;

// One block per pixel: the block's threads share the G probes of the pixel, sum their hits
// and write s = 1 − found / G.
template <class Policy, unsigned Threads>
__global__ void __launch_bounds__(Threads)
    score_kernel(const float* projected, const float* offsets, float bucket_width,
                 std::uint32_t hashes, std::size_t pixels, FilterRef<Policy> filter, float* scores,
                 unsigned* status) {
  using Reduce = cub::BlockReduce<std::uint32_t, Threads>;
  __shared__ typename Reduce::TempStorage reduce_storage;
  for (std::size_t p = blockIdx.x; p < pixels; p += gridDim.x) {
    const float* row = projected + p * hashes;
    std::uint32_t found = 0;
    bool in_range = true;
    for (std::uint32_t k = threadIdx.x; k < hashes; k += Threads) {
      std::uint64_t key = 0;
      if (projected_key(row[k], offsets[k], bucket_width, k, key)) {
        found += filter.contains(key) ? 1u : 0u;
      } else {
        in_range = false;
      }
    }
    if (!in_range) atomicOr(status, DeviceStatus::kCodeOutOfRange);
    const std::uint32_t total = Reduce(reduce_storage).Sum(found);
    if (threadIdx.x == 0) scores[p] = pixel_score(total, hashes);
    __syncthreads();  // reduce_storage is reused by the next pixel
  }
}

// Inserts the key of every projected value: quantise, form the key, set its bits (atomicOr).
template <class Policy, unsigned Threads>
__global__ void __launch_bounds__(Threads)
    add_projected_kernel(const float* projected, const float* offsets, float bucket_width,
                         std::uint32_t hashes, std::size_t count, std::uint32_t* words,
                         BloomParams params, unsigned* status) {
  for (std::size_t i = blockIdx.x * std::size_t{Threads} + threadIdx.x; i < count;
       i += std::size_t{gridDim.x} * Threads) {
    const auto k = static_cast<std::uint32_t>(i % hashes);
    std::uint64_t key = 0;
    if (!projected_key(projected[i], offsets[k], bucket_width, k, key)) {
      atomicOr(status, DeviceStatus::kCodeOutOfRange);
      continue;
    }
    ProbeWords<Policy>::for_each(
        params, Policy::locate(params, key),
        [words](std::uint64_t word, std::uint32_t mask) { atomicOr(words + word, mask); });
  }
}

}  // namespace detail

/// amq::AmqScorer on a CUDA device, for a Bloom policy and the dense (default) or structured
/// projection. Bulk calls take device feature maps (maps × W·H × D floats, each map stored as
/// amq::FeatureMap) and have `_async` twins; the plain calls take host maps and wait. Not for
/// concurrent use from several threads: the scorer owns a projection workspace.
template <class Policy = ClassicBloom, class Projection = DenseProjection>
class AmqScorer {
 public:
  /// The host scorer type this one is built from.
  using HostScorer = amq::AmqScorer<amq::LshEncoder<Projection>, amq::BloomFilter<Policy>>;

  /// Copies the projection and the filter of a trained host scorer to the current device.
  explicit AmqScorer(const HostScorer& host)
      : encoder_(checked(host).encoder()),
        filter_(host.filter()),
        width_(host.map_width()),
        height_(host.map_height()) {}

  /// A scorer with the projection of `encoder` and an empty filter of `filter_params`, for maps
  /// of `width` × `height` pixels: train it on the device with add.
  AmqScorer(const amq::LshEncoder<Projection>& encoder, const BloomParams& filter_params,
            std::size_t width, std::size_t height)
      : encoder_(encoder), filter_(filter_params), width_(width), height_(height) {
    AMQ_EXPECTS(width > 0 && height > 0,
                "feature maps must have pixels, got " << width << " x " << height);
  }

  /// The device encoder (projection).
  LshEncoder& encoder() { return encoder_; }
  /// The device filter.
  const BloomFilter<Policy>& filter() const { return filter_; }
  /// Feature-map width W.
  std::size_t map_width() const { return width_; }
  /// Feature-map height H.
  std::size_t map_height() const { return height_; }
  /// Pixels per map, W · H.
  std::size_t map_pixels() const { return width_ * height_; }

  /// scores (maps × W·H, device) of `maps` device feature maps, queued on `stream`. A code
  /// outside int32 sets the status word; check_async_errors reports it.
  void score_async(const float* features, std::size_t maps, float* scores, cudaStream_t stream) {
    for_each_chunk(features, maps, stream, [&](std::size_t first, std::size_t pixels) {
      const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>(pixels, 1u << 20));
      detail::score_kernel<Policy, detail::kScoreThreads>
          <<<blocks, detail::kScoreThreads, 0, stream>>>(
              workspace_.data(), encoder_.offsets(), encoder_.params().bucket_width,
              static_cast<std::uint32_t>(encoder_.hashes()), pixels, filter_.ref(), scores + first,
              status_.get());
      AMQ_CUDA_CHECK_LAUNCH();
    });
  }

  /// Inserts the keys of `maps` device feature maps into the filter, queued on `stream`.
  void add_async(const float* features, std::size_t maps, cudaStream_t stream) {
    for_each_chunk(features, maps, stream, [&](std::size_t, std::size_t pixels) {
      const std::size_t count = pixels * encoder_.hashes();
      detail::add_projected_kernel<Policy, detail::kThreads>
          <<<grid_size(count, detail::kThreads), detail::kThreads, 0, stream>>>(
              workspace_.data(), encoder_.offsets(), encoder_.params().bucket_width,
              static_cast<std::uint32_t>(encoder_.hashes()), count, filter_.words(),
              filter_.params(), status_.get());
      AMQ_CUDA_CHECK_LAUNCH();
    });
  }

  /// Waits for `stream` and throws amq::Error if an earlier `_async` call met a code outside
  /// int32 (its scores or inserted keys are then incomplete).
  void check_async_errors(cudaStream_t stream) { status_.check(stream, "CUDA AMQ scorer"); }

  /// The W·H pixel scores of the host map `map` into the host array `out`.
  void score(const FeatureMap& map, float* out) { score_batch(&map, 1, out); }

  /// The W·H pixel scores of the host map `map`.
  std::vector<float> score(const FeatureMap& map) {
    std::vector<float> out(map_pixels());
    score(map, out.data());
    return out;
  }

  /// Scores `count` host maps in one pass; out receives count × W·H scores, map after map.
  void score_batch(const FeatureMap* maps, std::size_t count, float* out) {
    AMQ_EXPECTS(count == 0 || (maps != nullptr && out != nullptr),
                "score_batch of " << count << " maps with a null map or output array");
    if (count == 0) return;
    upload(maps, count);
    scores_.reserve_discard(count * map_pixels());
    score_async(features_.data(), count, scores_.data(), nullptr);
    check_async_errors(nullptr);
    scores_.copy_to_host(out, count * map_pixels());
  }

  /// Inserts the keys of the host map `map` into the filter and waits.
  void add(const FeatureMap& map) {
    upload(&map, 1);
    add_async(features_.data(), 1, nullptr);
    check_async_errors(nullptr);
  }

 private:
  static const HostScorer& checked(const HostScorer& host) {
    AMQ_EXPECTS(host.built(), "amq::cuda::AmqScorer needs a trained host scorer");
    // The device kernels form one key per hash function (make_key), the paper's K = 1.
    AMQ_EXPECTS(host.params().codes_per_key == 1,
                "amq::cuda::AmqScorer supports codes per key K = 1 only, the model has K = "
                    << host.params().codes_per_key);
    return host;
  }

  void expect_map(const FeatureMap& map) const {
    AMQ_EXPECTS(map.data != nullptr, "feature map data is null");
    AMQ_EXPECTS(map.depth == encoder_.dim(),
                "feature map depth D = " << map.depth
                                         << " differs from the model's D = " << encoder_.dim());
    AMQ_EXPECTS(map.width == width_ && map.height == height_,
                "feature map is " << map.width << " x " << map.height
                                  << " pixels, the model's maps are " << width_ << " x "
                                  << height_);
  }

  // Copies host maps into one device array, map after map.
  void upload(const FeatureMap* maps, std::size_t count) {
    const std::size_t values = map_pixels() * encoder_.dim();
    features_.reserve_discard(count * values);
    for (std::size_t i = 0; i < count; ++i) {
      expect_map(maps[i]);
      AMQ_CUDA_CHECK(cudaMemcpyAsync(features_.data() + i * values, maps[i].data,
                                     values * sizeof(float), cudaMemcpyHostToDevice, nullptr));
    }
  }

  // Projects the pixels of `maps` device maps chunk by chunk into the workspace and calls
  // step(first pixel, pixels in the chunk) for each chunk, on `stream`.
  template <class Step>
  void for_each_chunk(const float* features, std::size_t maps, cudaStream_t stream, Step step) {
    const std::size_t total = maps * map_pixels();
    const std::size_t chunk = encoder_.chunk_pixels();
    workspace_.reserve_discard(std::min(chunk, total) * encoder_.hashes());
    for (std::size_t first = 0; first < total; first += chunk) {
      const std::size_t pixels = std::min(chunk, total - first);
      encoder_.project_async(features + first * encoder_.dim(), pixels, workspace_.data(), stream);
      step(first, pixels);
    }
  }

  LshEncoder encoder_;
  BloomFilter<Policy> filter_;
  std::size_t width_;
  std::size_t height_;
  DeviceBuffer<float> workspace_;  // projected values of one chunk
  DeviceBuffer<float> features_;   // host maps uploaded by the plain calls
  DeviceBuffer<float> scores_;     // scores downloaded by the plain calls
  DeviceStatus status_;
};

}  // namespace amq::cuda
