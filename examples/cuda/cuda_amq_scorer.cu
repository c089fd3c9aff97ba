// The CUDA translation unit behind cuda_amq_scorer.hpp.
#include "cuda_amq_scorer.hpp"

#include <string>

#include "amq/cuda/amq_scorer.cuh"

namespace amq {

// The policy-independent face of amq::cuda::AmqScorer<Policy>.
struct CudaAmqScorer::Impl {
  virtual ~Impl() = default;
  virtual std::size_t map_pixels() const = 0;
  virtual void score_batch(const FeatureMap* maps, std::size_t count, float* out) = 0;
  virtual void score_device(const float* features, std::size_t maps, float* out) = 0;

  std::string device_name;
};

namespace {

template <class Policy, class Projection>
struct ScorerImpl final : CudaAmqScorer::Impl {
  explicit ScorerImpl(const typename cuda::AmqScorer<Policy, Projection>::HostScorer& host)
      : scorer(host) {
    int device = 0;
    cudaDeviceProp properties{};
    AMQ_CUDA_CHECK(cudaGetDevice(&device));
    AMQ_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    device_name = properties.name;
  }

  std::size_t map_pixels() const override { return scorer.map_pixels(); }

  void score_batch(const FeatureMap* maps, std::size_t count, float* out) override {
    scorer.score_batch(maps, count, out);
  }

  void score_device(const float* features, std::size_t maps, float* out) override {
    AMQ_EXPECTS(maps == 0 || (features != nullptr && out != nullptr),
                "score_device of " << maps << " maps with a null feature or output array");
    if (maps == 0) return;
    scores.reserve_discard(maps * scorer.map_pixels());
    scorer.score_async(features, maps, scores.data(), nullptr);
    scorer.check_async_errors(nullptr);
    scores.copy_to_host(out, maps * scorer.map_pixels());
  }

  cuda::AmqScorer<Policy, Projection> scorer;
  cuda::DeviceBuffer<float> scores;
};

}  // namespace

CudaAmqScorer::CudaAmqScorer(const ClassicScorer& host)
    : impl_(std::make_unique<ScorerImpl<ClassicBloom, DenseProjection>>(host)) {}

CudaAmqScorer::CudaAmqScorer(const SplitBlockScorer& host)
    : impl_(std::make_unique<ScorerImpl<SplitBlockBloom, DenseProjection>>(host)) {}

CudaAmqScorer::CudaAmqScorer(const StructuredClassicScorer& host)
    : impl_(std::make_unique<ScorerImpl<ClassicBloom, StructuredProjection>>(host)) {}

CudaAmqScorer::CudaAmqScorer(const StructuredSplitBlockScorer& host)
    : impl_(std::make_unique<ScorerImpl<SplitBlockBloom, StructuredProjection>>(host)) {}

CudaAmqScorer::~CudaAmqScorer() = default;
CudaAmqScorer::CudaAmqScorer(CudaAmqScorer&&) noexcept = default;
CudaAmqScorer& CudaAmqScorer::operator=(CudaAmqScorer&&) noexcept = default;

bool CudaAmqScorer::device_available() { return cuda::device_available(); }

std::size_t CudaAmqScorer::device_used_bytes() {
  std::size_t free = 0, total = 0;
  AMQ_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return total - free;
}

const char* CudaAmqScorer::device_name() const { return impl_->device_name.c_str(); }

std::size_t CudaAmqScorer::map_pixels() const { return impl_->map_pixels(); }

std::size_t CudaAmqScorer::peak_device_bytes() const { return cuda::memory_stats().peak_bytes; }

void CudaAmqScorer::score(const FeatureMap& map, float* out) { impl_->score_batch(&map, 1, out); }

std::vector<float> CudaAmqScorer::score(const FeatureMap& map) {
  std::vector<float> out(impl_->map_pixels());
  impl_->score_batch(&map, 1, out.data());
  return out;
}

void CudaAmqScorer::score_batch(const std::vector<FeatureMap>& maps, float* out) {
  impl_->score_batch(maps.data(), maps.size(), out);
}

void CudaAmqScorer::score_device(const float* device_features, std::size_t maps, float* out) {
  impl_->score_device(device_features, maps, out);
}

}  // namespace amq
