#include "knn/coreset.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "amq/error.hpp"

namespace amq::knn {
namespace {

/// splitmix64: a small, portable generator, so the same seed gives the same coreset with
/// every standard library.
std::uint64_t next_random(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double next_uniform(std::uint64_t& state) {
  return (static_cast<double>(next_random(state) >> 11) + 0.5) * 0x1.0p-53;
}

/// A D x p matrix of N(0, 1/p) entries (Box-Muller), so that squared distances are kept in
/// expectation.
std::vector<float> gaussian_projection(std::size_t depth, std::size_t dim, std::uint64_t seed) {
  std::vector<float> projection(depth * dim);
  std::uint64_t state = seed ^ 0x636F726573657431ULL;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  const double two_pi = 6.283185307179586;
  for (std::size_t i = 0; i < projection.size(); i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(next_uniform(state)));
    const double angle = two_pi * next_uniform(state);
    projection[i] = static_cast<float>(scale * radius * std::cos(angle));
    if (i + 1 < projection.size()) {
      projection[i + 1] = static_cast<float>(scale * radius * std::sin(angle));
    }
  }
  return projection;
}

/// Squared L2 distance with eight independent sums, so the compiler can keep them in vector
/// lanes without reassociating a single sum.
float squared_distance(const float* a, const float* b, std::size_t n) {
  float sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) {
      const float d = a[i + j] - b[i + j];
      sums[j] += d * d;
    }
  }
  float total = 0;
  for (; i < n; ++i) total += (a[i] - b[i]) * (a[i] - b[i]);
  for (float s : sums) total += s;
  return total;
}

}  // namespace

std::vector<std::size_t> greedy_coreset(MatrixView<const float> features,
                                        const CoresetParams& params) {
  AMQ_EXPECTS(
      features.rows > 0 && features.cols > 0,
      "coreset needs a non-empty feature matrix, got " << features.rows << " x " << features.cols);
  AMQ_EXPECTS(params.ratio > 0.0 && params.ratio <= 1.0,
              "coreset ratio must lie in (0, 1], got " << params.ratio);
  const std::size_t rows = features.rows;
  const std::size_t wanted = std::max<std::size_t>(
      1, static_cast<std::size_t>(std::llround(params.ratio * static_cast<double>(rows))));

  // Distances are measured in the projected space when a projection is asked for.
  std::vector<float> projected;
  const float* points = features.data;
  std::size_t dim = features.cols;
  if (params.projection_dim > 0) {
    dim = params.projection_dim;
    const std::vector<float> projection = gaussian_projection(features.cols, dim, params.seed);
    projected.resize(rows * dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(dim), static_cast<int>(features.cols), 1.0f, features.data,
                static_cast<int>(features.cols), projection.data(), static_cast<int>(dim), 0.0f,
                projected.data(), static_cast<int>(dim));
    points = projected.data();
  }

  // nearest[r]: squared distance from row r to its nearest centre, owner[r]: that centre's
  // position in `selected`, gap[j]: squared distance from the newest centre to centre j.
  std::vector<float> nearest(rows, std::numeric_limits<float>::infinity());
  std::vector<std::uint32_t> owner(rows, 0);
  std::vector<char> picked(rows, 0);
  std::vector<float> gap;
  std::vector<std::size_t> selected;
  selected.reserve(wanted);
  std::uint64_t state = params.seed;
  std::size_t centre = static_cast<std::size_t>(next_random(state) % rows);

  const auto count = static_cast<std::ptrdiff_t>(rows);
  while (true) {
    selected.push_back(centre);
    picked[centre] = 1;
    if (selected.size() == wanted) break;

    const auto newest = static_cast<std::uint32_t>(selected.size() - 1);
    const float* c = points + centre * dim;
    gap.resize(newest);
    float best = -1.0f;
    std::size_t best_row = 0;
#pragma omp parallel
    {
#pragma omp for schedule(static)
      for (std::ptrdiff_t j = 0; j < static_cast<std::ptrdiff_t>(newest); ++j) {
        gap[static_cast<std::size_t>(j)] =
            squared_distance(points + selected[static_cast<std::size_t>(j)] * dim, c, dim);
      }

      // One pass over the rows: shrink each row's distance to its nearest centre, then take
      // the farthest row not yet picked. By the triangle inequality the newest centre c can
      // only be nearer to r than r's owner o when |c - o| < 2 |r - o|, so the other rows are
      // skipped without reading their features (a small margin covers rounding). Ties go to
      // the lower index so the result does not depend on the thread count.
      float local_best = -1.0f;
      std::size_t local_row = 0;
#pragma omp for schedule(static)
      for (std::ptrdiff_t i = 0; i < count; ++i) {
        const auto r = static_cast<std::size_t>(i);
        if (newest == 0 || gap[owner[r]] < 4.004f * nearest[r]) {
          const float d = squared_distance(points + r * dim, c, dim);
          if (d < nearest[r]) {
            nearest[r] = d;
            owner[r] = newest;
          }
        }
        if (!picked[r] && nearest[r] > local_best) {
          local_best = nearest[r];
          local_row = r;
        }
      }
#pragma omp critical
      if (local_best > best || (local_best == best && local_row < best_row)) {
        best = local_best;
        best_row = local_row;
      }
    }
    centre = best_row;
  }
  return selected;
}

double coverage_radius(MatrixView<const float> features, const std::vector<std::size_t>& selected) {
  AMQ_EXPECTS(!selected.empty(), "coverage radius needs at least one selected row");
  for (std::size_t s : selected) {
    AMQ_EXPECTS(s < features.rows, "selected row " << s << " is outside the " << features.rows
                                                   << " rows of the feature matrix");
  }
  double radius = 0.0;
  const auto count = static_cast<std::ptrdiff_t>(features.rows);
#pragma omp parallel for reduction(max : radius) schedule(static)
  for (std::ptrdiff_t i = 0; i < count; ++i) {
    float nearest = std::numeric_limits<float>::infinity();
    for (std::size_t s : selected) {
      nearest = std::min(nearest, squared_distance(features.row(static_cast<std::size_t>(i)),
                                                   features.row(s), features.cols));
    }
    radius = std::max(radius, std::sqrt(static_cast<double>(nearest)));
  }
  return radius;
}

}  // namespace amq::knn
