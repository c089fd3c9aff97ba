/// @file lsh_encoder.cuh
/// @brief The LSH encoder on a CUDA device: h_k(x) = floor((w_k · x + b_k) / ε) (the paper's
/// eq. 2) for every pixel and hash function, with w_k · x from one cuBLAS sgemm (dense
/// projection) or from sign flips and Walsh–Hadamard transforms in shared memory (structured
/// projection).
///
/// The projection is generated on the host by amq::LshEncoder and copied, so the same
/// parameters and seed give the same directions and offsets as on the CPU. The quantiser is
/// the CPU's own (device_logic.hpp). Codes may still differ from the CPU's where a projection
/// lies within rounding of a bucket edge: cuBLAS and the CPU BLAS sum the D products in
/// different orders, and |Δ(w_k · x)| <= γ_D · Σ_d |w_kd x_d| with γ_D = D·u / (1 − D·u),
/// u = 2^-24. Only codes that close to an edge can differ, and then by one. The structured
/// projection runs the CPU's butterflies in the CPU's stage order (device_logic.hpp), so its
/// projections, and hence its codes, equal the CPU's bit for bit.
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
#include "amq/structured_projection.hpp"

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

/// The structured projection of one pixel's block b (one thread block per (pixel, block)):
/// x padded to n in shared memory, three rounds of sign flips and Walsh–Hadamard stages, each
/// output scaled into w_k · x. Same operations in the same order as
/// StructuredProjection::project on the CPU.
template <unsigned Threads>
__global__ void __launch_bounds__(Threads)
    structured_project_kernel(const float* features, std::size_t dim, std::size_t padded,
                              std::size_t blocks, std::size_t hashes, const float* signs,
                              const float* scales, float* projected) {
  extern __shared__ float x[];
  const std::size_t pixel = blockIdx.x / blocks;
  const std::size_t block = blockIdx.x % blocks;
  const float* in = features + pixel * dim;
  for (std::size_t i = threadIdx.x; i < padded; i += Threads) x[i] = i < dim ? in[i] : 0.0f;
  for (std::size_t round = 0; round < 3; ++round) {
    const float* s = signs + (3 * block + round) * padded;
    __syncthreads();
    for (std::size_t i = threadIdx.x; i < padded; i += Threads) x[i] *= s[i];
    for (std::size_t h = 1; h < padded; h *= 2) {
      __syncthreads();
      for (std::size_t t = threadIdx.x; t < padded / 2; t += Threads) {
        walsh_hadamard_butterfly(x, t, h);
      }
    }
  }
  __syncthreads();
  const std::size_t first = block * padded;
  const std::size_t count = hashes - first < padded ? hashes - first : padded;
  float* out = projected + pixel * hashes + first;
  for (std::size_t k = threadIdx.x; k < count; k += Threads) out[k] = x[k] * scales[first + k];
}

}  // namespace detail

/// amq::LshEncoder on a CUDA device, for the dense Gaussian or the structured projection. Bulk
/// calls take device pointers and have `_async` twins on a caller's stream; the plain calls
/// take host matrices, wait, and throw amq::Error when a code is outside int32. The encoder
/// owns a projection workspace and a status word: use one encoder per concurrent stream.
class LshEncoder {
 public:
  /// Pixels projected per cuBLAS call: a bounded workspace (P × G floats) for any batch.
  static constexpr std::size_t kChunkValues = std::size_t{1} << 26;

  /// Largest padded dimension n of the structured projection: the n floats of a pixel's
  /// transform live in shared memory (32 KiB, within every device's default 48 KiB).
  static constexpr std::size_t kMaxStructuredPadded = 8192;

  /// Copies the projection (directions and offsets) of a host encoder to the current device.
  explicit LshEncoder(const amq::LshEncoder<DenseProjection>& host)
      : params_(checked(host.params())),
        directions_(host.directions().size()),
        offsets_(host.offsets().size()) {
    directions_.copy_from_host(host.directions().data(), host.directions().size());
    offsets_.copy_from_host(host.offsets().data(), host.offsets().size());
  }

  /// Copies the structured projection (signs, row scales, offsets) of a host encoder.
  explicit LshEncoder(const amq::LshEncoder<StructuredProjection>& host)
      : params_(checked(host.params())),
        offsets_(host.offsets().size()),
        signs_(host.projection().signs().size()),
        scales_(host.projection().scales().size()),
        padded_(host.projection().padded_dim()),
        blocks_(host.projection().blocks()) {
    AMQ_EXPECTS(padded_ <= kMaxStructuredPadded,
                "the CUDA structured projection needs D <= " << kMaxStructuredPadded
                                                             << ", got D = " << params_.dim);
    offsets_.copy_from_host(host.offsets().data(), host.offsets().size());
    signs_.copy_from_host(host.projection().signs().data(), signs_.size());
    scales_.copy_from_host(host.projection().scales().data(), scales_.size());
  }

  /// Generates the projection of `params` on the host (as amq::LshEncoder does) and copies it.
  explicit LshEncoder(const LshParams& params) : LshEncoder(amq::LshEncoder<>(params)) {}

  /// The parameters of the projection.
  const LshParams& params() const { return params_; }
  /// D, channels per feature vector.
  std::size_t dim() const { return params_.dim; }
  /// G, codes per feature vector.
  std::size_t hashes() const { return params_.hashes; }
  /// True for the structured projection, false for the dense one.
  bool structured() const { return padded_ != 0; }
  /// The offsets b_k in device memory, G values.
  const float* offsets() const { return offsets_.data(); }
  /// The status word the encoder's kernels report to.
  DeviceStatus& status() { return status_; }
  /// Largest number of pixels handled by one projection call.
  std::size_t chunk_pixels() const { return std::max<std::size_t>(1, kChunkValues / hashes()); }

  /// projected (P × G, device) = w_k · x for every row x of features (P × D, device), queued
  /// on `stream`. `pixels` must be at most INT_MAX.
  void project_async(const float* features, std::size_t pixels, float* projected,
                     cudaStream_t stream) {
    AMQ_EXPECTS(pixels <= INT_MAX, "cuBLAS sizes must fit in int, got P = " << pixels);
    if (pixels == 0) return;
    if (structured()) {
      detail::structured_project_kernel<detail::kThreads>
          <<<static_cast<unsigned>(pixels * blocks_), detail::kThreads, padded_ * sizeof(float),
             stream>>>(features, dim(), padded_, blocks_, hashes(), signs_.data(), scales_.data(),
                       projected);
      AMQ_CUDA_CHECK_LAUNCH();
      return;
    }
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
  DeviceBuffer<float> directions_;  // dense: G × D; empty for the structured projection
  DeviceBuffer<float> offsets_;
  DeviceBuffer<float> signs_;   // structured: 3 · blocks · n sign flips
  DeviceBuffer<float> scales_;  // structured: G row scales
  std::size_t padded_ = 0;      // structured: n; 0 for the dense projection
  std::size_t blocks_ = 0;      // structured: ⌈G / n⌉
  CublasHandle cublas_;
  DeviceBuffer<float> workspace_;
  DeviceStatus status_;
};

}  // namespace amq::cuda
