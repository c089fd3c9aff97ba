// A consumer of the amq package: fits a scorer on random normal feature maps and checks that a
// shifted map scores higher than a fresh normal one. Exits non-zero otherwise.
#include <cstdio>
#include <random>
#include <vector>

#include <amq/amq.hpp>

int main() {
  constexpr std::size_t width = 8, height = 8, depth = 16;
  std::mt19937 random(1);
  std::normal_distribution<float> gaussian(0.0f, 0.1f);
  auto make_map = [&](float shift) {
    std::vector<float> map(width * height * depth);
    for (float& value : map) value = shift + gaussian(random);
    return map;
  };

  std::vector<std::vector<float>> normal;
  for (int i = 0; i < 10; ++i) normal.push_back(make_map(0.0f));
  std::vector<amq::FeatureMap> maps;
  for (const auto& map : normal) maps.push_back({map.data(), width, height, depth});

  amq::ScorerParams params;
  params.lsh.dim = depth;
  params.lsh.hashes = 64;
  params.lsh.bucket_width = 0.5f;
  params.sizing = amq::SizingRule::target_fpr;
  amq::AmqScorer<> scorer(params);
  scorer.fit(maps);

  const std::vector<float> inlier = make_map(0.0f), outlier = make_map(1.0f);
  const auto mean_score = [&](const std::vector<float>& map) {
    const std::vector<float> scores = scorer.score({map.data(), width, height, depth});
    double sum = 0.0;
    for (float s : scores) sum += s;
    return sum / static_cast<double>(scores.size());
  };
  const double normal_score = mean_score(inlier), anomalous_score = mean_score(outlier);
  std::printf("amq consumer: normal %.3f, anomalous %.3f\n", normal_score, anomalous_score);
  return anomalous_score > normal_score ? 0 : 1;
}
