// The paper's figure 7 on MVTec AD bottle: image and pixel AUROC and scoring time per image
// against the filter size M, for hash counts G and bucket widths ε, with the paper's method
// (dense projection, classic filter, B by eq. 5, mean image score, nearest-neighbour upsampling).
//
// It reads the features that `amq compare --features FILE` cached, so the network runs once
// for the whole sweep, and fits on all normal training images (those `amq train` holds out
// too), as the paper does. For each (G, ε) the keys of the training maps are collected once and
// every filter size gets its own filter of them (the distributed-fit route: an empty shard
// sized for the totals, united with the filter of the keys), which gives bit for bit the filter
// of a fit with that M; each test map is encoded once and its codes probed in every filter.
//
// Pixel AUROC is exact for the nearest-neighbour upsampling at the size of the scored region:
// each feature-map cell weighs the defect and normal image pixels that read its score.
// Times are CPU time of the process (run with OMP_NUM_THREADS=1 for one core's work).
//
// fig7_bottle FEATURE_CACHE [G,G,...] [log2 M,...] [ε/σ,...]  (defaults: the figure's sweep)
// Prints one tab-separated line per setting: G, ε/σ, log2 M, B, estimated FPR, image AUROC,
// pixel AUROC, encode ms, probe ms, score ms per image.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "amq/amq.hpp"
#include "feature_cache.hpp"
#include "image_io.hpp"

namespace {

using amq::cli::CategoryFeatures;
using Scorer = amq::AmqScorer<>;

double cpu_ms() {
  timespec time{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time);
  return static_cast<double>(time.tv_sec) * 1e3 + static_cast<double>(time.tv_nsec) * 1e-6;
}

template <class T>
std::vector<T> parse_list(const std::string& text) {
  std::vector<T> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::stringstream field(item);
    T value{};
    field >> value;
    AMQ_EXPECTS(!field.fail(), "cannot read '" << item << "' in the list '" << text << "'");
    values.push_back(value);
  }
  AMQ_EXPECTS(!values.empty(), "empty list '" << text << "'");
  return values;
}

/// Per test image and feature-map cell: the defect and normal region pixels whose
/// nearest-neighbour upsampled score is that cell's.
struct CellWeights {
  std::vector<double> defect;
  std::vector<double> normal;
};

CellWeights cell_weights(const CategoryFeatures& f) {
  CellWeights weights;
  for (std::size_t i = 0; i < f.samples.size(); ++i) {
    const amq::cli::TestRegion& r = f.regions[i];
    const std::size_t w = f.test[i].width;
    const std::size_t h = f.test[i].height;
    std::vector<double> defect(w * h, 0.0);
    std::vector<double> normal(w * h, 0.0);
    const amq::cli::Mask mask =
        f.samples[i].mask.empty()
            ? amq::cli::normal_mask(r.image_width, r.image_height)
            : amq::cli::read_mask(f.samples[i].mask, r.image_width, r.image_height);
    for (std::size_t y = 0; y < r.height; ++y) {
      const std::size_t row = amq::detail::nearest_source(y, h, r.height) * w;
      for (std::size_t x = 0; x < r.width; ++x) {
        const std::size_t cell = row + amq::detail::nearest_source(x, w, r.width);
        const bool is_defect = mask.pixels[(r.y + y) * r.image_width + r.x + x] != 0;
        (is_defect ? defect : normal)[cell] += 1.0;
      }
    }
    weights.defect.insert(weights.defect.end(), defect.begin(), defect.end());
    weights.normal.insert(weights.normal.end(), normal.begin(), normal.end());
  }
  return weights;
}

/// Exact ROC AUC of scores that stand for `positive` and `negative` samples each: the chance
/// that a positive sample outscores a negative one, ties counting one half (Mann–Whitney).
double weighted_auroc(const std::vector<float>& scores, const std::vector<double>& positive,
                      const std::vector<double>& negative) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  double below = 0.0;
  double pairs_won = 0.0;
  double positives = 0.0;
  for (std::size_t i = 0; i < order.size();) {
    double tie_positive = 0.0;
    double tie_negative = 0.0;
    std::size_t j = i;
    for (; j < order.size() && scores[order[j]] == scores[order[i]]; ++j) {
      tie_positive += positive[order[j]];
      tie_negative += negative[order[j]];
    }
    pairs_won += tie_positive * (below + 0.5 * tie_negative);
    below += tie_negative;
    positives += tie_positive;
    i = j;
  }
  return pairs_won / (positives * below);
}

/// Projection spread σ of the first 8 training maps, as `amq train` measures it.
double spread_of(const std::vector<amq::features::FeatureMapBuffer>& maps) {
  const std::size_t depth = maps.front().depth;
  std::vector<double> sum(depth, 0.0);
  std::vector<double> squares(depth, 0.0);
  double count = 0.0;
  for (std::size_t m = 0; m < std::min<std::size_t>(8, maps.size()); ++m) {
    for (std::size_t i = 0; i < maps[m].data.size(); ++i) {
      sum[i % depth] += maps[m].data[i];
      squares[i % depth] += static_cast<double>(maps[m].data[i]) * maps[m].data[i];
    }
    count += static_cast<double>(maps[m].width * maps[m].height);
  }
  double trace = 0.0;
  for (std::size_t c = 0; c < depth; ++c) {
    trace += std::max(0.0, squares[c] / count - (sum[c] / count) * (sum[c] / count));
  }
  return std::sqrt(trace / static_cast<double>(depth));
}

/// One filter size: its scorer, its scores of every test cell and its probe time.
struct Setting {
  unsigned log2_bits = 0;
  std::optional<Scorer> scorer;
  std::vector<float> cells;
  std::vector<float> image_scores;
  double probe_ms = 0.0;
};

void sweep(const CategoryFeatures& f, const std::vector<const amq::features::FeatureMapBuffer*>&
                                          train,
           const CellWeights& weights, std::size_t hashes, double width_in_spreads,
           double spread, const std::vector<unsigned>& log2_sizes) {
  amq::ScorerParams params;
  params.lsh.dim = f.test.front().depth;
  params.lsh.hashes = hashes;
  params.lsh.bucket_width = static_cast<float>(width_in_spreads * spread);

  // The keys of every training map, collected once for all filter sizes.
  Scorer collector(params);
  for (const auto* map : train) collector.collect(map->view());
  amq::SizingReport totals = collector.sizing();
  std::vector<std::uint64_t> keys;
  collector.for_each_collected_key([&](std::uint64_t key) { keys.push_back(key); });
  totals.distinct_keys = keys.size();

  std::vector<Setting> settings(log2_sizes.size());
  for (std::size_t s = 0; s < log2_sizes.size(); ++s) {
    Setting& setting = settings[s];
    setting.log2_bits = log2_sizes[s];
    amq::ScorerParams sized = params;
    sized.filter_bits = std::uint64_t{1} << log2_sizes[s];
    setting.scorer.emplace(sized);
    setting.scorer->build(totals);
    amq::BloomFilter<amq::ClassicBloom> filter(setting.scorer->filter().params());
    filter.add(keys.data(), keys.size());
    setting.scorer->unite(filter);
  }
  keys = {};

  double encode_ms = 0.0;
  for (std::size_t i = 0; i < f.test.size(); ++i) {
    const amq::FeatureMap map = f.test[i].view();
    const amq::cli::TestRegion& r = f.regions[i];
    double start = cpu_ms();
    const std::vector<std::int32_t> codes = collector.encode(map);
    encode_ms += cpu_ms() - start;
    std::vector<float> cells(map.pixels());
    for (Setting& setting : settings) {
      start = cpu_ms();
      setting.scorer->score_codes(codes.data(), map.pixels(), cells.data());
      setting.probe_ms += cpu_ms() - start;
      setting.image_scores.push_back(setting.scorer->image_score(cells.data(), r.width, r.height));
      setting.cells.insert(setting.cells.end(), cells.begin(), cells.end());
    }
  }

  std::vector<std::uint8_t> labels;
  for (const auto& sample : f.samples) labels.push_back(sample.defect == "good" ? 0 : 1);
  const double n = static_cast<double>(f.test.size());
  for (const Setting& setting : settings) {
    const amq::SizingReport& s = setting.scorer->sizing();
    std::printf("%zu\t%g\t%u\t%u\t%.3g\t%.4f\t%.4f\t%.2f\t%.2f\t%.2f\n", hashes,
                width_in_spreads, setting.log2_bits, s.probes, s.estimated_fpr,
                amq::auroc(setting.image_scores, labels),
                weighted_auroc(setting.cells, weights.defect, weights.normal), encode_ms / n,
                setting.probe_ms / n, (encode_ms + setting.probe_ms) / n);
    std::fflush(stdout);
  }
  std::fprintf(stderr, "G = %zu, eps = %g sigma: %llu distinct of %llu keys\n", hashes,
               width_in_spreads, static_cast<unsigned long long>(totals.distinct_keys),
               static_cast<unsigned long long>(totals.total_keys));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    AMQ_EXPECTS(argc >= 2 && argc <= 5,
                "usage: fig7_bottle FEATURE_CACHE [G,...] [log2 M,...] [eps/sigma,...]");
    const CategoryFeatures f = amq::cli::read_category_features(argv[1]);
    const auto hashes = parse_list<std::size_t>(argc > 2 ? argv[2] : "512,1024,2048,4096");
    const auto log2_sizes = parse_list<unsigned>(argc > 3 ? argv[3] : "20,22,24,26,28,30");
    const auto widths = parse_list<double>(argc > 4 ? argv[4] : "0.03,0.1");
    for (const unsigned e : log2_sizes) {
      AMQ_EXPECTS(e >= 10 && e <= 33, "log2 M = " << e << " is outside 10..33");
    }

    std::vector<const amq::features::FeatureMapBuffer*> train;
    for (const auto& map : f.fit) train.push_back(&map);
    for (const auto& map : f.held) train.push_back(&map);
    const double spread = spread_of(f.fit);
    const CellWeights weights = cell_weights(f);
    std::fprintf(stderr, "%zu training and %zu test maps of %zu x %zu x %zu, sigma = %.4f\n",
                 train.size(), f.test.size(), f.test.front().width, f.test.front().height,
                 f.test.front().depth, spread);
    std::printf("G\teps_sigma\tlog2_M\tB\test_fpr\timage_auroc\tpixel_auroc\tencode_ms\t"
                "probe_ms\tscore_ms\n");
    for (const double width : widths) {
      for (const std::size_t g : hashes) sweep(f, train, weights, g, width, spread, log2_sizes);
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
