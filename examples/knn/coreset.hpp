/// @file coreset.hpp
/// @brief Greedy k-centre coreset selection of a memory bank, as PatchCore subsamples its
/// patch features before nearest-neighbour search.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/feature_map.hpp"

namespace amq::knn {

/// Parameters of the coreset selection.
struct CoresetParams {
  /// Fraction of the rows to keep, in (0, 1]; PatchCore's usual setting is 10 %.
  double ratio = 0.1;
  /// Channels of the Gaussian random projection the distances are measured in; 0 measures
  /// them on the features themselves. A projection to 128 keeps distances within a small
  /// factor (Johnson-Lindenstrauss) and makes each update cheaper when D is large.
  std::size_t projection_dim = 128;
  /// Seed of the projection and of the first centre.
  std::uint64_t seed = 0;
};

/// Greedy k-centre (farthest point) selection: starting from one seeded row, repeatedly
/// picks the row farthest from all rows picked so far. Its coverage radius is at most twice
/// the optimum (Gonzalez 1985) in the space the distances are measured in.
/// Returns max(1, round(ratio * rows)) distinct row indices in the order they were picked.
/// Cost: at most rows * selected distances of projection_dim channels (OpenMP across rows);
/// the triangle inequality skips the rows a new centre cannot be nearer to, and the skipped
/// share grows as the coverage radius shrinks.
std::vector<std::size_t> greedy_coreset(MatrixView<const float> features,
                                        const CoresetParams& params);

/// The coverage radius of a selection: the largest L2 distance from any row to its nearest
/// selected row (exact, on the features themselves).
double coverage_radius(MatrixView<const float> features, const std::vector<std::size_t>& selected);

}  // namespace amq::knn
