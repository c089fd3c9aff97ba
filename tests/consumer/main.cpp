// A consumer of the amq package: fits the paper's scorer and the fast configuration of the
// README (structured projection, split-block filter, K = 4) on random normal feature maps and
// checks that a shifted map scores higher than a fresh normal one. Exits non-zero otherwise.
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
  amq::AmqScorer<> paper(params);
  paper.fit(maps);
  params.codes_per_key = 4;
  amq::AmqScorer<amq::LshEncoder<amq::StructuredProjection>,
                 amq::BloomFilter<amq::SplitBlockBloom>>
      fast(params);
  fast.fit(maps);

  const std::vector<float> inlier = make_map(0.0f), outlier = make_map(1.0f);
  const auto mean_score = [&](const auto& scorer, const std::vector<float>& map) {
    const std::vector<float> scores = scorer.score({map.data(), width, height, depth});
    double sum = 0.0;
    for (float s : scores) sum += s;
    return sum / static_cast<double>(scores.size());
  };
  const auto ranks_outlier_higher = [&](const char* name, const auto& scorer) {
    const double normal_score = mean_score(scorer, inlier);
    const double anomalous_score = mean_score(scorer, outlier);
    std::printf("amq consumer, %s: normal %.3f, anomalous %.3f\n", name, normal_score,
                anomalous_score);
    return anomalous_score > normal_score;
  };
  const bool paper_ranks = ranks_outlier_higher("paper", paper);
  const bool fast_ranks = ranks_outlier_higher("fast", fast);
  return paper_ranks && fast_ranks ? 0 : 1;
}
