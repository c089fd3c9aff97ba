/// @file metrics.hpp
/// @brief Evaluation of anomaly scores: exact ROC AUC, the paper's thresholded ROC AUC (eq. 7)
/// and the MVTec AD AU-PRO.
///
/// Labels and masks hold 0 (normal) or 1 (anomalous / defect); any other value throws, so that a
/// 0/255 mask read from a PNG is binarised by the caller rather than silently misread. Scores
/// must be finite. Every metric sorts the scores once by an LSD radix sort on order-preserving
/// 32-bit keys (at most 4 linear passes, so tens of millions of pixels take seconds) and then
/// sweeps them; at peak it holds about 8 bytes per sample (keys and the sort buffer), 16 per
/// defect pixel for AU-PRO. The functions keep no state and are safe to call concurrently.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/detail/connected_components.hpp"
#include "amq/detail/radix_sort.hpp"
#include "amq/error.hpp"

namespace amq {

namespace detail {

/// The scores of a labelled sample as score_key()s, split by class and sorted ascending.
struct ClassKeys {
  std::vector<std::uint32_t> normal;
  std::vector<std::uint32_t> anomalous;
};

/// Validates a labelled sample and returns its keys split by class, each sorted ascending.
inline ClassKeys sorted_class_keys(const float* scores, const std::uint8_t* labels, std::size_t n) {
  AMQ_EXPECTS(n == 0 || (scores != nullptr && labels != nullptr),
              "scores or labels is a null pointer for " << n << " samples");
  std::size_t anomalous_count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    AMQ_EXPECTS(std::isfinite(scores[i]), "score " << i << " is not finite (" << scores[i] << ")");
    AMQ_EXPECTS(labels[i] <= 1,
                "label " << i << " is " << int(labels[i]) << "; labels must be 0 or 1");
    anomalous_count += labels[i];
  }
  AMQ_EXPECTS(anomalous_count > 0 && anomalous_count < n,
              "ROC AUC needs both classes, got " << n - anomalous_count << " normal and "
                                                 << anomalous_count << " anomalous samples");

  ClassKeys split;
  split.normal.reserve(n - anomalous_count);
  split.anomalous.reserve(anomalous_count);
  for (std::size_t i = 0; i < n; ++i) {
    (labels[i] != 0 ? split.anomalous : split.normal).push_back(score_key(scores[i]));
  }
  radix_sort(split.normal, 0);
  radix_sort(split.anomalous, 0);
  return split;
}

/// How many of the ascending `sorted` keys belong to scores >= `threshold`.
inline std::size_t count_at_or_above(const std::vector<std::uint32_t>& sorted, double threshold) {
  const auto first =
      std::lower_bound(sorted.begin(), sorted.end(), threshold,
                       [](std::uint32_t key, double t) { return double(key_score(key)) < t; });
  return static_cast<std::size_t>(sorted.end() - first);
}

}  // namespace detail

/// Exact ROC AUC: the probability that an anomalous sample scores above a normal one, ties
/// counted as one half (the Mann–Whitney statistic; equal to sklearn.metrics.roc_auc_score).
/// `labels`: 0 = normal, 1 = anomalous. Throws amq::Error for a non-finite score, a label other
/// than 0 or 1, or a sample with only one class.
inline double auroc(const float* scores, const std::uint8_t* labels, std::size_t n) {
  const detail::ClassKeys split = detail::sorted_class_keys(scores, labels, n);
  const std::vector<std::uint32_t>& normal = split.normal;

  // For each anomalous score a: 2 × (#normal < a) + (#normal == a), summed as an integer so
  // that the only rounding is the final division.
  std::uint64_t twice_wins = 0;
  std::size_t below = 0;    // normal scores < a
  std::size_t at_most = 0;  // normal scores <= a
  for (const std::uint32_t a : split.anomalous) {
    while (below < normal.size() && normal[below] < a) ++below;
    at_most = std::max(at_most, below);
    while (at_most < normal.size() && normal[at_most] <= a) ++at_most;
    twice_wins += below + at_most;
  }
  return static_cast<double>(twice_wins) /
         (2.0 * static_cast<double>(split.anomalous.size()) * static_cast<double>(normal.size()));
}

/// Exact ROC AUC of two equally long vectors; see the pointer overload.
inline double auroc(const std::vector<float>& scores, const std::vector<std::uint8_t>& labels) {
  AMQ_EXPECTS(scores.size() == labels.size(),
              "auroc: " << scores.size() << " scores but " << labels.size() << " labels");
  return auroc(scores.data(), labels.data(), scores.size());
}

/// ROC AUC as the paper's eq. 7 computes it: the ROC curve sampled at `thresholds` evenly
/// spaced thresholds t_i = min + i (max − min) / (thresholds − 1), i = 0 … thresholds − 1,
/// between the smallest and largest score, and integrated by the trapezoid rule.
/// A sample counts as anomalous at t_i when its score is >= t_i, so t_0 = min gives the point
/// (FPR, TPR) = (1, 1); the curve is closed with the point (0, 0) of a threshold above max.
/// t_{thresholds−1} = max keeps the top-scoring samples, so the last segment runs from their
/// point to (0, 0). When all scores are equal the result is 0.5. Between two neighbouring
/// thresholds the curve is a straight line, so an anomalous and a normal score that fall between
/// the same two thresholds count as half a win whichever is larger: the value can differ from
/// auroc(), and equals it when no such pair exists.
/// Throws as auroc() does, and for fewer than 2 thresholds.
inline double auroc_thresholds(const float* scores, const std::uint8_t* labels, std::size_t n,
                               std::size_t thresholds = 100) {
  AMQ_EXPECTS(thresholds >= 2, "eq. 7 needs at least 2 thresholds, got " << thresholds);
  const detail::ClassKeys split = detail::sorted_class_keys(scores, labels, n);
  const double lo = detail::key_score(std::min(split.normal.front(), split.anomalous.front()));
  const double hi = detail::key_score(std::max(split.normal.back(), split.anomalous.back()));
  const double normal_count = static_cast<double>(split.normal.size());
  const double anomalous_count = static_cast<double>(split.anomalous.size());

  // From the highest threshold down, so that FPR grows along the curve, starting at (0, 0).
  double area = 0.0;
  double fpr = 0.0;
  double tpr = 0.0;
  for (std::size_t i = thresholds; i-- > 0;) {
    const double t = i == 0                ? lo
                     : i == thresholds - 1 ? hi
                                           : lo + (hi - lo) * (double(i) / double(thresholds - 1));
    const double next_fpr = double(detail::count_at_or_above(split.normal, t)) / normal_count;
    const double next_tpr = double(detail::count_at_or_above(split.anomalous, t)) / anomalous_count;
    area += (next_fpr - fpr) * (next_tpr + tpr) / 2.0;
    fpr = next_fpr;
    tpr = next_tpr;
  }
  return area;
}

/// A score map and its ground-truth mask, both row-major `width` × `height`, owned elsewhere.
/// `mask` holds 0 for a normal pixel and 1 for a defect pixel.
struct ScoreMapView {
  const float* scores = nullptr;       ///< per-pixel anomaly scores
  const std::uint8_t* mask = nullptr;  ///< per-pixel ground truth, 0 or 1
  std::size_t width = 0;               ///< pixels per row
  std::size_t height = 0;              ///< rows
};

/// Area under the per-region-overlap (PRO) curve up to `max_fpr`, divided by `max_fpr`, as the
/// MVTec AD evaluation defines it. Defect regions are the 8-connected components of each mask.
/// At a threshold t (a pixel is anomalous when its score is >= t), PRO is the mean over all
/// regions of all maps of the fraction of the region's pixels that are anomalous, and FPR is the
/// fraction of all normal pixels of all maps that are anomalous.
/// The curve is exact: one point per distinct score (all pixels sorted once, then swept from
/// the highest score down), starting at (0, 0) and ending at (1, 1). It is integrated by the
/// trapezoid rule up to FPR = max_fpr, with PRO interpolated linearly at max_fpr.
/// Throws amq::Error for an empty list, an empty or null map, a non-finite score, a mask value
/// other than 0 or 1, no normal pixel or no defect region at all, or max_fpr outside (0, 1].
inline double au_pro(const std::vector<ScoreMapView>& maps, double max_fpr = 0.3) {
  AMQ_EXPECTS(max_fpr > 0.0 && max_fpr <= 1.0,
              "au_pro: max_fpr must lie in (0, 1], got " << max_fpr);
  AMQ_EXPECTS(!maps.empty(), "au_pro: no score maps");

  // Normal pixels as score keys; defect pixels as (score key << 32 | global region index).
  std::vector<std::uint32_t> normal;
  std::vector<std::uint64_t> defect;
  std::vector<double> region_weight;  // 1 / region size: one region pixel's share of its PRO
  std::vector<std::uint32_t> labels;
  for (std::size_t m = 0; m < maps.size(); ++m) {
    const ScoreMapView& map = maps[m];
    AMQ_EXPECTS(map.width == 0 || map.height <= SIZE_MAX / map.width,
                "au_pro: score map " << m << " of " << map.width << " x " << map.height
                                     << " pixels overflows the address space");
    const std::size_t pixels = map.width * map.height;
    AMQ_EXPECTS(pixels > 0 && map.scores != nullptr && map.mask != nullptr,
                "au_pro: score map " << m << " is empty or null (" << map.width << " x "
                                     << map.height << ")");
    for (std::size_t p = 0; p < pixels; ++p) {
      AMQ_EXPECTS(std::isfinite(map.scores[p]), "au_pro: score map " << m << " pixel " << p
                                                                     << " is not finite ("
                                                                     << map.scores[p] << ")");
      AMQ_EXPECTS(map.mask[p] <= 1, "au_pro: mask " << m << " pixel " << p << " is "
                                                    << int(map.mask[p])
                                                    << "; masks must hold 0 or 1");
    }

    const std::size_t first_region = region_weight.size();
    region_weight.resize(first_region +
                         detail::label_components(map.mask, map.width, map.height, labels));
    for (std::size_t p = 0; p < pixels; ++p) {
      if (labels[p] == 0) {
        normal.push_back(detail::score_key(map.scores[p]));
      } else {
        const std::size_t region = first_region + labels[p] - 1;
        defect.push_back(std::uint64_t{detail::score_key(map.scores[p])} << 32 | region);
        region_weight[region] += 1.0;
      }
    }
  }
  AMQ_EXPECTS(!normal.empty() && !region_weight.empty(),
              "au_pro needs normal pixels and defect regions, got "
                  << normal.size() << " normal pixels and " << region_weight.size() << " regions");
  for (double& w : region_weight) w = 1.0 / w;

  detail::radix_sort(normal, 0);
  detail::radix_sort(defect, 32);

  // Sweep the distinct scores from high to low, i.e. the sorted keys from the back; each
  // score adds a point (FPR, PRO). i and j count the pixels not yet swept.
  const double normal_count = static_cast<double>(normal.size());
  const double region_count = static_cast<double>(region_weight.size());
  std::size_t i = normal.size();
  std::size_t j = defect.size();
  double false_positives = 0.0;
  double overlap_sum = 0.0;
  double fpr = 0.0;
  double pro = 0.0;
  double area = 0.0;
  while (i > 0 || j > 0) {
    std::uint32_t t = i > 0 ? normal[i - 1] : 0;
    if (j > 0) t = std::max(t, std::uint32_t(defect[j - 1] >> 32));
    for (; i > 0 && normal[i - 1] == t; --i) false_positives += 1.0;
    for (; j > 0 && std::uint32_t(defect[j - 1] >> 32) == t; --j) {
      overlap_sum += region_weight[defect[j - 1] & 0xffffffffu];
    }

    const double next_fpr = false_positives / normal_count;
    const double next_pro = overlap_sum / region_count;
    if (next_fpr >= max_fpr) {  // fpr < max_fpr here, so the segment is not vertical
      const double pro_at_max = pro + (next_pro - pro) * (max_fpr - fpr) / (next_fpr - fpr);
      area += (max_fpr - fpr) * (pro + pro_at_max) / 2.0;
      break;
    }
    area += (next_fpr - fpr) * (pro + next_pro) / 2.0;
    fpr = next_fpr;
    pro = next_pro;
  }
  return area / max_fpr;
}

}  // namespace amq
