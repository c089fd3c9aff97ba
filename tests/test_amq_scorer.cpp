#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <omp.h>

#include "amq/amq.hpp"

namespace {

constexpr std::size_t kWidth = 6;
constexpr std::size_t kHeight = 5;
constexpr std::size_t kDepth = 16;

// Normal pixels lie near one of a few cluster centres; outliers are drawn far from all of them.
struct Clusters {
  std::vector<std::vector<float>> centres;

  explicit Clusters(std::mt19937& rng, std::size_t count = 4) {
    std::normal_distribution<float> normal(0.0f, 4.0f);
    for (std::size_t c = 0; c < count; ++c) {
      std::vector<float> centre(kDepth);
      for (float& v : centre) v = normal(rng);
      centres.push_back(centre);
    }
  }

  // A W × H × D map whose pixels are cluster members, except the pixels listed in `outliers`.
  std::vector<float> map(std::mt19937& rng, const std::vector<std::size_t>& outliers = {}) const {
    std::normal_distribution<float> jitter(0.0f, 0.05f);
    std::normal_distribution<float> far(0.0f, 20.0f);
    std::uniform_int_distribution<std::size_t> pick(0, centres.size() - 1);
    std::vector<float> data(kWidth * kHeight * kDepth);
    for (std::size_t p = 0; p < kWidth * kHeight; ++p) {
      const bool outlier = std::find(outliers.begin(), outliers.end(), p) != outliers.end();
      const std::vector<float>& centre = centres[pick(rng)];
      for (std::size_t d = 0; d < kDepth; ++d) {
        data[p * kDepth + d] = outlier ? far(rng) : centre[d] + jitter(rng);
      }
    }
    return data;
  }
};

amq::FeatureMap view(const std::vector<float>& data, std::size_t depth = kDepth) {
  return {data.data(), kWidth, kHeight, depth};
}

amq::ScorerParams small_params() {
  amq::ScorerParams params;
  params.lsh.dim = kDepth;
  params.lsh.hashes = 64;
  params.lsh.bucket_width = 1.0f;
  params.lsh.seed = 7;
  params.filter_bits = std::uint64_t{1} << 18;
  return params;
}

std::vector<std::vector<float>> normal_maps(const Clusters& clusters, std::mt19937& rng,
                                            std::size_t count) {
  std::vector<std::vector<float>> maps;
  for (std::size_t i = 0; i < count; ++i) maps.push_back(clusters.map(rng));
  return maps;
}

std::vector<amq::FeatureMap> views(const std::vector<std::vector<float>>& maps) {
  std::vector<amq::FeatureMap> out;
  for (const auto& m : maps) out.push_back(view(m));
  return out;
}

}  // namespace

TEST_CASE("outlier pixels and images score above normal ones") {
  std::mt19937 rng(1);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 20);

  for (const amq::SizingRule rule : {amq::SizingRule::paper, amq::SizingRule::target_fpr}) {
    CAPTURE(amq::to_string(rule));
    amq::ScorerParams params = small_params();
    params.sizing = rule;
    amq::AmqScorer<> scorer(params);
    scorer.fit(views(train));

    const std::vector<std::size_t> outliers = {3, 17, 29};
    const std::vector<float> test = clusters.map(rng, outliers);
    const std::vector<float> scores = scorer.score(view(test));
    REQUIRE(scores.size() == kWidth * kHeight);
    float worst_inlier = 0.0f;
    float best_outlier = 1.0f;
    for (std::size_t p = 0; p < scores.size(); ++p) {
      CHECK(scores[p] >= 0.0f);
      CHECK(scores[p] <= 1.0f);
      const bool outlier = std::find(outliers.begin(), outliers.end(), p) != outliers.end();
      if (outlier) {
        best_outlier = std::min(best_outlier, scores[p]);
      } else {
        worst_inlier = std::max(worst_inlier, scores[p]);
      }
    }
    CHECK(best_outlier > worst_inlier);
    CHECK(best_outlier > 0.5f);

    const std::vector<float> normal_test = clusters.map(rng);
    const float normal_image = scorer.image_score(scorer.score(view(normal_test)).data(), 224, 224);
    const float anomalous_image = scorer.image_score(scores.data(), 224, 224);
    CHECK(anomalous_image > normal_image);
  }
}

TEST_CASE("a pixel's score is the fraction of its keys missing from the filter (eq. 6)") {
  std::mt19937 rng(2);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 5);
  amq::AmqScorer<> scorer(small_params());
  scorer.fit(views(train));

  const std::vector<float> test = clusters.map(rng, {0, 1, 2});
  const std::vector<float> scores = scorer.score(view(test));
  const std::vector<std::int32_t> codes = scorer.encoder().encode(view(test).matrix());
  const std::size_t g = scorer.encoder().hashes();
  for (std::size_t p = 0; p < kWidth * kHeight; ++p) {
    std::size_t found = 0;
    for (std::size_t k = 0; k < g; ++k) {
      found +=
          scorer.filter().contains(amq::make_key(static_cast<std::uint32_t>(k), codes[p * g + k]));
    }
    CHECK(scores[p] == doctest::Approx(1.0 - static_cast<double>(found) / g));
  }
  // Training pixels are never false negatives of a Bloom filter: their scores are exactly 0.
  for (const float s : scorer.score(view(train[0]))) CHECK(s == 0.0f);
}

TEST_CASE("fit equals collect + build; add equals fitting the union with the same M and B") {
  std::mt19937 rng(3);
  const Clusters clusters(rng, 6);
  const auto first = normal_maps(clusters, rng, 6);
  const auto second = normal_maps(clusters, rng, 4);
  amq::ScorerParams params = small_params();
  params.probes = 3;

  amq::AmqScorer<> fitted(params);
  fitted.fit(views(first));
  amq::AmqScorer<> streamed(params);
  for (const auto& m : first) streamed.collect(view(m));
  streamed.build();
  CHECK(fitted.filter().words() == streamed.filter().words());
  CHECK(fitted.sizing().distinct_keys == streamed.sizing().distinct_keys);

  for (const auto& m : second) fitted.add(view(m));
  auto all = first;
  all.insert(all.end(), second.begin(), second.end());
  amq::AmqScorer<> united(params);
  united.fit(views(all));
  CHECK(fitted.filter().words() == united.filter().words());
  CHECK(fitted.sizing().images == 10);
  CHECK(fitted.sizing().total_keys == united.sizing().total_keys);
  CHECK(fitted.sizing().estimated_fpr == doctest::Approx(united.sizing().estimated_fpr));

  // Without the second maps the filter differs, so the comparison above is not vacuous.
  amq::AmqScorer<> partial(params);
  partial.fit(views(first));
  CHECK(partial.filter().words() != united.filter().words());
}

TEST_CASE("the sizing report follows eq. 5 and the distinct-key rule") {
  std::mt19937 rng(4);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 3);
  amq::ScorerParams params = small_params();
  params.filter_bits = 20000;
  amq::AmqScorer<> scorer(params);
  const amq::SizingReport& report = scorer.fit(views(train));

  // N·W·H·G = 3 · 6 · 5 · 64 = 5760 keys; B = round(20000 / 5760 · ln 2) = round(2.41) = 2.
  CHECK(report.images == 3);
  CHECK(report.width == kWidth);
  CHECK(report.height == kHeight);
  CHECK(report.hashes == 64);
  CHECK(report.total_keys == 5760);
  CHECK(report.paper_bits == 20000);
  CHECK(report.paper_probes == 2);
  CHECK(report.chosen == amq::SizingRule::paper);
  CHECK(report.bits == 20000);
  CHECK(report.probes == 2);

  // Distinct keys: count them by hand from the codes.
  std::vector<std::uint64_t> keys;
  for (const auto& m : train) {
    const std::vector<std::int32_t> codes = scorer.encoder().encode(view(m).matrix());
    for (std::size_t i = 0; i < codes.size(); ++i) {
      keys.push_back(amq::make_key(static_cast<std::uint32_t>(i % 64), codes[i]));
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  CHECK(report.distinct_keys == keys.size());
  CHECK(report.distinct_keys < report.total_keys);

  const amq::BloomParams by_fpr =
      amq::size_for_fpr<amq::ClassicBloom>(keys.size(), params.target_fpr, params.filter_seed);
  CHECK(report.fpr_bits == by_fpr.bits);
  CHECK(report.fpr_probes == by_fpr.probes);
  CHECK(report.estimated_fpr == doctest::Approx(scorer.filter().estimated_fpr()));
  CHECK(report.estimated_fpr > 0.0);

  amq::ScorerParams fpr_params = params;
  fpr_params.sizing = amq::SizingRule::target_fpr;
  amq::AmqScorer<> by_distinct(fpr_params);
  const amq::SizingReport& fpr_report = by_distinct.fit(views(train));
  CHECK(fpr_report.chosen == amq::SizingRule::target_fpr);
  CHECK(fpr_report.bits == by_fpr.bits);
  CHECK(fpr_report.probes == by_fpr.probes);
  CHECK(fpr_report.paper_probes == 2);
}

TEST_CASE("scores from four threads at once equal scores from one") {
  std::mt19937 rng(5);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 8);
  amq::AmqScorer<> scorer(small_params());
  scorer.fit(views(train));

  std::vector<std::vector<float>> tests;
  for (std::size_t i = 0; i < 8; ++i) tests.push_back(clusters.map(rng, {i, 2 * i + 1}));
  std::vector<std::vector<float>> serial;
  for (const auto& t : tests) serial.push_back(scorer.score(view(t)));

  std::vector<std::vector<std::vector<float>>> threaded(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        threaded[t].clear();
        for (const auto& test : tests) threaded[t].push_back(scorer.score(view(test)));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : threaded) CHECK(result == serial);

  CHECK(scorer.score(views(tests)) == serial);
}

TEST_CASE("feature maps of the wrong size or depth are refused") {
  std::mt19937 rng(6);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 2);
  amq::AmqScorer<> scorer(small_params());

  std::vector<float> shallow(kWidth * kHeight * 12, 0.0f);
  CHECK_THROWS_WITH_AS(scorer.collect(view(shallow, 12)),
                       doctest::Contains("depth D = 12 differs from the model's D = 16"),
                       amq::Error);
  CHECK_THROWS_WITH_AS(scorer.add(view(train[0])), doctest::Contains("add needs a built filter"),
                       amq::Error);
  CHECK_THROWS_AS(scorer.score(view(train[0])), amq::Error);

  scorer.fit(views(train));
  CHECK_THROWS_WITH_AS(scorer.score(view(shallow, 12)),
                       doctest::Contains("depth D = 12 differs from the model's D = 16"),
                       amq::Error);
  const std::vector<float> wide(7 * kHeight * kDepth, 0.0f);
  CHECK_THROWS_WITH_AS(scorer.score(amq::FeatureMap{wide.data(), 7, kHeight, kDepth}),
                       doctest::Contains("7 x 5 pixels, the model's maps are 6 x 5"), amq::Error);
  CHECK_THROWS_WITH_AS(scorer.collect(view(train[0])), doctest::Contains("collect after build"),
                       amq::Error);

  // A non-finite feature in a bulk call is an error, not a crash inside the parallel loop.
  std::vector<float> broken = train[1];
  broken[5] = std::nanf("");
  CHECK_THROWS_WITH_AS(scorer.score(std::vector<amq::FeatureMap>{view(train[0]), view(broken)}),
                       doctest::Contains("non-finite"), amq::Error);
}

TEST_CASE("fit checks every map before collecting any") {
  std::mt19937 rng(8);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 2);
  amq::AmqScorer<> scorer(small_params());
  const std::vector<float> wide(7 * kHeight * kDepth, 0.0f);
  CHECK_THROWS_WITH_AS(
      scorer.fit({view(train[0]), amq::FeatureMap{wide.data(), 7, kHeight, kDepth}}),
      doctest::Contains("7 x 5 pixels among maps of 6 x 5"), amq::Error);
  CHECK(scorer.sizing().images == 0);
  scorer.fit(views(train));
  CHECK(scorer.sizing().images == 2);
}

TEST_CASE("bad parameters are refused") {
  amq::ScorerParams params = small_params();
  params.sizing = amq::SizingRule::target_fpr;
  params.target_fpr = std::nan("");
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>{params}, doctest::Contains("target false-positive"),
                       amq::Error);
  params = small_params();
  params.filter_bits = 0;
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>{params}, doctest::Contains("filter_bits M > 0"),
                       amq::Error);
  amq::AmqScorer<> empty(small_params());
  CHECK_THROWS_WITH_AS(empty.build(), doctest::Contains("at least one"), amq::Error);
}

TEST_CASE("the split-block policy scores like the classic one") {
  std::mt19937 rng(7);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 10);
  amq::ScorerParams params = small_params();
  params.sizing = amq::SizingRule::target_fpr;
  amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>> scorer(params);
  scorer.fit(views(train));

  const std::vector<std::size_t> outliers = {0, 10, 20};
  const std::vector<float> scores = scorer.score(view(clusters.map(rng, outliers)));
  for (std::size_t p = 0; p < scores.size(); ++p) {
    const bool outlier = std::find(outliers.begin(), outliers.end(), p) != outliers.end();
    CHECK((outlier ? scores[p] > 0.5f : scores[p] < 0.1f));
  }
}

TEST_CASE_TEMPLATE("bulk scores from four threads at once are the bytes of one thread", Scorer,
                   amq::AmqScorer<>,
                   amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>>) {
  std::mt19937 rng(9);
  const Clusters clusters(rng);
  const auto train = normal_maps(clusters, rng, 8);
  amq::ScorerParams params = small_params();
  params.sizing = amq::SizingRule::target_fpr;
  Scorer scorer(params);
  scorer.fit(views(train));

  std::vector<std::vector<float>> tests;
  for (std::size_t i = 0; i < 12; ++i) tests.push_back(clusters.map(rng, {i, 29 - i}));
  const std::vector<amq::FeatureMap> maps = views(tests);

  // The reference: one OpenMP thread, one map at a time.
  const int threads_before = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<std::vector<float>> serial;
  for (const auto& map : maps) serial.push_back(scorer.score(map));
  omp_set_num_threads(threads_before);

  const auto same_bytes = [&](const std::vector<std::vector<float>>& result) {
    if (result.size() != serial.size()) return false;
    for (std::size_t i = 0; i < serial.size(); ++i) {
      if (result[i].size() != serial[i].size() ||
          std::memcmp(result[i].data(), serial[i].data(), serial[i].size() * sizeof(float)) != 0) {
        return false;
      }
    }
    return true;
  };
  std::vector<std::vector<std::vector<float>>> threaded(4);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) threaded[t] = scorer.score(maps);
    });
  }
  for (auto& worker : workers) worker.join();
  for (const auto& result : threaded) CHECK(same_bytes(result));
  CHECK(same_bytes(scorer.score(maps)));
}
