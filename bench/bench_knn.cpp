// kNN baselines with Faiss (PatchCore-style scoring): build time, search time per feature map
// of 28 x 28 = 784 pixels, index bytes, and the quality of the approximate indexes against
// exact search, on synthetic features shaped like the real ones.
//
// Cases:
//   d288_209img    D = 288 (MobileNetV2-sized), 209 images x 784 pixels = 163 856 rows, the
//                  whole memory bank of one MVTec category.
//   d3584_21img    D = 3584 (Wide ResNet-50-2 stages 2-4), 21 images x 784 = 16 464 rows:
//                  the size of PatchCore's 10 % coreset of 209 images. The full bank would be
//                  2.3 GB. HNSW here takes minutes to build and searches slower than flat,
//                  so it runs only in the full set.
//   d288_paper10   D = 288, 363 maps x 784 = 284 592 rows: the size of a 10 % coreset of the
//                  paper's 3629 images x 784 pixels (flat and IVFPQ only; HNSW would add
//                  minutes of build).
// BM_AmqScore scores the same test map with AmqScorer fitted on the same bank, with the
// command line's defaults (G = 2048, ε = 0.03 σ with σ = sqrt(trace Σ / D) of the bank,
// M = 2^28 bits, B by eq. 5), so AMQ and the three indexes are timed on identical inputs.
// Coreset selection itself is timed on 21, 52 and 104 images of D = 288 (cost grows about as
// the square of the rows). AMQ_BENCH_KNN_FULL=1 adds HNSW at D = 3584 and the coreset of all
// 209 images (several more minutes).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "knn/coreset.hpp"
#include "knn/knn_scorer.hpp"

namespace {

using amq::knn::IndexKind;
using amq::knn::KnnParams;
using amq::knn::KnnScorer;

constexpr std::size_t kSide = 28;
constexpr std::size_t kPixels = kSide * kSide;

struct Case {
  const char* name;
  std::size_t depth;
  std::size_t rows;
  int nlist;
};

const Case kD288{"d288_209img", 288, 209 * kPixels, 1024};
const Case kD3584{"d3584_21img", 3584, 21 * kPixels, 128};
const Case kPaper{"d288_paper10", 288, 363 * kPixels, 1024};

/// Features of normal pixels gather around a limited set of appearances: 1024 non-negative
/// centres (like post-ReLU activations) with Gaussian spread, clipped at zero.
class SyntheticFeatures {
 public:
  SyntheticFeatures(std::size_t depth, std::uint32_t seed) : depth_(depth), rng_(seed) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    centres_.resize(1024 * depth);
    for (float& v : centres_) v = std::abs(normal(rng_));
  }
  /// `rows` pixels; every `outlier_every`-th one (0: none) is pushed away from its centre.
  std::vector<float> draw(std::size_t rows, std::size_t outlier_every = 0) {
    std::normal_distribution<float> noise(0.0f, 0.3f);
    std::uniform_int_distribution<std::size_t> pick(0, 1023);
    std::vector<float> out(rows * depth_);
    for (std::size_t r = 0; r < rows; ++r) {
      const float* c = centres_.data() + pick(rng_) * depth_;
      const float spread = outlier_every > 0 && r % outlier_every == 0 ? 1.0f : 0.3f;
      for (std::size_t j = 0; j < depth_; ++j) {
        out[r * depth_ + j] = std::max(0.0f, c[j] + noise(rng_) * spread / 0.3f);
      }
    }
    return out;
  }

 private:
  std::size_t depth_;
  std::mt19937 rng_;
  std::vector<float> centres_;
};

/// One case's data: the memory bank and one test feature map, made once.
struct CaseData {
  std::vector<float> bank;
  std::vector<float> query;
};

CaseData& data_for(const Case& c) {
  static std::map<std::string, CaseData> cache;
  auto it = cache.find(c.name);
  if (it == cache.end()) {
    SyntheticFeatures source(c.depth, 42);
    CaseData d;
    d.bank = source.draw(c.rows);
    d.query = source.draw(kPixels, 10);
    it = cache.emplace(c.name, std::move(d)).first;
  }
  return it->second;
}

amq::FeatureMap query_map(const Case& c) {
  return {data_for(c).query.data(), kSide, kSide, c.depth};
}

KnnParams params_for(const Case& c, IndexKind kind) {
  KnnParams p;
  p.index = kind;
  p.nlist = c.nlist;
  return p;
}

/// Builds a scorer on the case's bank, fed as 28 x 28 maps, and returns the build() time.
double build(const Case& c, IndexKind kind, std::unique_ptr<KnnScorer>& out) {
  const CaseData& d = data_for(c);
  out = std::make_unique<KnnScorer>(params_for(c, kind));
  for (std::size_t r = 0; r < c.rows; r += kPixels) {
    out->collect({d.bank.data() + r * c.depth, kSide, kSide, c.depth});
  }
  const auto start = std::chrono::steady_clock::now();
  out->build();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::unique_ptr<KnnScorer>& cached(const Case& c, IndexKind kind) {
  static std::map<std::pair<std::string, IndexKind>, std::unique_ptr<KnnScorer>> cache;
  return cache[{c.name, kind}];
}

KnnScorer& scorer_for(const Case& c, IndexKind kind) {
  std::unique_ptr<KnnScorer>& s = cached(c, kind);
  if (!s) build(c, kind, s);
  return *s;
}

std::vector<float> score_all(const KnnScorer& scorer, const Case& c) {
  return scorer.score(query_map(c));
}

void BM_Build(benchmark::State& state, const Case& c, IndexKind kind) {
  data_for(c);
  for (auto _ : state) {
    state.SetIterationTime(build(c, kind, cached(c, kind)));
  }
  const KnnScorer& s = *cached(c, kind);
  state.counters["rows"] = static_cast<double>(s.size());
  state.counters["index_MB"] = static_cast<double>(s.index_bytes()) / 1e6;
  state.counters["threads"] = omp_get_max_threads();
}

void BM_Search(benchmark::State& state, const Case& c, IndexKind kind) {
  const KnnScorer& scorer = scorer_for(c, kind);
  std::vector<float> scores;
  for (auto _ : state) {
    scores = score_all(scorer, c);
    benchmark::DoNotOptimize(scores.data());
  }
  state.counters["pixels/s"] = benchmark::Counter(static_cast<double>(kPixels),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["index_MB"] = static_cast<double>(scorer.index_bytes()) / 1e6;
  state.counters["threads"] = omp_get_max_threads();
  if (kind != IndexKind::flat) {
    // Quality beside speed: the mean relative error of the pixel scores against exact search,
    // and for HNSW (which returns exact distances of the neighbours it finds) the share of
    // pixels whose true nearest distance it found. IVFPQ's distances are approximations that
    // can fall below the true one, so it gets no recall figure.
    const std::vector<float> exact = score_all(scorer_for(c, IndexKind::flat), c);
    double hits = 0, error = 0;
    for (std::size_t i = 0; i < kPixels; ++i) {
      if (scores[i] <= exact[i] * 1.0001f + 1e-6f) hits += 1;
      error += std::abs(scores[i] - exact[i]) / std::max(exact[i], 1e-6f);
    }
    if (kind == IndexKind::hnsw) state.counters["recall@1"] = hits / kPixels;
    state.counters["rel_err"] = error / kPixels;
  }
}

/// AmqScorer fitted on the case's bank with the command line's defaults (see the top).
const amq::AmqScorer<>& amq_scorer_for(const Case& c) {
  static std::map<std::string, std::unique_ptr<amq::AmqScorer<>>> cache;
  std::unique_ptr<amq::AmqScorer<>>& scorer = cache[c.name];
  if (scorer) return *scorer;
  const CaseData& d = data_for(c);
  std::vector<double> sum(c.depth, 0.0), sum_squares(c.depth, 0.0);
  for (std::size_t r = 0; r < c.rows; ++r) {
    for (std::size_t j = 0; j < c.depth; ++j) {
      const double v = d.bank[r * c.depth + j];
      sum[j] += v;
      sum_squares[j] += v * v;
    }
  }
  double trace = 0.0;
  for (std::size_t j = 0; j < c.depth; ++j) {
    const double mean = sum[j] / static_cast<double>(c.rows);
    trace += sum_squares[j] / static_cast<double>(c.rows) - mean * mean;
  }
  amq::ScorerParams params;
  params.lsh.dim = c.depth;
  params.lsh.bucket_width = static_cast<float>(0.03 * std::sqrt(trace / c.depth));
  params.filter_bits = std::uint64_t{1} << 28;
  scorer = std::make_unique<amq::AmqScorer<>>(params);
  for (std::size_t r = 0; r < c.rows; r += kPixels) {
    scorer->collect({d.bank.data() + r * c.depth, kSide, kSide, c.depth});
  }
  scorer->build();
  return *scorer;
}

void BM_AmqScore(benchmark::State& state, const Case& c) {
  const amq::AmqScorer<>& scorer = amq_scorer_for(c);
  std::vector<float> scores;
  for (auto _ : state) {
    scores = scorer.score(query_map(c));
    benchmark::DoNotOptimize(scores.data());
  }
  state.counters["pixels/s"] = benchmark::Counter(static_cast<double>(kPixels),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["filter_MB"] = static_cast<double>(scorer.filter().size_bytes()) / 1e6;
  state.counters["probes"] = scorer.filter().params().probes;
  state.counters["threads"] = omp_get_max_threads();
}

void BM_Coreset(benchmark::State& state) {
  const auto images = static_cast<std::size_t>(state.range(0));
  SyntheticFeatures source(288, 7);
  const std::vector<float> bank = source.draw(images * kPixels);
  const amq::MatrixView<const float> features{bank.data(), images * kPixels, 288};
  amq::knn::CoresetParams params;  // 10 %, projection to 128 channels
  std::size_t selected = 0;
  for (auto _ : state) selected = amq::knn::greedy_coreset(features, params).size();
  state.counters["rows"] = static_cast<double>(features.rows);
  state.counters["selected"] = static_cast<double>(selected);
  state.counters["threads"] = omp_get_max_threads();
}

void register_case(const Case& c, std::initializer_list<IndexKind> kinds) {
  for (IndexKind kind : kinds) {
    const std::string name = std::string(c.name) + "/" + amq::knn::to_string(kind);
    benchmark::RegisterBenchmark(("BM_Build/" + name).c_str(), BM_Build, c, kind)
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kSecond);
    benchmark::RegisterBenchmark(("BM_Search/" + name).c_str(), BM_Search, c, kind)
        ->Unit(benchmark::kMillisecond);
  }
}

[[maybe_unused]] const bool kRegistered = [] {
  const char* full_env = std::getenv("AMQ_BENCH_KNN_FULL");
  const bool full = full_env != nullptr && std::string(full_env) == "1";
  register_case(kD288, {IndexKind::flat, IndexKind::hnsw, IndexKind::ivfpq});
  register_case(kD3584, {IndexKind::flat, IndexKind::ivfpq});
  if (full) register_case(kD3584, {IndexKind::hnsw});
  register_case(kPaper, {IndexKind::flat, IndexKind::ivfpq});
  for (const Case* c : {&kD288, &kD3584, &kPaper}) {
    benchmark::RegisterBenchmark((std::string("BM_AmqScore/") + c->name).c_str(), BM_AmqScore, *c)
        ->Unit(benchmark::kMillisecond);
  }
  auto* coreset = benchmark::RegisterBenchmark("BM_Coreset/d288", BM_Coreset);
  coreset->Arg(21)->Arg(52)->Arg(104)->Iterations(1)->Unit(benchmark::kSecond);
  if (full) coreset->Arg(209);
  return true;
}();

}  // namespace
