/// @file lsh_encoder.hpp
/// @brief Random-projection LSH: each feature vector x becomes G integer codes
/// h_k(x) = floor((w_k · x + b_k) / ε), k = 0 … G−1 (the paper's eq. 2), where w_k is a Gaussian
/// direction normalised to unit length, b_k is uniform in [0, ε) and ε is the bucket width.
///
/// Close vectors share most codes: for two vectors at distance c, the chance that a code
/// agrees falls monotonically with c/ε. The projection is drawn once on the host from
/// amq::Random, so the same parameters give the same codes with any compiler on any machine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "amq/config.hpp"
#include "amq/detail/quantize.hpp"
#include "amq/detail/sgemm.hpp"
#include "amq/error.hpp"
#include "amq/feature_map.hpp"
#include "amq/random.hpp"

namespace amq {

/// Parameters of the LSH encoder.
struct LshParams {
  std::size_t dim = 0;        ///< D, channels per feature vector.
  std::size_t hashes = 2048;  ///< G, hash functions (codes per feature vector).
  float bucket_width = 1.0f;  ///< ε, width of a quantisation bucket along each direction.
  std::uint64_t seed = 0;     ///< Seed of the projection (directions and offsets).
};

/// Projection policy of the paper: a dense G × D matrix of unit Gaussian directions, applied
/// to a batch of feature vectors by one BLAS sgemm.
class DenseProjection {
 public:
  /// Draws the G directions of `params` (validated by the encoder). Direction k comes from its
  /// own stream, derive_seed(derive_seed(seed, 0), k), so it is independent of thread count.
  explicit DenseProjection(const LshParams& params)
      : dim_(params.dim), hashes_(params.hashes), directions_(params.dim * params.hashes) {
    const std::uint64_t direction_seed = derive_seed(params.seed, 0);
    const auto rows = static_cast<std::int64_t>(hashes_);
#pragma omp parallel for schedule(static) if (dim_ * hashes_ >= (std::size_t{1} << 16))
    for (std::int64_t k = 0; k < rows; ++k) {
      draw_direction(derive_seed(direction_seed, static_cast<std::uint64_t>(k)),
                     directions_.data() + static_cast<std::size_t>(k) * dim_);
    }
  }

  /// The directions w_k, G × D row-major, each of unit Euclidean length.
  const std::vector<float>& directions() const { return directions_; }

  /// projected (P × G) = features (P × D) · directionsᵀ, by BLAS.
  void project(MatrixView<const float> features, MatrixView<float> projected) const {
    detail::project_sgemm(features, directions_.data(), projected);
  }

  /// w_k · x for one feature vector `x`, summed in double in index order: the reference the
  /// BLAS path is tested against.
  double project_reference(const float* x, std::size_t k) const {
    const float* w = directions_.data() + k * dim_;
    double sum = 0.0;
    for (std::size_t d = 0; d < dim_; ++d) {
      sum += static_cast<double>(w[d]) * static_cast<double>(x[d]);
    }
    return sum;
  }

 private:
  /// D Gaussians divided by their Euclidean norm, in double, rounded to float at the end.
  /// The squared norm is accumulated with explicit fused multiply-adds so that compilers
  /// which contract a·b + c and those which do not produce the same bits.
  void draw_direction(std::uint64_t seed, float* out) const {
    Random random(seed);
    std::vector<double> gaussians(dim_);
    double norm2 = 0.0;
    while (norm2 == 0.0) {  // all D values zero (chance below 2^-32) give no direction: redraw
      for (auto& g : gaussians) {
        g = random.gaussian();
        norm2 = std::fma(g, g, norm2);
      }
    }
    const double norm = std::sqrt(norm2);
    for (std::size_t d = 0; d < dim_; ++d) out[d] = static_cast<float>(gaussians[d] / norm);
  }

  std::size_t dim_;
  std::size_t hashes_;
  std::vector<float> directions_;
};

/// Turns feature vectors into LSH codes. `Projection` supplies w_k · x (DenseProjection is
/// the paper's); the encoder adds the offsets and quantises by the bucket width.
/// A Projection is constructible from LshParams and provides directions() (G × D floats),
/// project(features P × D, projected P × G) and project_reference(x, k) -> double.
/// All members are const after construction: encode may be called from several threads.
template <class Projection = DenseProjection>
class LshEncoder {
 public:
  /// Validates `params` (D > 0, G > 0 and below 2^32, ε finite and positive, G·D addressable)
  /// and draws the projection and the offsets b_k.
  explicit LshEncoder(const LshParams& params)
      : params_(validated(params)), projection_(params_), offsets_(draw_offsets(params_)) {}

  /// The parameters the encoder was built with.
  const LshParams& params() const { return params_; }
  /// D, channels per feature vector.
  std::size_t dim() const { return params_.dim; }
  /// G, codes per feature vector.
  std::size_t hashes() const { return params_.hashes; }
  /// The projection policy object (directions and the projection routine).
  const Projection& projection() const { return projection_; }
  /// The directions w_k, G × D row-major, unit length.
  const std::vector<float>& directions() const { return projection_.directions(); }
  /// The offsets b_k, G values uniform in [0, ε).
  const std::vector<float>& offsets() const { return offsets_; }

  /// Codes of every row of `features` (P × D) into `codes` (P × G). Throws amq::Error on a
  /// size mismatch, a non-finite feature, or a code outside int32. The GEMM runs on the
  /// BLAS library's threads; quantisation uses AVX2 where the processor has it.
  void encode(MatrixView<const float> features, MatrixView<std::int32_t> codes) const {
    check_shapes(features, codes);
    if (!all_finite(features)) detail::expect_finite(features, "feature matrix");

    const std::size_t g = hashes();
    const std::size_t chunk_rows = std::max<std::size_t>(1, kChunkValues / g);
    // Reused across calls on this thread: no page faults for a fresh buffer per feature map.
    thread_local std::vector<float> projected;
    projected.resize(std::min(chunk_rows, features.rows) * g);
    for (std::size_t first = 0; first < features.rows; first += chunk_rows) {
      const std::size_t rows = std::min(chunk_rows, features.rows - first);
      const MatrixView<const float> block{features.row(first), rows, features.cols};
      const MatrixView<float> block_projected{projected.data(), rows, g};
      projection_.project(block, block_projected);
      if (!quantize_block(block_projected, codes.row(first))) {
        report_out_of_range(block_projected, first);
      }
    }
  }

  /// Codes of every row of `features`, returned as a P × G row-major vector.
  std::vector<std::int32_t> encode(MatrixView<const float> features) const {
    AMQ_EXPECTS(features.rows <= std::numeric_limits<std::size_t>::max() / hashes(),
                "P x G codes overflow size_t: P = " << features.rows << ", G = " << hashes());
    std::vector<std::int32_t> codes(features.rows * hashes());
    encode(features, MatrixView<std::int32_t>{codes.data(), features.rows, hashes()});
    return codes;
  }

  /// The same codes by plain loops: w_k · x summed in double, rounded to float, then the
  /// scalar quantiser. No BLAS, no AVX2, no threads; tests compare encode against it.
  void encode_reference(MatrixView<const float> features, MatrixView<std::int32_t> codes) const {
    check_shapes(features, codes);
    detail::expect_finite(features, "feature matrix");
    for (std::size_t p = 0; p < features.rows; ++p) {
      for (std::size_t k = 0; k < hashes(); ++k) {
        const auto y = static_cast<float>(projection_.project_reference(features.row(p), k));
        AMQ_EXPECTS(detail::quantize_one(y, offsets_[k], params_.bucket_width, codes(p, k)),
                    "code of pixel " << p << ", hash " << k << " is outside int32: (w.x + b)/eps = "
                                     << (y + offsets_[k]) / params_.bucket_width);
      }
    }
  }

 private:
  /// Projected values held at once (per chunk of pixels): 16 MiB of floats, large enough
  /// for an efficient GEMM and small enough to stay bounded for any batch size.
  static constexpr std::size_t kChunkValues = std::size_t{1} << 22;

  static LshParams validated(const LshParams& params) {
    AMQ_EXPECTS(params.dim > 0, "feature dimension D must be positive, got " << params.dim);
    AMQ_EXPECTS(params.hashes > 0, "hash count G must be positive, got " << params.hashes);
    AMQ_EXPECTS(params.hashes <= std::numeric_limits<std::uint32_t>::max(),
                "hash count G must fit in 32 bits (it is part of each key), got " << params.hashes);
    AMQ_EXPECTS(std::isfinite(params.bucket_width) && params.bucket_width > 0.0f,
                "bucket width must be finite and positive, got " << params.bucket_width);
    AMQ_EXPECTS(
        params.dim <= std::numeric_limits<std::size_t>::max() / params.hashes / sizeof(float),
        "projection of G x D = " << params.hashes << " x " << params.dim
                                 << " floats overflows the address space");
    return params;
  }

  /// b_k = u_k · ε with u_k uniform on a 2^-53 grid in [0, 1), rounded to float; a value that
  /// rounds up to ε is replaced by the largest float below ε to keep b_k in [0, ε).
  static std::vector<float> draw_offsets(const LshParams& params) {
    Random random(derive_seed(params.seed, 1));
    const float width = params.bucket_width;
    std::vector<float> offsets(params.hashes);
    for (auto& b : offsets) {
      b = static_cast<float>(random.uniform_double() * static_cast<double>(width));
      if (b >= width) b = std::nextafter(width, 0.0f);
    }
    return offsets;
  }

  /// True when no feature is NaN or infinite: a float is finite unless its exponent bits
  /// are all ones. Integer tests vectorise, unlike std::isfinite, so this pre-check costs
  /// little; the slower scan that names the bad value runs only when it fails.
  static bool all_finite(MatrixView<const float> features) {
    std::uint32_t non_finite = 0;
    for (std::size_t i = 0; i < features.size(); ++i) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, features.data + i, sizeof bits);
      non_finite |= static_cast<std::uint32_t>((bits & 0x7f800000U) == 0x7f800000U);
    }
    return non_finite == 0;
  }

  void check_shapes(MatrixView<const float> features, MatrixView<std::int32_t> codes) const {
    AMQ_EXPECTS(features.cols == dim(), "feature matrix has "
                                            << features.cols
                                            << " channels, the encoder expects D = " << dim());
    AMQ_EXPECTS(codes.rows == features.rows && codes.cols == hashes(),
                "code matrix is " << codes.rows << " x " << codes.cols << ", expected "
                                  << features.rows << " x " << hashes() << " (P x G)");
    AMQ_EXPECTS(features.rows <= std::numeric_limits<std::size_t>::max() / hashes(),
                "P x G codes overflow size_t: P = " << features.rows << ", G = " << hashes());
    AMQ_EXPECTS(features.size() == 0 || (features.data != nullptr && codes.data != nullptr),
                "feature or code matrix of " << features.rows << " rows has no data");
  }

  /// Quantises a chunk of projected values; false if any code is out of range. This runs on
  /// the calling thread: it costs a few percent of the GEMM, and OpenMP threads started right
  /// after the BLAS call would compete with BLAS's own workers, which keep spinning for a
  /// while after a call (measured up to twice as slow on two cores).
  bool quantize_block(MatrixView<float> projected, std::int32_t* codes) const {
    const std::size_t g = hashes();
    bool in_range = true;
    for (std::size_t p = 0; p < projected.rows; ++p) {
      in_range &= detail::quantize_row(projected.row(p), offsets_.data(), params_.bucket_width, g,
                                       codes + p * g);
    }
    return in_range;
  }

  [[noreturn]] void report_out_of_range(MatrixView<float> projected, std::size_t first) const {
    for (std::size_t p = 0; p < projected.rows; ++p) {
      for (std::size_t k = 0; k < hashes(); ++k) {
        std::int32_t code = 0;
        if (!detail::quantize_one(projected(p, k), offsets_[k], params_.bucket_width, code)) {
          AMQ_FAIL("code of pixel " << first + p << ", hash " << k
                                    << " is outside int32: (w.x + b)/eps = "
                                    << (projected(p, k) + offsets_[k]) / params_.bucket_width
                                    << "; features or bucket width are out of scale");
        }
      }
    }
    AMQ_FAIL("a code is outside int32 but could not be located again");
  }

  LshParams params_;
  Projection projection_;
  std::vector<float> offsets_;
};

}  // namespace amq
