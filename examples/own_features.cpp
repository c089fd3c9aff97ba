// Using amq with your own feature source: any code that fills a W × H × D float array per
// image (pixel by pixel, channels contiguous) can train and query an AmqScorer. No LibTorch.
//
// The "network" here is a stand-in: the images show a texture of four kinds of patch, and
// every pixel's feature vector is its patch kind's prototype plus a little noise. The test
// image carries a square defect whose features belong to none of the four kinds; its pixels
// should score high and the rest low.
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "amq/amq.hpp"

namespace {

constexpr std::size_t width = 16;
constexpr std::size_t height = 16;
constexpr std::size_t depth = 32;

// Prototype feature vectors: four normal patch kinds and one foreign kind for the defect.
std::vector<std::vector<float>> make_prototypes(std::mt19937& random) {
  std::normal_distribution<float> gaussian(0.0f, 1.0f);
  std::vector<std::vector<float>> prototypes(5, std::vector<float>(depth));
  for (auto& prototype : prototypes) {
    for (float& value : prototype) value = gaussian(random);
  }
  return prototypes;
}

// One feature map; `defect` replaces a 4 × 4 square by the foreign kind.
std::vector<float> make_features(const std::vector<std::vector<float>>& prototypes,
                                 std::mt19937& random, bool defect) {
  std::normal_distribution<float> noise(0.0f, 0.03f);
  std::vector<float> map(width * height * depth);
  for (std::size_t y = 0; y < height; ++y) {
    for (std::size_t x = 0; x < width; ++x) {
      const bool foreign = defect && x >= 6 && x < 10 && y >= 6 && y < 10;
      const std::vector<float>& kind = prototypes[foreign ? 4 : (x / 2 + y / 2) % 4];
      float* pixel = map.data() + (y * width + x) * depth;
      for (std::size_t c = 0; c < depth; ++c) pixel[c] = kind[c] + noise(random);
    }
  }
  return map;
}

}  // namespace

int main() {
  std::mt19937 random(5);
  const std::vector<std::vector<float>> prototypes = make_prototypes(random);

  // Training: feature maps of normal images, as plain arrays viewed by amq::FeatureMap.
  std::vector<std::vector<float>> normal;
  for (int i = 0; i < 20; ++i) normal.push_back(make_features(prototypes, random, false));
  std::vector<amq::FeatureMap> maps;
  for (const std::vector<float>& map : normal) maps.push_back({map.data(), width, height, depth});

  amq::ScorerParams params;
  params.lsh.dim = depth;           // D must equal the feature depth
  params.lsh.hashes = 256;          // G codes per pixel
  params.lsh.bucket_width = 0.25f;  // ε: wider buckets forgive more feature noise
  params.lsh.seed = 1;
  params.sizing = amq::SizingRule::target_fpr;  // size the filter by distinct keys
  params.target_fpr = 1e-4;

  try {
    amq::AmqScorer<> scorer(params);
    const amq::SizingReport& report = scorer.fit(maps);
    std::printf("trained on %llu maps: %llu keys, %llu distinct, filter of %llu bits\n",
                static_cast<unsigned long long>(report.images),
                static_cast<unsigned long long>(report.total_keys),
                static_cast<unsigned long long>(report.distinct_keys),
                static_cast<unsigned long long>(report.bits));

    // Scoring: one value per feature pixel, 1 − (fraction of its codes found in the filter).
    const std::vector<float> normal_test = make_features(prototypes, random, false);
    const std::vector<float> defective_test = make_features(prototypes, random, true);
    for (const auto* test : {&normal_test, &defective_test}) {
      const std::vector<float> scores = scorer.score({test->data(), width, height, depth});
      std::printf("\n%s image, image score %.3f; score map (x10, 9 = all codes unseen):\n",
                  test == &normal_test ? "normal" : "defective", scorer.image_score(scores.data()));
      for (std::size_t y = 0; y < height; ++y) {
        for (std::size_t x = 0; x < width; ++x) {
          std::printf("%d", std::min(9, static_cast<int>(scores[y * width + x] * 10.0f)));
        }
        std::printf("\n");
      }
    }
  } catch (const amq::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
