/// @file cuda_amq_scorer.hpp
/// @brief Scoring on a CUDA device behind a plain C++ header: programs built by the host
/// compiler alone (the amq command line) score feature maps on the GPU with a scorer trained
/// on the CPU. No CUDA header is needed to use it.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "amq/amq_scorer.hpp"

namespace amq {

/// A trained AmqScorer copied to the current CUDA device: the same projection (same seed,
/// same directions) and the same filter words, so scores equal the CPU's wherever the codes
/// do. Not for concurrent use from several threads.
class CudaAmqScorer {
 public:
  /// The CPU scorer with the paper's classic Bloom filter.
  using ClassicScorer = AmqScorer<LshEncoder<>, BloomFilter<ClassicBloom>>;
  /// The CPU scorer with the split-block Bloom filter.
  using SplitBlockScorer = AmqScorer<LshEncoder<>, BloomFilter<SplitBlockBloom>>;
  /// The same two behind the structured (Walsh–Hadamard) projection.
  using StructuredClassicScorer =
      AmqScorer<LshEncoder<StructuredProjection>, BloomFilter<ClassicBloom>>;
  using StructuredSplitBlockScorer =
      AmqScorer<LshEncoder<StructuredProjection>, BloomFilter<SplitBlockBloom>>;

  /// Copies a trained scorer to the device. Throws amq::Error without a device or model.
  explicit CudaAmqScorer(const ClassicScorer& host);
  explicit CudaAmqScorer(const SplitBlockScorer& host);
  explicit CudaAmqScorer(const StructuredClassicScorer& host);
  explicit CudaAmqScorer(const StructuredSplitBlockScorer& host);
  ~CudaAmqScorer();
  CudaAmqScorer(CudaAmqScorer&&) noexcept;
  CudaAmqScorer& operator=(CudaAmqScorer&&) noexcept;

  /// True when the CUDA runtime sees a usable device (never throws).
  static bool device_available();
  /// Device memory in use on the current device by every allocation of the process and of
  /// others (cudaMemGetInfo: total minus free), in bytes.
  static std::size_t device_used_bytes();

  /// The device's name, e.g. for a log line.
  const char* device_name() const;
  /// Pixels per feature map, W · H.
  std::size_t map_pixels() const;
  /// Highest device memory held by amq's buffers so far, in bytes.
  std::size_t peak_device_bytes() const;

  /// The W · H pixel scores of a host feature map into `out`.
  void score(const FeatureMap& map, float* out);
  /// The W · H pixel scores of a host feature map.
  std::vector<float> score(const FeatureMap& map);
  /// Scores several host maps in one pass: `out` receives maps.size() × W · H scores.
  void score_batch(const std::vector<FeatureMap>& maps, float* out);
  /// Scores `maps` feature maps that already lie in device memory (maps × W·H × D floats,
  /// each stored like amq::FeatureMap, e.g. a contiguous CUDA tensor [N, H, W, D]); the work
  /// is queued on the legacy default stream, after the producer's work there. `out` is host
  /// memory for maps × W · H scores.
  void score_device(const float* device_features, std::size_t maps, float* out);

  /// The device scorer behind this header, defined in the CUDA translation unit.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace amq
