#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "amq/error.hpp"
#include "knn/coreset.hpp"
#include "knn/knn_scorer.hpp"

using amq::FeatureMap;
using amq::knn::IndexKind;
using amq::knn::KnnParams;
using amq::knn::KnnScorer;

namespace {

constexpr std::size_t kSide = 20;  // feature maps of 20 x 20 pixels

/// Owns the features of several W x H x D maps and hands out FeatureMap views of them.
struct MapSet {
  std::size_t width = kSide;
  std::size_t height = kSide;
  std::size_t depth = 0;
  std::vector<float> data;

  std::size_t count() const { return data.size() / (width * height * depth); }
  FeatureMap map(std::size_t i) const {
    return {data.data() + i * width * height * depth, width, height, depth};
  }
  std::vector<FeatureMap> maps() const {
    std::vector<FeatureMap> out;
    for (std::size_t i = 0; i < count(); ++i) out.push_back(map(i));
    return out;
  }
};

MapSet gaussian_maps(std::size_t maps, std::size_t depth, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  MapSet set;
  set.depth = depth;
  set.data.resize(maps * kSide * kSide * depth);
  for (float& v : set.data) v = normal(rng);
  return set;
}

/// Features drawn around `centres` cluster centres (spread 10) with unit noise: the shape of
/// real patch features, where normal pixels crowd around a limited set of appearances.
struct Clusters {
  std::size_t depth;
  std::vector<float> centres;
  std::mt19937 rng;

  Clusters(std::size_t count, std::size_t d, std::uint32_t seed) : depth(d), rng(seed) {
    std::normal_distribution<float> normal(0.0f, 10.0f);
    centres.resize(count * d);
    for (float& v : centres) v = normal(rng);
  }
  MapSet maps(std::size_t n, float noise) {
    std::normal_distribution<float> normal(0.0f, noise);
    std::uniform_int_distribution<std::size_t> pick(0, centres.size() / depth - 1);
    MapSet set;
    set.depth = depth;
    set.data.resize(n * kSide * kSide * depth);
    for (std::size_t p = 0; p < set.data.size() / depth; ++p) {
      const float* c = centres.data() + pick(rng) * depth;
      for (std::size_t j = 0; j < depth; ++j) set.data[p * depth + j] = c[j] + normal(rng);
    }
    return set;
  }
};

/// The exact nearest-neighbour distance of every pixel of `query` to the pixels of `train`.
std::vector<double> brute_force(const MapSet& train, const FeatureMap& query) {
  const std::size_t d = train.depth;
  const std::size_t rows = train.data.size() / d;
  std::vector<double> out(query.pixels());
  for (std::size_t q = 0; q < query.pixels(); ++q) {
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t r = 0; r < rows; ++r) {
      double sum = 0.0;
      for (std::size_t j = 0; j < d; ++j) {
        const double diff = double{query.data[q * d + j]} - train.data[r * d + j];
        sum += diff * diff;
      }
      best = std::min(best, sum);
    }
    out[q] = std::sqrt(best);
  }
  return out;
}

KnnParams small_params(IndexKind kind) {
  KnnParams p;
  p.index = kind;
  p.nlist = 32;
  p.pq_m = 16;     // 2 channels per sub-quantiser
  p.pq_nbits = 6;  // 64 centroids per sub-space: trains on a few thousand rows
  p.nprobe = 8;
  return p;
}

/// A file name in the temporary directory, unique to this process.
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("amq_knn_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("flat scores equal the brute-force nearest-neighbour distance") {
  const MapSet train = gaussian_maps(4, 24, 1);
  const MapSet test = gaussian_maps(1, 24, 2);
  KnnScorer scorer(small_params(IndexKind::flat));
  scorer.fit(train.maps());
  REQUIRE(scorer.size() == 4 * kSide * kSide);
  REQUIRE(scorer.collected() == 0);

  const std::vector<float> scores = scorer.score(test.map(0));
  const std::vector<double> exact = brute_force(train, test.map(0));
  REQUIRE(scores.size() == exact.size());
  for (std::size_t i = 0; i < exact.size(); ++i) {
    CHECK(scores[i] == doctest::Approx(exact[i]).epsilon(1e-4));
  }
  // PatchCore's image score is the largest pixel score; the mean is the other rule.
  CHECK(scorer.image_score(scores.data()) == *std::max_element(scores.begin(), scores.end()));
  KnnParams mean_params = small_params(IndexKind::flat);
  mean_params.image_score = amq::ImageScore::mean;
  KnnScorer mean_scorer(mean_params);
  mean_scorer.fit(train.maps());
  double sum = 0.0;
  for (double e : exact) sum += e;
  CHECK(mean_scorer.image_score(scores.data()) ==
        doctest::Approx(sum / static_cast<double>(exact.size())).epsilon(1e-4));
}

TEST_CASE("a training pixel scores zero and add() extends the memory bank") {
  const MapSet train = gaussian_maps(2, 16, 3);
  const MapSet extra = gaussian_maps(1, 16, 4);
  KnnScorer scorer(small_params(IndexKind::flat));
  scorer.fit({train.map(0)});
  // Faiss expands ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y, so zero comes back as rounding
  // noise of the norms (about 16 here), well under the distances between other pixels.
  CHECK(scorer.score(train.map(0))[7] < 0.01f);
  CHECK(scorer.score(extra.map(0))[7] > 1.0f);
  scorer.add(extra.map(0));
  CHECK(scorer.size() == 2 * kSide * kSide);
  CHECK(scorer.score(extra.map(0))[7] < 0.01f);
}

TEST_CASE("HNSW finds the exact nearest neighbour for most pixels of clustered data") {
  Clusters clusters(64, 32, 5);
  const MapSet train = clusters.maps(8, 1.0f);
  const MapSet test = clusters.maps(1, 1.0f);
  KnnScorer exact(small_params(IndexKind::flat));
  exact.fit(train.maps());
  KnnScorer hnsw(small_params(IndexKind::hnsw));
  hnsw.fit(train.maps());

  const std::vector<float> truth = exact.score(test.map(0));
  const std::vector<float> found = hnsw.score(test.map(0));
  std::size_t hits = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    CHECK(found[i] >= truth[i] * (1.0f - 1e-4f));  // never nearer than the true neighbour
    if (found[i] <= truth[i] * (1.0f + 1e-4f)) ++hits;
  }
  const double recall = static_cast<double>(hits) / static_cast<double>(truth.size());
  MESSAGE("HNSW recall@1 = " << recall);
  CHECK(recall >= 0.95);
}

TEST_CASE("IVFPQ scores follow the exact scores on clustered data") {
  Clusters clusters(64, 32, 6);
  const MapSet train = clusters.maps(8, 1.0f);
  // Half of the test pixels are normal, half lie 1 to 8 units further out, so that the
  // exact scores spread and the approximation has an order to keep.
  MapSet test = clusters.maps(1, 1.0f);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t p = 0; p < test.data.size() / 32; p += 2) {
    const float shift = 1.0f + 7.0f * static_cast<float>(p) / static_cast<float>(kSide * kSide);
    for (std::size_t j = 0; j < 32; ++j) test.data[p * 32 + j] += shift * normal(rng) / 5.6f;
  }
  KnnScorer exact(small_params(IndexKind::flat));
  exact.fit(train.maps());
  KnnScorer ivfpq(small_params(IndexKind::ivfpq));
  ivfpq.fit(train.maps());
  CHECK(ivfpq.index_bytes() < exact.index_bytes() / 4);  // 12-byte codes, not 128 bytes

  const std::vector<float> truth = exact.score(test.map(0));
  const std::vector<float> approx = ivfpq.score(test.map(0));
  double mean_t = 0, mean_a = 0, rel_error = 0;
  const auto n = static_cast<double>(truth.size());
  for (std::size_t i = 0; i < truth.size(); ++i) {
    mean_t += truth[i] / n;
    mean_a += approx[i] / n;
    rel_error += std::abs(approx[i] - truth[i]) / truth[i] / n;
  }
  double cov = 0, var_t = 0, var_a = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    cov += (truth[i] - mean_t) * (approx[i] - mean_a);
    var_t += (truth[i] - mean_t) * (truth[i] - mean_t);
    var_a += (approx[i] - mean_a) * (approx[i] - mean_a);
  }
  const double correlation = cov / std::sqrt(var_t * var_a);
  MESSAGE("IVFPQ vs exact: correlation " << correlation << ", mean relative error " << rel_error);
  CHECK(correlation >= 0.8);
  CHECK(rel_error <= 0.25);
}

TEST_CASE("outlier pixels score above every normal pixel with each index") {
  for (IndexKind kind : {IndexKind::flat, IndexKind::hnsw, IndexKind::ivfpq}) {
    CAPTURE(amq::knn::to_string(kind));
    Clusters clusters(32, 32, 8);
    const MapSet train = clusters.maps(8, 1.0f);
    MapSet test = clusters.maps(1, 1.0f);
    const MapSet clean = test;
    // Every tenth pixel is moved far from all clusters.
    std::mt19937 rng(9);
    std::normal_distribution<float> normal(0.0f, 10.0f);
    for (std::size_t p = 0; p < kSide * kSide; p += 10) {
      for (std::size_t j = 0; j < 32; ++j) test.data[p * 32 + j] += normal(rng);
    }
    KnnScorer scorer(small_params(kind));
    scorer.fit(train.maps());
    const std::vector<float> scores = scorer.score(test.map(0));
    float lowest_outlier = std::numeric_limits<float>::infinity();
    float highest_inlier = 0.0f;
    for (std::size_t p = 0; p < scores.size(); ++p) {
      if (p % 10 == 0) {
        lowest_outlier = std::min(lowest_outlier, scores[p]);
      } else {
        highest_inlier = std::max(highest_inlier, scores[p]);
      }
    }
    CHECK(lowest_outlier > highest_inlier);
    const std::vector<float> clean_scores = scorer.score(clean.map(0));
    CHECK(scorer.image_score(scores.data()) > scorer.image_score(clean_scores.data()));
  }
}

TEST_CASE("save then load gives identical scores, through a stream and a file") {
  Clusters clusters(32, 32, 10);
  const MapSet train = clusters.maps(8, 1.0f);
  const MapSet test = clusters.maps(1, 2.0f);
  for (IndexKind kind : {IndexKind::flat, IndexKind::hnsw, IndexKind::ivfpq}) {
    CAPTURE(amq::knn::to_string(kind));
    KnnParams params = small_params(kind);
    params.image_score = amq::ImageScore::mean;
    KnnScorer scorer(params);
    scorer.fit(train.maps());
    const std::vector<float> before = scorer.score(test.map(0));

    std::stringstream stream;
    scorer.save(stream);
    const KnnScorer from_stream = KnnScorer::load(stream);
    CHECK(from_stream.score(test.map(0)) == before);
    CHECK(from_stream.params().image_score == amq::ImageScore::mean);
    CHECK(from_stream.params().index == kind);
    CHECK(from_stream.size() == scorer.size());
    CHECK(from_stream.width() == kSide);
    CHECK(from_stream.index_bytes() == scorer.index_bytes());

    const std::string path = temp_path("model_" + amq::knn::to_string(kind) + ".knn");
    scorer.save(path);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    const KnnScorer from_file = KnnScorer::load(path);
    CHECK(from_file.score(test.map(0)) == before);
    std::filesystem::remove(path);
  }
}

TEST_CASE("a corrupt or truncated model file is refused with the reason") {
  const MapSet train = gaussian_maps(2, 16, 11);
  KnnScorer scorer(small_params(IndexKind::hnsw));
  scorer.fit(train.maps());
  std::stringstream stream;
  scorer.save(stream);
  const std::string good = stream.str();
  const auto load = [](const std::string& bytes) {
    std::istringstream in(bytes);
    return KnnScorer::load(in);
  };
  REQUIRE_NOTHROW(load(good));

  std::string flipped = good;
  flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x10);
  CHECK_THROWS_WITH_AS(load(flipped), doctest::Contains("checksum"), amq::Error);

  CHECK_THROWS_WITH_AS(load(good.substr(0, good.size() - 3)), doctest::Contains("truncated"),
                       amq::Error);
  CHECK_THROWS_WITH_AS(load(good.substr(0, 20)), doctest::Contains("truncated"), amq::Error);

  std::string magic = good;
  magic[0] = 'X';
  CHECK_THROWS_WITH_AS(load(magic), doctest::Contains("magic"), amq::Error);

  std::string version = good;
  version[8] = 9;
  CHECK_THROWS_WITH_AS(load(version), doctest::Contains("version 9"), amq::Error);

  // A payload length far beyond the file fails as truncation, not as a huge allocation:
  // the length is the last header field before the index.
  std::string length = good;
  const std::size_t length_at = good.size() - 8 - (scorer.index_bytes() + 8);
  length[length_at + 5] = 0x7f;
  CHECK_THROWS_WITH_AS(load(length), doctest::Contains("truncated"), amq::Error);

  CHECK_THROWS_WITH_AS(KnnScorer::load(temp_path("missing.knn")), doctest::Contains("cannot open"),
                       amq::Error);
}

TEST_CASE("bad arguments are refused with the value") {
  CHECK_THROWS_WITH_AS(amq::knn::parse_index_kind("lsh"), doctest::Contains("'lsh'"), amq::Error);
  CHECK(amq::knn::parse_index_kind("ivfpq") == IndexKind::ivfpq);
  KnnParams bad;
  bad.nprobe = 2000;
  CHECK_THROWS_WITH_AS(KnnScorer{bad}, doctest::Contains("2000"), amq::Error);

  KnnScorer scorer(small_params(IndexKind::flat));
  CHECK_THROWS_AS(scorer.build(), amq::Error);
  const MapSet train = gaussian_maps(1, 16, 12);
  std::vector<float> scores(kSide * kSide);
  CHECK_THROWS_WITH_AS(scorer.score(train.map(0), scores.data()), doctest::Contains("build"),
                       amq::Error);

  scorer.collect(train.map(0));
  const MapSet other_depth = gaussian_maps(1, 8, 13);
  CHECK_THROWS_WITH_AS(scorer.collect(other_depth.map(0)), doctest::Contains("D = 8"), amq::Error);
  MapSet nan = gaussian_maps(1, 16, 14);
  nan.data[5] = std::nanf("");
  CHECK_THROWS_WITH_AS(scorer.collect(nan.map(0)), doctest::Contains("non-finite"), amq::Error);
  scorer.build();
  CHECK_THROWS_AS(scorer.collect(train.map(0)), amq::Error);

  KnnParams pq = small_params(IndexKind::ivfpq);
  pq.pq_m = 5;
  KnnScorer ivfpq(pq);
  const MapSet big = gaussian_maps(2, 16, 15);
  CHECK_THROWS_WITH_AS(ivfpq.fit(big.maps()), doctest::Contains("must divide the depth D = 16"),
                       amq::Error);
}

TEST_CASE("greedy coreset covers within twice the optimal radius on a tiny case") {
  // 12 points in the plane, 3 centres: every 3-subset is tried for the optimum.
  std::mt19937 rng(16);
  std::uniform_real_distribution<float> uniform(0.0f, 10.0f);
  std::vector<float> points(12 * 2);
  for (float& v : points) v = uniform(rng);
  const amq::MatrixView<const float> features{points.data(), 12, 2};

  double optimum = std::numeric_limits<double>::infinity();
  for (std::size_t a = 0; a < 12; ++a) {
    for (std::size_t b = a + 1; b < 12; ++b) {
      for (std::size_t c = b + 1; c < 12; ++c) {
        optimum = std::min(optimum, amq::knn::coverage_radius(features, {a, b, c}));
      }
    }
  }
  amq::knn::CoresetParams params;
  params.ratio = 0.25;
  params.projection_dim = 0;  // exact distances: Gonzalez's factor-2 bound holds
  for (std::uint64_t seed = 0; seed < 12; ++seed) {
    params.seed = seed;
    const std::vector<std::size_t> picked = amq::knn::greedy_coreset(features, params);
    REQUIRE(picked.size() == 3);
    CHECK(amq::knn::coverage_radius(features, picked) <= 2.0 * optimum + 1e-9);
  }
}

TEST_CASE("greedy coreset picks what the plain farthest-point loop picks") {
  // The selection skips rows by the triangle inequality; a plain loop that updates every row
  // must make the same picks from the same first centre.
  const MapSet set = gaussian_maps(1, 8, 21);  // 400 rows of 8 channels
  const amq::MatrixView<const float> features{set.data.data(), 400, 8};
  amq::knn::CoresetParams params;
  params.ratio = 0.1;
  params.projection_dim = 0;
  params.seed = 3;
  const std::vector<std::size_t> picked = amq::knn::greedy_coreset(features, params);
  REQUIRE(picked.size() == 40);

  std::vector<double> nearest(400, std::numeric_limits<double>::infinity());
  std::vector<std::size_t> plain = {picked[0]};
  while (plain.size() < 40) {
    std::size_t farthest = 0;
    for (std::size_t r = 0; r < 400; ++r) {
      double d = 0.0;
      for (std::size_t j = 0; j < 8; ++j) {
        const double diff = double{features(r, j)} - features(plain.back(), j);
        d += diff * diff;
      }
      nearest[r] = std::min(nearest[r], d);
      if (nearest[r] > nearest[farthest]) farthest = r;
    }
    plain.push_back(farthest);
  }
  CHECK(plain == picked);
}

TEST_CASE("projected greedy coreset covers better than a random subset of the same size") {
  Clusters clusters(40, 64, 17);
  const MapSet set = clusters.maps(5, 1.0f);  // 2000 rows of 64 channels
  const amq::MatrixView<const float> features{set.data.data(), set.data.size() / 64, 64};
  amq::knn::CoresetParams params;
  params.ratio = 0.05;
  params.projection_dim = 16;
  const std::vector<std::size_t> picked = amq::knn::greedy_coreset(features, params);
  REQUIRE(picked.size() == 100);
  std::vector<std::size_t> sorted = picked;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // distinct rows
  CHECK(amq::knn::greedy_coreset(features, params) == picked);              // seeded

  const double greedy = amq::knn::coverage_radius(features, picked);
  std::mt19937 rng(18);
  double best_random = std::numeric_limits<double>::infinity();
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<std::size_t> rows(features.rows);
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    std::shuffle(rows.begin(), rows.end(), rng);
    rows.resize(picked.size());
    best_random = std::min(best_random, amq::knn::coverage_radius(features, rows));
  }
  MESSAGE("coverage radius: greedy " << greedy << ", best of 5 random " << best_random);
  CHECK(greedy < best_random);
}

TEST_CASE("a coreset scorer indexes ratio x rows and still separates outliers") {
  Clusters clusters(32, 32, 19);
  const MapSet train = clusters.maps(10, 1.0f);
  KnnParams params = small_params(IndexKind::flat);
  params.use_coreset = true;
  params.coreset.projection_dim = 16;
  KnnScorer scorer(params);
  scorer.fit(train.maps());
  CHECK(scorer.size() == 400);  // 10 % of 4000

  MapSet test = clusters.maps(1, 1.0f);
  std::mt19937 rng(20);
  std::normal_distribution<float> normal(0.0f, 10.0f);
  for (std::size_t j = 0; j < 32; ++j) test.data[j] += normal(rng);
  const std::vector<float> scores = scorer.score(test.map(0));
  CHECK(scores[0] == *std::max_element(scores.begin(), scores.end()));
}
