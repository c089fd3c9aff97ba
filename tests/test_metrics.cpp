#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "amq/metrics.hpp"

using amq::ScoreMapView;
using Labels = std::vector<std::uint8_t>;
using Scores = std::vector<float>;

namespace {

double eq7(const Scores& s, const Labels& l, std::size_t thresholds) {
  return amq::auroc_thresholds(s.data(), l.data(), s.size(), thresholds);
}

// Exact ROC AUC by counting every (anomalous, normal) pair.
double brute_auroc(const Scores& s, const Labels& l) {
  double wins = 0.0;
  double pairs = 0.0;
  for (std::size_t a = 0; a < s.size(); ++a) {
    for (std::size_t b = 0; b < s.size(); ++b) {
      if (l[a] != 1 || l[b] != 0) continue;
      wins += s[a] > s[b] ? 1.0 : s[a] == s[b] ? 0.5 : 0.0;
      pairs += 1.0;
    }
  }
  return wins / pairs;
}

// AU-PRO from its definition: regions by joining every pair of defect pixels of an image that
// are 8-neighbours (union-find over all pairs), then FPR and PRO recounted from scratch at every
// distinct score, then the curve clipped at max_fpr segment by segment.
double brute_au_pro(const std::vector<Scores>& scores, const std::vector<Labels>& masks,
                    const std::vector<std::size_t>& widths, double max_fpr) {
  std::vector<std::vector<std::size_t>> regions;  // per region: (map, pixel) packed
  std::vector<float> normal;
  std::vector<float> all;
  std::vector<std::vector<float>> region_scores;
  for (std::size_t m = 0; m < scores.size(); ++m) {
    const std::size_t n = scores[m].size();
    const auto w = static_cast<long>(widths[m]);
    std::vector<std::size_t> parent(n);
    std::iota(parent.begin(), parent.end(), 0);
    auto root = [&](std::size_t p) {
      while (parent[p] != p) p = parent[p];
      return p;
    };
    for (std::size_t p = 0; p < n; ++p) {
      for (std::size_t q = 0; q < n; ++q) {
        const long dx = long(p) % w - long(q) % w;
        const long dy = long(p) / w - long(q) / w;
        if (masks[m][p] && masks[m][q] && std::labs(dx) <= 1 && std::labs(dy) <= 1) {
          parent[root(p)] = root(q);
        }
      }
    }
    std::vector<long> slot(n, -1);
    for (std::size_t p = 0; p < n; ++p) {
      all.push_back(scores[m][p]);
      if (!masks[m][p]) {
        normal.push_back(scores[m][p]);
        continue;
      }
      long& s = slot[root(p)];
      if (s < 0) {
        s = long(region_scores.size());
        region_scores.emplace_back();
      }
      region_scores[std::size_t(s)].push_back(scores[m][p]);
    }
  }

  std::sort(all.begin(), all.end(), std::greater<float>());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  std::vector<double> fprs{0.0};
  std::vector<double> pros{0.0};
  for (const float t : all) {
    auto above = [t](const std::vector<float>& v) {
      return double(std::count_if(v.begin(), v.end(), [t](float s) { return s >= t; }));
    };
    double pro = 0.0;
    for (const auto& r : region_scores) pro += above(r) / double(r.size());
    fprs.push_back(above(normal) / double(normal.size()));
    pros.push_back(pro / double(region_scores.size()));
  }

  double area = 0.0;
  for (std::size_t k = 1; k < fprs.size(); ++k) {
    if (fprs[k - 1] >= max_fpr || fprs[k] == fprs[k - 1]) continue;
    const double x1 = std::min(fprs[k], max_fpr);
    const double y1 =
        pros[k - 1] + (pros[k] - pros[k - 1]) * (x1 - fprs[k - 1]) / (fprs[k] - fprs[k - 1]);
    area += (x1 - fprs[k - 1]) * (pros[k - 1] + y1) / 2.0;
  }
  return area / max_fpr;
}

}  // namespace

TEST_CASE("auroc matches sklearn.metrics.roc_auc_score on fixed cases") {
  // Expected values from Debian's sklearn 1.2.1:
  //   from sklearn.metrics import roc_auc_score as auc
  //   auc([0,1,1,0,1,0,0,1], [0.1,0.35,0.8,0.4,0.4,0.4,0.2,0.9])  # 0.8125
  //   auc([0,1,0,1], [0.5]*4)                                     # 0.5
  //   auc([0,0,1,1], [0.1,0.2,0.3,0.4])                           # 1.0
  //   auc([0,0,1,1], [0.4,0.3,0.2,0.1])                           # 0.0
  //   rng = np.random.RandomState(7)
  //   s = (rng.randint(0, 6, size=20) / 5).astype(np.float32); l = rng.randint(0, 2, size=20)
  //   auc(l, s)                                                   # 0.5700000000000001
  CHECK(amq::auroc({0.1f, 0.35f, 0.8f, 0.4f, 0.4f, 0.4f, 0.2f, 0.9f}, {0, 1, 1, 0, 1, 0, 0, 1}) ==
        doctest::Approx(0.8125).epsilon(1e-12));
  CHECK(amq::auroc({0.5f, 0.5f, 0.5f, 0.5f}, {0, 1, 0, 1}) == 0.5);
  CHECK(amq::auroc({0.1f, 0.2f, 0.3f, 0.4f}, {0, 0, 1, 1}) == 1.0);
  CHECK(amq::auroc({0.4f, 0.3f, 0.2f, 0.1f}, {0, 0, 1, 1}) == 0.0);

  const Scores s{0.8f, 0.2f, 0.6f, 0.6f, 0.8f, 0.2f, 0.0f, 0.2f, 0.4f, 0.4f,
                 0.0f, 0.8f, 0.0f, 0.8f, 0.0f, 0.6f, 0.4f, 0.6f, 0.8f, 0.8f};
  const Labels l{1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1};
  CHECK(amq::auroc(s, l) == doctest::Approx(0.57).epsilon(1e-12));
}

TEST_CASE("auroc equals pair counting on random samples with ties") {
  // Both signs, both zeros (equal, so tied), a subnormal and large magnitudes.
  const float values[] = {-1e20f, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-40f, 0.25f, 7.0f, 1e20f};
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    const std::size_t n = 2 + rng() % 60;
    Scores s(n);
    Labels l(n);
    for (std::size_t i = 0; i < n; ++i) {
      s[i] = values[rng() % 9];
      l[i] = std::uint8_t(rng() % 2);
    }
    l[0] = 0;
    l[1] = 1;
    CHECK(amq::auroc(s, l) == doctest::Approx(brute_auroc(s, l)).epsilon(1e-12));
  }
}

TEST_CASE("eq. 7 samples the ROC curve at evenly spaced thresholds") {
  // Thresholds 0, 0.5, 1 give the points (1,1), (2/3,1), (0,1/2), then (0,0): area 5/6.
  // The exact value is 4/6: 0.6 loses to 0.7 and 0.8, which eq. 7 sees in the same bin.
  const Scores s{0.0f, 0.6f, 0.7f, 0.8f, 1.0f};
  const Labels l{0, 1, 0, 0, 1};
  CHECK(eq7(s, l, 3) == doctest::Approx(5.0 / 6.0).epsilon(1e-12));
  CHECK(amq::auroc(s, l) == doctest::Approx(4.0 / 6.0).epsilon(1e-12));
  // With 100 thresholds every score has a bin of its own and eq. 7 is exact.
  CHECK(eq7(s, l, 100) == doctest::Approx(4.0 / 6.0).epsilon(1e-12));

  // Independent numpy version (same 20 samples as the sklearn case above):
  //   def eq7(s, l, T):
  //       s = np.asarray(s, np.float32).astype(np.float64); l = np.asarray(l)
  //       pts = [((s[l == 0] >= t).mean(), (s[l == 1] >= t).mean())
  //              for t in np.linspace(s.min(), s.max(), T)] + [(0.0, 0.0)]
  //       f, r = np.array(pts).T
  //       return -np.trapz(r, f)
  //   eq7(s, l, 4)    # 0.525
  //   eq7(s, l, 100)  # 0.5700000000000001
  const Scores s20{0.8f, 0.2f, 0.6f, 0.6f, 0.8f, 0.2f, 0.0f, 0.2f, 0.4f, 0.4f,
                   0.0f, 0.8f, 0.0f, 0.8f, 0.0f, 0.6f, 0.4f, 0.6f, 0.8f, 0.8f};
  const Labels l20{1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1};
  CHECK(eq7(s20, l20, 4) == doctest::Approx(0.525).epsilon(1e-12));
  CHECK(eq7(s20, l20, 100) == doctest::Approx(0.57).epsilon(1e-12));

  CHECK(eq7({0.5f, 0.5f, 0.5f}, {0, 1, 0}, 100) == 0.5);
  CHECK(eq7({0.1f, 0.2f, 0.3f, 0.4f}, {0, 0, 1, 1}, 100) == 1.0);
  CHECK(eq7({0.4f, 0.3f, 0.2f, 0.1f}, {0, 0, 1, 1}, 100) == 0.0);
}

TEST_CASE("metrics refuse bad input") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(amq::auroc(Scores{0.1f, 0.2f}, Labels{0, 1, 1}), amq::Error);
  CHECK_THROWS_AS(amq::auroc(Scores{0.1f, nan}, Labels{0, 1}), amq::Error);
  CHECK_THROWS_AS(amq::auroc(Scores{0.1f, inf}, Labels{0, 1}), amq::Error);
  CHECK_THROWS_AS(amq::auroc(Scores{0.1f, 0.2f}, Labels{1, 1}), amq::Error);
  CHECK_THROWS_AS(amq::auroc(Scores{0.1f, 0.2f}, Labels{0, 0}), amq::Error);
  CHECK_THROWS_AS(amq::auroc(Scores{}, Labels{}), amq::Error);
  CHECK_THROWS_WITH_AS(amq::auroc(Scores{0.1f, 0.2f}, Labels{0, 255}),
                       doctest::Contains("label 1 is 255"), amq::Error);
  CHECK_THROWS_AS(eq7({0.1f, 0.2f}, {0, 1}, 1), amq::Error);
  CHECK_THROWS_AS(eq7({0.1f, nan}, {0, 1}, 100), amq::Error);

  const float scores[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  const std::uint8_t good[4] = {0, 1, 0, 0};
  const std::uint8_t white[4] = {0, 255, 0, 0};
  const std::uint8_t none[4] = {0, 0, 0, 0};
  const std::uint8_t all[4] = {1, 1, 1, 1};
  const float bad[4] = {0.1f, nan, 0.3f, 0.4f};
  CHECK(amq::au_pro({{scores, good, 2, 2}}) >= 0.0);
  CHECK_THROWS_AS(amq::au_pro({}), amq::Error);
  CHECK_THROWS_WITH_AS(amq::au_pro({{scores, white, 2, 2}}), doctest::Contains("is 255"),
                       amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{scores, none, 2, 2}}), amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{scores, all, 2, 2}}), amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{bad, good, 2, 2}}), amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{scores, good, 0, 2}}), amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{nullptr, good, 2, 2}}), amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{scores, good, 2, 2}}, 0.0), amq::Error);
  CHECK_THROWS_AS(amq::au_pro({{scores, good, 2, 2}}, 1.5), amq::Error);
}

TEST_CASE("defect regions are 8-connected components") {
  // 1 1 0 0 1
  // 0 0 1 0 1
  // 1 0 0 0 0   -> {0,1,7} joined through the diagonal, {4,9}, {10}
  const Labels mask{1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0};
  std::vector<std::uint32_t> labels;
  REQUIRE(amq::detail::label_components(mask.data(), 5, 3, labels) == 3);
  CHECK(labels == std::vector<std::uint32_t>{1, 1, 0, 0, 2, 0, 0, 1, 0, 2, 3, 0, 0, 0, 0});
}

TEST_CASE("au_pro on hand-built score maps") {
  // Perfect maps: the curve rises to PRO 1 at FPR 0.
  const Labels mask{0, 1, 1, 0, 0, 0, 0, 0, 1};
  Scores perfect(mask.begin(), mask.end());
  CHECK(amq::au_pro({{perfect.data(), mask.data(), 3, 3}}) == doctest::Approx(1.0));

  // All scores equal: one point (1, 1), so the curve is the diagonal and the normalised area
  // up to max_fpr is max_fpr / 2 (tests the interpolation at max_fpr).
  const Scores flat(9, 0.25f);
  CHECK(amq::au_pro({{flat.data(), mask.data(), 3, 3}}) == doctest::Approx(0.15));
  CHECK(amq::au_pro({{flat.data(), mask.data(), 3, 3}}, 1.0) == doctest::Approx(0.5));

  // Two regions found at different thresholds, over two images of 4 x 3 (21 normal pixels).
  // Region A (2 pixels, image 0) scores 0.9, region B (1 pixel, image 1) scores 0.5, one
  // normal pixel scores 0.7, the rest 0.1. Points: (0,0) (0,1/2) (1/21,1/2) (1/21,1) (1,1).
  // Area up to 0.3: (1/21) · 1/2 + (0.3 − 1/21) · 1 = 0.3 − 0.5 / 21.
  const Labels mask_a{0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  const Labels mask_b{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const Scores score_a{0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.9f, 0.9f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
  const Scores score_b{0.7f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.5f};
  const std::vector<ScoreMapView> two{{score_a.data(), mask_a.data(), 4, 3},
                                      {score_b.data(), mask_b.data(), 4, 3}};
  CHECK(amq::au_pro(two) == doctest::Approx((0.3 - 0.5 / 21.0) / 0.3));
  // Up to FPR 0.025 only half of the first flat segment counts: PRO 1/2 throughout.
  CHECK(amq::au_pro(two, 0.025) == doctest::Approx(0.5));

  // A diagonal region D = {(0,0), (1,1)} scoring 0.9 and a single pixel S at (3,3) scoring 0.5;
  // one of 13 normal pixels scores 0.7. With 8-connectivity D is one region: PRO is 1/2 at
  // 0.9, FPR 1/13 at 0.7, PRO 1 at 0.5, so the area is 0.3 − 0.5 / 13. Splitting D in two
  // (4-connectivity) would give PRO 2/3 at 0.9 and the area 0.3 − (1/3) / 13.
  const Labels diag{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const Scores diag_scores{0.9f, 0.7f, 0.1f, 0.1f, 0.1f, 0.9f, 0.1f, 0.1f,
                           0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.5f};
  CHECK(amq::au_pro({{diag_scores.data(), diag.data(), 4, 4}}) ==
        doctest::Approx((0.3 - 0.5 / 13.0) / 0.3));

  // Reversed maps: every normal pixel outscores every defect pixel, so PRO is 0 up to FPR 1.
  Scores reversed(mask.size());
  for (std::size_t p = 0; p < mask.size(); ++p) reversed[p] = 1.0f - float(mask[p]);
  CHECK(amq::au_pro({{reversed.data(), mask.data(), 3, 3}}) == 0.0);
}

TEST_CASE("au_pro equals a brute-force evaluation on random maps") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<Scores> scores;
    std::vector<Labels> masks;
    std::vector<std::size_t> widths;
    std::vector<ScoreMapView> views;
    const std::size_t maps = 1 + rng() % 3;
    for (std::size_t m = 0; m < maps; ++m) {
      const std::size_t w = 2 + rng() % 6;
      const std::size_t h = 2 + rng() % 6;
      Scores s(w * h);
      Labels k(w * h);
      for (std::size_t p = 0; p < w * h; ++p) {
        s[p] = float(rng() % 9) / 8.0f - 0.5f;
        k[p] = std::uint8_t(rng() % 10 < 3);
      }
      k[0] = 0;  // at least one normal pixel and one region
      k[1] = 1;
      scores.push_back(std::move(s));
      masks.push_back(std::move(k));
      widths.push_back(w);
    }
    for (std::size_t m = 0; m < maps; ++m) {
      views.push_back({scores[m].data(), masks[m].data(), widths[m], scores[m].size() / widths[m]});
    }
    for (const double max_fpr : {0.05, 0.3, 1.0}) {
      CHECK(amq::au_pro(views, max_fpr) ==
            doctest::Approx(brute_au_pro(scores, masks, widths, max_fpr)).epsilon(1e-9));
    }
  }
}
