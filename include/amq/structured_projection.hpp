/// @file structured_projection.hpp
/// @brief StructuredProjection: a projection policy for LshEncoder that replaces the dense
/// G × D Gaussian matrix by random sign flips and fast Walsh–Hadamard transforms, so that the
/// G projections of a feature vector cost O(D log D) instead of O(D · G).
///
/// The feature vector x is zero-padded to n = the next power of two ≥ D. One block of n
/// projections is y = H D₃ H D₂ H D₁ x, with H the n × n Hadamard matrix (entries ±1) and Dᵢ
/// diagonal matrices of independent random signs; three rounds make each row of the product
/// behave like a random direction with near-Gaussian coordinates. When G > n, independent
/// blocks (their own signs) supply the rows n, 2n, …; the last block is truncated to G.
///
/// Normalisation: (H D₃ H D₂ H D₁) / n^{3/2} is orthogonal, so its rows have unit length over
/// all n columns, but x only meets the first D of them. Each row k is therefore divided by
/// the length of its first D entries: w_k is exactly a unit vector in the D-dimensional
/// feature space, as the paper's directions are, and the bucket width keeps its meaning.
///
/// directions() is the explicit G × D matrix of these unit rows, computed at construction
/// in exact integer arithmetic (entries of the unnormalised product are integers), so model
/// files, references and other backends see the same directions bit for bit on any machine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/config.hpp"
#include "amq/detail/walsh_hadamard.hpp"
#include "amq/error.hpp"
#include "amq/feature_map.hpp"
#include "amq/lsh_encoder.hpp"
#include "amq/random.hpp"

namespace amq {

/// Projection policy with O(D log D) work per feature vector: sign flips and three fast
/// Walsh–Hadamard transforms per block of n rows (see the file comment). Satisfies the
/// LshEncoder contract: LshEncoder<StructuredProjection>.
class StructuredProjection {
 public:
  /// Largest padded dimension n accepted: integer entries of the unnormalised product stay
  /// below n^{3/2} and the sum of squares of a row below n³ < 2^63.
  static constexpr std::size_t kMaxPadded = std::size_t{1} << 20;

  /// Draws the signs of every block and materialises the unit directions. The signs of block
  /// b come from the stream derive_seed(derive_seed(seed, 0), b); if a row of a block has no
  /// weight on the first D coordinates (possible only for very small D) the block redraws.
  explicit StructuredProjection(const LshParams& params)
      : dim_(params.dim),
        hashes_(params.hashes),
        padded_(padded_size(params.dim)),
        blocks_((params.hashes + padded_ - 1) / padded_),
        signs_(3 * blocks_ * padded_),
        scales_(params.hashes),
        directions_(params.hashes * params.dim) {
    const std::uint64_t direction_seed = derive_seed(params.seed, 0);
    for (std::size_t b = 0; b < blocks_; ++b) {
      Random random(derive_seed(direction_seed, b));
      do {
        draw_signs(random, b);
      } while (!materialize_block(b));
    }
  }

  /// n, the power of two the feature vectors are padded to.
  std::size_t padded_dim() const { return padded_; }
  /// Independent blocks of n rows, ⌈G / n⌉.
  std::size_t blocks() const { return blocks_; }
  /// The directions w_k, G × D row-major, each of unit Euclidean length (to float rounding).
  const std::vector<float>& directions() const { return directions_; }
  /// The sign flips D₁, D₂, D₃ of every block as ±1 floats, n each: block b, round r at
  /// (3b + r)·n. Round 0 is applied first.
  const std::vector<float>& signs() const { return signs_; }
  /// The factor of each row that maps the transform output to w_k · x, G values.
  const std::vector<float>& scales() const { return scales_; }

  /// projected (P × G) = w_k · x for every row x of `features` (P × D), by the transforms:
  /// OpenMP across rows, AVX2 butterflies when the processor has them and `allow_avx2` is set.
  /// Both paths give the same bits; they agree with directions() to float rounding.
  void project(MatrixView<const float> features, MatrixView<float> projected,
               bool allow_avx2 = true) const {
    AMQ_EXPECTS(
        features.cols == dim_ && projected.cols == hashes_ && projected.rows == features.rows,
        "structured projection of " << features.rows << " x " << features.cols << " features into "
                                    << projected.rows << " x " << projected.cols
                                    << ", expected D = " << dim_ << " and G = " << hashes_);
    const auto rows = static_cast<std::ptrdiff_t>(features.rows);
#pragma omp parallel if (rows * static_cast <std::ptrdiff_t>(blocks_ * padded_) >= (1 << 16))
    {
      std::vector<float> buffer(padded_);
#pragma omp for schedule(static)
      for (std::ptrdiff_t p = 0; p < rows; ++p) {
        project_row(features.row(static_cast<std::size_t>(p)),
                    projected.row(static_cast<std::size_t>(p)), buffer.data(), allow_avx2);
      }
    }
  }

  /// w_k · x for one feature vector `x`, summed in double in index order over directions():
  /// the reference the transform path is tested against.
  double project_reference(const float* x, std::size_t k) const {
    const float* w = directions_.data() + k * dim_;
    double sum = 0.0;
    for (std::size_t d = 0; d < dim_; ++d) {
      sum += static_cast<double>(w[d]) * static_cast<double>(x[d]);
    }
    return sum;
  }

 private:
  static std::size_t padded_size(std::size_t dim) {
    AMQ_EXPECTS(dim > 0 && dim <= kMaxPadded,
                "structured projection needs 0 < D <= " << kMaxPadded << ", got D = " << dim);
    std::size_t n = 1;
    while (n < dim) n *= 2;
    return n;
  }

  const float* signs(std::size_t block, std::size_t round) const {
    return signs_.data() + (3 * block + round) * padded_;
  }

  void draw_signs(Random& random, std::size_t block) {
    float* out = signs_.data() + 3 * block * padded_;
    std::uint64_t bits = 0;
    for (std::size_t i = 0; i < 3 * padded_; ++i) {
      if (i % 64 == 0) bits = random.next_u64();
      out[i] = (bits >> (i % 64)) & 1U ? -1.0f : 1.0f;
    }
  }

  /// Rows of block b, exactly: row k of H D₃ H D₂ H D₁ is (D₁ H D₂ H D₃ H e_k)ᵀ since H and
  /// the Dᵢ are symmetric. Integer entries, so the row lengths are exact; returns false when
  /// a row has no weight on the first D coordinates.
  bool materialize_block(std::size_t block) {
    const std::size_t first = block * padded_;
    const std::size_t count = std::min(padded_, hashes_ - first);
    const auto rows = static_cast<std::ptrdiff_t>(count);
    bool all_nonzero = true;
#pragma omp parallel if (count * padded_ >= (std::size_t{1} << 16)) reduction(&& : all_nonzero)
    {
      std::vector<std::int64_t> row(padded_);
#pragma omp for schedule(static)
      for (std::ptrdiff_t k = 0; k < rows; ++k) {
        std::fill(row.begin(), row.end(), 0);
        row[static_cast<std::size_t>(k)] = 1;
        for (std::size_t round = 3; round-- > 0;) {
          detail::walsh_hadamard_scalar(row.data(), padded_);
          const float* s = signs(block, round);
          for (std::size_t i = 0; i < padded_; ++i) row[i] = s[i] < 0.0f ? -row[i] : row[i];
        }
        all_nonzero = all_nonzero && store_row(first + static_cast<std::size_t>(k), row);
      }
    }
    return all_nonzero;
  }

  /// Stores direction g = row[0..D) / |row[0..D)| and the factor that maps the unnormalised
  /// transform output to w_g · x.
  bool store_row(std::size_t g, const std::vector<std::int64_t>& row) {
    std::int64_t norm2 = 0;
    for (std::size_t d = 0; d < dim_; ++d) norm2 += row[d] * row[d];
    if (norm2 == 0) return false;
    const double inverse = 1.0 / std::sqrt(static_cast<double>(norm2));
    scales_[g] = static_cast<float>(inverse);
    float* w = directions_.data() + g * dim_;
    for (std::size_t d = 0; d < dim_; ++d) w[d] = static_cast<float>(row[d] * inverse);
    return true;
  }

  void project_row(const float* x, float* out, float* buffer, bool allow_avx2) const {
    for (std::size_t b = 0; b < blocks_; ++b) {
      std::copy(x, x + dim_, buffer);
      std::fill(buffer + dim_, buffer + padded_, 0.0f);
      for (std::size_t round = 0; round < 3; ++round) {
        detail::signed_walsh_hadamard(buffer, signs(b, round), padded_, allow_avx2);
      }
      const std::size_t first = b * padded_;
      const std::size_t count = std::min(padded_, hashes_ - first);
      for (std::size_t k = 0; k < count; ++k) out[first + k] = buffer[k] * scales_[first + k];
    }
  }

  std::size_t dim_;
  std::size_t hashes_;
  std::size_t padded_;
  std::size_t blocks_;
  std::vector<float> signs_;       // per block, D₁, D₂, D₃ as ±1 floats, n each
  std::vector<float> scales_;      // 1 / |row_k restricted to D|, G values
  std::vector<float> directions_;  // G × D unit rows
};

}  // namespace amq
