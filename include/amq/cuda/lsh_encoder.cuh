/// @file lsh_encoder.cuh
/// @brief The LSH encoder on a CUDA device: h_k(x) = floor((w_k · x + b_k) / ε) (the paper's
/// eq. 2) for every pixel and hash function, with w_k · x from one cuBLAS sgemm.
///
/// The projection is generated on the host by amq::LshEncoder and copied, so the same
/// parameters and seed give the same directions and offsets as on the CPU. The quantiser is
/// the CPU's own (device_logic.hpp). Codes may still differ from the CPU's where a projection
/// lies within rounding of a bucket edge: cuBLAS and the CPU BLAS sum the D products in
/// different orders, and |Δ(w_k · x)| <= γ_D · Σ_d |w_kd x_d| with γ_D = D·u / (1 − D·u),
/// u = 2^-24. Only codes that close to an edge can differ, and then by one.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/cuda/cuda_error.cuh"
#include "amq/cuda/device_buffer.cuh"
#include "amq/cuda/device_logic.hpp"
#include "amq/feature_map.hpp"
#include "amq/lsh_encoder.hpp"

namespace amq::cuda {
namespace detail {

/// codes[i] = h_k of projected[i], k = i mod G, over a P × G row-major block.
template <unsigned Threads>
__global__ void __launch_bounds__(Threads)
    quantize_kernel(const float* projected, const float* offsets, float bucket_width,
                    std::size_t hashes, std::size_t count, std::int32_t* codes, unsigned* status) {
  for (std::size_t i = blockIdx.x * std::size_t{Threads} + threadIdx.x; i < count;
       i += std::size_t{gridDim.x} * Threads) {
    const std::size_t k = i % hashes;
    std::int32_t code = 0;
    if (!amq::detail::quantize_one(projected[i], offsets[k], bucket_width, code)) {
      atomicOr(status, DeviceStatus::kCodeOutOfRange);
    }
    codes[i] = code;
  }
}

}  // namespace detail

/// amq::LshEncoder on a CUDA device, for the dense Gaussian projection. Bulk calls take device
/// pointers and have `_async` twins on a caller's stream; the plain calls take host matrices,
/// wait, and throw amq::Error when a code is outside int32. The encoder owns a projection
/// workspace and a status word: use one encoder per concurrent stream.
class LshEncoder {
 public:
  /// Pixels projected per cuBLAS call: a bounded workspace (P × G floats) for any batch.
  static constexpr std::size_t kChunkValues = std::size_t{1} << 26;

  /// Copies the projection (directions and offsets) of a host encoder to the current device.
  explicit LshEncoder(const amq::LshEncoder<DenseProjection>& host)
      : params_(checked(host.params())),
        directions_(host.directions().size()),
        offsets_(host.offsets().size()) {
    directions_.copy_from_host(host.directions().data(), host.directions().size());
    offsets_.copy_from_host(host.offsets().data(), host.offsets().size());
  }

  /// Generates the projection of `params` on the host (as amq::LshEncoder does) and copies it.
  explicit LshEncoder(const LshParams& params) : LshEncoder(amq::LshEncoder<>(params)) {}

  /// The parameters of the projection.
  const LshParams& params() const { return params_; }
  /// D, channels per feature vector.
  std::size_t dim() const { return params_.dim; }
  /// G, codes per feature vector.
  std::size_t hashes() const { return params_.hashes; }
  /// The directions w_k in device memory, G × D row-major.
  const float* directions() const { return directions_.data(); }
  /// The offsets b_k in device memory, G values.
  const float* offsets() const { return offsets_.data(); }
  /// The status word the encoder's kernels report to.
  DeviceStatus& status() { return status_; }
  /// Largest number of pixels handled by one projection call.
  std::size_t chunk_pixels() const { return std::max<std::size_t>(1, kChunkValues / hashes()); }

  /// projected (P × G, device) = features (P × D, device) · directionsᵀ, queued on `stream`.
  /// `pixels` must be at most INT_MAX.
  void project_async(const float* features, std::size_t pixels, float* projected,
                     cudaStream_t stream) {
    AMQ_EXPECTS(pixels <= INT_MAX, "cuBLAS sizes must fit in int, got P = " << pixels);
    if (pixels == 0) return;
    // Row-major Y = X·Wᵀ is column-major Yᵀ = W·Xᵀ: W is a column-major D × G matrix used
    // transposed, X a column-major D × P one.
    const float one = 1.0f, zero = 0.0f;
    const int g = static_cast<int>(hashes()), d = static_cast<int>(dim());
    AMQ_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream));
    AMQ_CUBLAS_CHECK(cublasSgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, g,
                                 static_cast<int>(pixels), d, &one, directions_.data(), d, features,
                                 d, &zero, projected, g));
  }

  /// codes (P × G, device) of features (P × D, device), queued on `stream`. A code outside
  /// int32 sets the status word; check_async_errors reports it.
  void encode_async(const float* features, std::size_t pixels, std::int32_t* codes,
                    cudaStream_t stream) {
    const std::size_t chunk = chunk_pixels();
    workspace_.reserve_discard(std::min(chunk, pixels) * hashes());
    for (std::size_t first = 0; first < pixels; first += chunk) {
      const std::size_t rows = std::min(chunk, pixels - first);
      project_async(features + first * dim(), rows, workspace_.data(), stream);
      const std::size_t count = rows * hashes();
      detail::quantize_kernel<detail::kThreads>
          <<<grid_size(count, detail::kThreads), detail::kThreads, 0, stream>>>(
              workspace_.data(), offsets_.data(), params_.bucket_width, hashes(), count,
              codes + first * hashes(), status_.get());
      AMQ_CUDA_CHECK_LAUNCH();
    }
  }

  /// Waits for `stream` and throws amq::Error if an earlier `_async` call met a code outside
  /// int32 (the codes of such a call are then unspecified).
  void check_async_errors(cudaStream_t stream) { status_.check(stream, "CUDA LSH encoder"); }

  /// Codes of every row of the host matrix `features` into the host matrix `codes` (P × G).
  void encode(MatrixView<const float> features, MatrixView<std::int32_t> codes) {
    check_shapes(features, codes.rows, codes.cols);
    DeviceBuffer<float> device_features(features.size());
    DeviceBuffer<std::int32_t> device_codes(codes.size());
    device_features.copy_from_host(features.data, features.size());
    encode_async(device_features.data(), features.rows, device_codes.data(), nullptr);
    check_async_errors(nullptr);
    device_codes.copy_to_host(codes.data, codes.size());
  }

  /// Codes of every row of the host matrix `features`, as a P × G row-major vector.
  std::vector<std::int32_t> encode(MatrixView<const float> features) {
    std::vector<std::int32_t> codes(features.rows * hashes());
    encode(features, MatrixView<std::int32_t>{codes.data(), features.rows, hashes()});
    return codes;
  }

  /// The projections w_k · x of every row of the host matrix `features`, P × G row-major.
  std::vector<float> project(MatrixView<const float> features) {
    check_shapes(features, features.rows, hashes());
    DeviceBuffer<float> device_features(features.size());
    DeviceBuffer<float> device_projected(features.rows * hashes());
    device_features.copy_from_host(features.data, features.size());
    project_async(device_features.data(), features.rows, device_projected.data(), nullptr);
    std::vector<float> projected(device_projected.size());
    device_projected.copy_to_host(projected.data(), projected.size());
    return projected;
  }

 private:
  // Runs before any device allocation, so that a machine without a GPU gets this message.
  static LshParams checked(const LshParams& params) {
    expect_device("amq::cuda::LshEncoder");
    AMQ_EXPECTS(
        params.dim <= INT_MAX && params.hashes <= INT_MAX,
        "cuBLAS sizes must fit in int, got D = " << params.dim << ", G = " << params.hashes);
    return params;
  }

  void check_shapes(MatrixView<const float> features, std::size_t code_rows,
                    std::size_t code_cols) const {
    AMQ_EXPECTS(features.cols == dim(), "feature matrix has "
                                            << features.cols
                                            << " channels, the encoder expects D = " << dim());
    AMQ_EXPECTS(code_rows == features.rows && code_cols == hashes(),
                "code matrix is " << code_rows << " x " << code_cols << ", expected "
                                  << features.rows << " x " << hashes() << " (P x G)");
    AMQ_EXPECTS(features.size() == 0 || features.data != nullptr,
                "feature matrix of " << features.rows << " rows has no data");
  }

  LshParams params_;
  DeviceBuffer<float> directions_;
  DeviceBuffer<float> offsets_;
  CublasHandle cublas_;
  DeviceBuffer<float> workspace_;
  DeviceStatus status_;
};

}  // namespace amq::cuda
