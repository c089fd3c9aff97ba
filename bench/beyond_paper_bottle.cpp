// The extensions beyond the paper on MVTec AD bottle with MobileNetV2 features (D = 288 on a
// 28 × 28 grid), each against the paper-faithful default (dense projection, K = 1, one bucket
// width ε = 2σ (--eps), classic filter of M = 2^28 bits sized by eq. 5, mean image score):
//   structured  dense vs structured projection: AUROC and encode time per image;
//   and         AND-concatenation K = 1, 2, 4, 8: AUROC, distinct keys, filter sizes;
//   radius      multi-radius (R widths ε₀·2^i) vs single radius vs exact kNN (Faiss flat).
// Pixel AUROC is exact for the nearest-neighbour upsampled score maps at full image size: each
// map cell weighs the defect and normal image pixels that read it. Features are cached in a
// file so that later runs skip the network.
//
// beyond_paper_bottle DATA_DIR WEIGHTS CACHE_FILE [structured|and|radius|all] [WIDTHS]
//                     [--layers a,b,c] [--eps E]
// WIDTHS: bucket widths in units of σ for the radius comparison, "0.125,0.5,2" by default.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "amq/amq.hpp"
#include "feature_source.hpp"
#include "knn/knn_scorer.hpp"

namespace {

namespace fs = std::filesystem;
using amq::features::FeatureMapBuffer;

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<fs::path> images_in(const fs::path& folder) {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".png") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

cv::Mat read_rgb(const fs::path& path) {
  cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
  AMQ_EXPECTS(!bgr.empty(), "cannot read image " << path);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

/// A test image: its label and, per feature-map cell, the defect and normal image pixels that
/// nearest-neighbour upsampling gives that cell's score.
struct TestImage {
  std::uint8_t label = 0;
  std::size_t width = 0;
  std::size_t height = 0;
  std::vector<std::uint32_t> defect_pixels;
  std::vector<std::uint32_t> normal_pixels;
};

struct Dataset {
  std::vector<FeatureMapBuffer> train;
  std::vector<FeatureMapBuffer> test;
  std::vector<TestImage> images;
};

void write_maps(std::ofstream& out, const std::vector<FeatureMapBuffer>& maps) {
  const std::uint64_t count = maps.size();
  out.write(reinterpret_cast<const char*>(&count), 8);
  for (const FeatureMapBuffer& m : maps) {
    const std::uint64_t shape[3] = {m.width, m.height, m.depth};
    out.write(reinterpret_cast<const char*>(shape), sizeof shape);
    out.write(reinterpret_cast<const char*>(m.data.data()),
              static_cast<std::streamsize>(m.data.size() * 4));
  }
}

std::vector<FeatureMapBuffer> read_maps(std::ifstream& in) {
  std::uint64_t count = 0;
  in.read(reinterpret_cast<char*>(&count), 8);
  std::vector<FeatureMapBuffer> maps(count);
  for (FeatureMapBuffer& m : maps) {
    std::uint64_t shape[3] = {};
    in.read(reinterpret_cast<char*>(shape), sizeof shape);
    m.width = shape[0];
    m.height = shape[1];
    m.depth = shape[2];
    m.data.resize(m.width * m.height * m.depth);
    in.read(reinterpret_cast<char*>(m.data.data()),
            static_cast<std::streamsize>(m.data.size() * 4));
  }
  AMQ_EXPECTS(in.good(), "feature cache is truncated");
  return maps;
}

std::vector<FeatureMapBuffer> extract(amq::features::FeatureSource& source,
                                      const std::vector<fs::path>& paths) {
  std::vector<FeatureMapBuffer> maps;
  for (std::size_t first = 0; first < paths.size(); first += 8) {
    std::vector<cv::Mat> rgb;
    std::vector<amq::features::RgbImage> views;
    for (std::size_t i = first; i < std::min(paths.size(), first + 8); ++i) {
      rgb.push_back(read_rgb(paths[i]));
      views.push_back({rgb.back().data, static_cast<std::size_t>(rgb.back().cols),
                       static_cast<std::size_t>(rgb.back().rows)});
    }
    for (auto& map : source.extract_batch(views)) maps.push_back(std::move(map));
    std::fprintf(stderr, "features: %zu/%zu\n", maps.size(), paths.size());
  }
  return maps;
}

Dataset load(const fs::path& data, const std::string& weights, const fs::path& cache,
             const std::vector<std::string>& layers) {
  Dataset set;
  const std::vector<fs::path> train = images_in(data / "train" / "good");
  std::vector<fs::path> test;
  std::vector<std::string> defects;
  for (const auto& entry : fs::directory_iterator(data / "test")) {
    defects.push_back(entry.path().filename().string());
  }
  std::sort(defects.begin(), defects.end());
  for (const std::string& defect : defects) {
    for (const fs::path& p : images_in(data / "test" / defect)) test.push_back(p);
  }

  if (fs::exists(cache)) {
    std::ifstream in(cache, std::ios::binary);
    set.train = read_maps(in);
    set.test = read_maps(in);
  } else {
    using namespace amq::features;
    FeatureOptions options = default_options(Backbone::mobilenet_v2);
    if (!layers.empty()) options.layers = layers;
    auto source = make_feature_source(Backbone::mobilenet_v2, weights, options);
    set.train = extract(*source, train);
    set.test = extract(*source, test);
    std::ofstream out(cache, std::ios::binary);
    write_maps(out, set.train);
    write_maps(out, set.test);
  }
  AMQ_EXPECTS(set.train.size() == train.size() && set.test.size() == test.size(),
              "feature cache does not match the data folder");

  for (std::size_t i = 0; i < test.size(); ++i) {
    const fs::path& path = test[i];
    const std::string defect = path.parent_path().filename().string();
    const cv::Mat rgb = read_rgb(path);
    TestImage image;
    image.width = static_cast<std::size_t>(rgb.cols);
    image.height = static_cast<std::size_t>(rgb.rows);
    image.label = defect == "good" ? 0 : 1;
    cv::Mat mask = cv::Mat::zeros(rgb.rows, rgb.cols, CV_8U);
    if (image.label) {
      const fs::path mask_path =
          data / "ground_truth" / defect / (path.stem().string() + "_mask.png");
      mask = cv::imread(mask_path.string(), cv::IMREAD_GRAYSCALE);
      AMQ_EXPECTS(mask.rows == rgb.rows && mask.cols == rgb.cols, "bad mask " << mask_path);
    }
    const std::size_t w = set.test[i].width;
    const std::size_t h = set.test[i].height;
    image.defect_pixels.assign(w * h, 0);
    image.normal_pixels.assign(w * h, 0);
    for (std::size_t y = 0; y < image.height; ++y) {
      const std::size_t cy = amq::detail::nearest_source(y, h, image.height);
      for (std::size_t x = 0; x < image.width; ++x) {
        const std::size_t cell = cy * w + amq::detail::nearest_source(x, w, image.width);
        const bool defect_pixel =
            mask.at<std::uint8_t>(static_cast<int>(y), static_cast<int>(x)) > 127;
        (defect_pixel ? image.defect_pixels : image.normal_pixels)[cell] += 1;
      }
    }
    set.images.push_back(std::move(image));
  }
  return set;
}

/// σ = sqrt(trace(Σ)/D) over the first 8 training maps (as `amq train` measures it).
double projection_spread(const std::vector<FeatureMapBuffer>& maps) {
  const std::size_t depth = maps.front().depth;
  std::vector<double> sum(depth, 0.0);
  std::vector<double> sum2(depth, 0.0);
  double n = 0.0;
  for (std::size_t m = 0; m < std::min<std::size_t>(8, maps.size()); ++m) {
    for (std::size_t p = 0; p < maps[m].width * maps[m].height; ++p) {
      for (std::size_t d = 0; d < depth; ++d) {
        const double v = maps[m].data[p * depth + d];
        sum[d] += v;
        sum2[d] += v * v;
      }
      n += 1.0;
    }
  }
  double trace = 0.0;
  for (std::size_t d = 0; d < depth; ++d) trace += sum2[d] / n - (sum[d] / n) * (sum[d] / n);
  return std::sqrt(trace / static_cast<double>(depth));
}

/// Exact ROC AUC of weighted samples (Mann–Whitney with ties as one half).
double weighted_auroc(const std::vector<float>& scores, const std::vector<double>& positive,
                      const std::vector<double>& negative) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  double negatives_below = 0.0, wins = 0.0, total_pos = 0.0, total_neg = 0.0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    double pos = 0.0, neg = 0.0;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      pos += positive[order[j]];
      neg += negative[order[j]];
      ++j;
    }
    wins += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    total_pos += pos;
    total_neg += neg;
    i = j;
  }
  return wins / (total_pos * total_neg);
}

/// Spearman rank correlation (average ranks for ties).
double spearman(const std::vector<float>& a, const std::vector<float>& b) {
  const auto ranks = [](const std::vector<float>& v) {
    std::vector<std::size_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](std::size_t x, std::size_t y) { return v[x] < v[y]; });
    std::vector<double> rank(v.size());
    for (std::size_t i = 0; i < order.size();) {
      std::size_t j = i;
      while (j < order.size() && v[order[j]] == v[order[i]]) ++j;
      for (std::size_t k = i; k < j; ++k) rank[order[k]] = 0.5 * static_cast<double>(i + j - 1);
      i = j;
    }
    return rank;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double mean = 0.5 * static_cast<double>(a.size() - 1);
  double sab = 0.0, saa = 0.0, sbb = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return sab / std::sqrt(saa * sbb);
}

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

struct Evaluation {
  double image_mean = 0.0;  ///< image AUROC, mean image score
  double image_max = 0.0;   ///< image AUROC, max image score
  double pixel = 0.0;       ///< pixel AUROC at full image size
  double ms_per_image = 0.0;
  std::vector<float> cells;  ///< every test cell's score, image after image
};

using ScoreFn = std::function<std::vector<float>(const amq::FeatureMap&)>;

Evaluation evaluate(const Dataset& set, const ScoreFn& score) {
  Evaluation e;
  std::vector<float> image_mean, image_max;
  std::vector<std::uint8_t> labels;
  std::vector<double> positive, negative;
  double elapsed = 0.0;
  for (std::size_t i = 0; i < set.test.size(); ++i) {
    const FeatureMapBuffer& map = set.test[i];
    const double start = now_ms();
    const std::vector<float> cells = score(map.view());
    elapsed += now_ms() - start;
    const TestImage& image = set.images[i];
    image_mean.push_back(amq::image_score(cells.data(), map.width, map.height,
                                          amq::ImageScore::mean, image.width, image.height));
    image_max.push_back(amq::image_score(cells.data(), map.width, map.height, amq::ImageScore::max,
                                         image.width, image.height));
    labels.push_back(image.label);
    e.cells.insert(e.cells.end(), cells.begin(), cells.end());
    positive.insert(positive.end(), image.defect_pixels.begin(), image.defect_pixels.end());
    negative.insert(negative.end(), image.normal_pixels.begin(), image.normal_pixels.end());
  }
  e.image_mean = amq::auroc(image_mean, labels);
  e.image_max = amq::auroc(image_max, labels);
  e.pixel = weighted_auroc(e.cells, positive, negative);
  e.ms_per_image = elapsed / static_cast<double>(set.test.size());
  return e;
}

std::vector<amq::FeatureMap> views(const std::vector<FeatureMapBuffer>& maps) {
  std::vector<amq::FeatureMap> out;
  for (const auto& m : maps) out.push_back(m.view());
  return out;
}

amq::ScorerParams paper_params(std::size_t depth, double eps) {
  amq::ScorerParams params;
  params.lsh = amq::LshParams{depth, 2048, static_cast<float>(eps), 0};
  params.filter_bits = std::uint64_t{1} << 28;
  return params;
}

void print_row(const std::string& name, const Evaluation& e, const std::string& extra) {
  std::printf("| %s | %.4f | %.4f | %.4f | %.1f |%s\n", name.c_str(), e.image_mean, e.image_max,
              e.pixel, e.ms_per_image, extra.c_str());
  std::fflush(stdout);
}

std::string sizing_columns(const amq::SizingReport& s) {
  char text[256];
  std::snprintf(text, sizeof text, " %llu | %u | %.3g | %.2f MiB |",
                static_cast<unsigned long long>(s.distinct_keys), s.probes, s.estimated_fpr,
                static_cast<double>(s.fpr_bits) / 8.0 / 1048576.0);
  return text;
}

/// Encode time per image (ms, wall, the process's threads) over the test maps.
template <class Encoder>
double encode_ms(const Encoder& encoder, const Dataset& set) {
  std::vector<std::int32_t> codes;
  const double start = now_ms();
  for (const auto& map : set.test) codes = encoder.encode(map.view().matrix());
  return (now_ms() - start) / static_cast<double>(set.test.size());
}

template <class Encoder>
void run_amq(const std::string& name, const Dataset& set, const amq::ScorerParams& params,
             double* encode_time) {
  amq::AmqScorer<Encoder> scorer(params);
  const double start = now_ms();
  const amq::SizingReport sizing = scorer.fit(views(set.train));
  const double fit_s = (now_ms() - start) / 1000.0;
  const Evaluation e = evaluate(set, [&](const amq::FeatureMap& m) { return scorer.score(m); });
  char extra[64];
  std::snprintf(extra, sizeof extra, " %.1f |", fit_s);
  print_row(name, e, sizing_columns(sizing) + extra);
  if (encode_time != nullptr) *encode_time = encode_ms(scorer.encoder(), set);
}

}  // namespace

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> items;
  for (std::size_t at = 0; at < list.size();) {
    const std::size_t comma = std::min(list.find(',', at), list.size());
    items.push_back(list.substr(at, comma - at));
    at = comma + 1;
  }
  return items;
}

int main(int raw_argc, char** raw_argv) {
  try {
    // Options --layers a,b,c (MobileNetV2 layers of a new feature cache; default: the
    // backbone's) and --eps E (default bucket width in units of σ, 2), then positionals.
    std::vector<std::string> layers;
    double eps = 2.0;
    std::vector<char*> positional;
    for (int i = 0; i < raw_argc; ++i) {
      const std::string arg = raw_argv[i];
      if ((arg == "--layers" || arg == "--eps") && i + 1 < raw_argc) {
        if (arg == "--layers") layers = split(raw_argv[i + 1]);
        if (arg == "--eps") eps = std::stod(raw_argv[i + 1]);
        ++i;
      } else {
        positional.push_back(raw_argv[i]);
      }
    }
    const int argc = static_cast<int>(positional.size());
    char** argv = positional.data();
    AMQ_EXPECTS(argc >= 4,
                "usage: beyond_paper_bottle DATA_DIR WEIGHTS CACHE_FILE "
                "[structured|and|radius|all] [WIDTHS]");
    const std::string which = argc > 4 ? argv[4] : "all";
    // Bucket widths in units of σ: single radius at each, and R = 4 starting at each.
    std::vector<double> widths;
    for (const std::string& w : split(argc > 5 ? argv[5] : "0.125,0.5,2")) {
      widths.push_back(std::stod(w));
    }
    const Dataset set = load(argv[1], argv[2], argv[3], layers);
    const std::size_t depth = set.train.front().depth;
    const double sigma = projection_spread(set.train);
    std::printf(
        "bottle: %zu train, %zu test maps of %zu x %zu x %zu; sigma = %.4f, "
        "eps = %g sigma = %.4f\n\n",
        set.train.size(), set.test.size(), set.train.front().width, set.train.front().height, depth,
        sigma, eps, eps * sigma);
    const char* header =
        "| config | image AUROC (mean) | image AUROC (max) | pixel AUROC | score ms/image |"
        " distinct keys | B | est. FPR | M for FPR 1e-5 | fit s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

    if (which == "structured" || which == "all") {
      std::printf("%s", header);
      double dense_ms = 0.0, structured_ms = 0.0;
      run_amq<amq::LshEncoder<>>("dense", set, paper_params(depth, eps * sigma), &dense_ms);
      run_amq<amq::LshEncoder<amq::StructuredProjection>>(
          "structured", set, paper_params(depth, eps * sigma), &structured_ms);
      std::printf("\nencode ms/image: dense %.2f, structured %.2f\n\n", dense_ms, structured_ms);
    }
    if (which == "and" || which == "all") {
      std::printf("%s", header);
      for (std::uint32_t k : {1u, 2u, 4u, 8u}) {
        amq::ScorerParams params = paper_params(depth, eps * sigma);
        params.codes_per_key = k;
        run_amq<amq::LshEncoder<>>("K = " + std::to_string(k), set, params, nullptr);
      }
      std::printf("\n");
    }
    if (which == "radius" || which == "all") {
      // Exact kNN takes seconds per image on two cores: its cell scores, time and bank size
      // are kept beside the feature cache and reused.
      const std::string knn_cache = std::string(argv[3]) + ".knn";
      Evaluation exact;
      double bank_bytes = 0.0;
      if (fs::exists(knn_cache)) {
        std::ifstream in(knn_cache, std::ios::binary);
        std::uint64_t count = 0;
        double ms = 0.0;
        in.read(reinterpret_cast<char*>(&count), 8);
        in.read(reinterpret_cast<char*>(&ms), 8);
        in.read(reinterpret_cast<char*>(&bank_bytes), 8);
        std::vector<float> cells(count);
        in.read(reinterpret_cast<char*>(cells.data()), static_cast<std::streamsize>(count * 4));
        AMQ_EXPECTS(in.good(), "kNN cache " << knn_cache << " is truncated");
        std::size_t next = 0;
        exact = evaluate(set, [&](const amq::FeatureMap& m) {
          std::vector<float> map(cells.begin() + static_cast<std::ptrdiff_t>(next),
                                 cells.begin() + static_cast<std::ptrdiff_t>(next + m.pixels()));
          next += m.pixels();
          return map;
        });
        exact.ms_per_image = ms;
      } else {
        amq::knn::KnnScorer knn;
        knn.fit(views(set.train));
        exact = evaluate(set, [&](const amq::FeatureMap& m) { return knn.score(m); });
        bank_bytes = static_cast<double>(knn.index_bytes());
        std::ofstream out(knn_cache, std::ios::binary);
        const std::uint64_t count = exact.cells.size();
        out.write(reinterpret_cast<const char*>(&count), 8);
        out.write(reinterpret_cast<const char*>(&exact.ms_per_image), 8);
        out.write(reinterpret_cast<const char*>(&bank_bytes), 8);
        out.write(reinterpret_cast<const char*>(exact.cells.data()),
                  static_cast<std::streamsize>(count * 4));
      }
      std::printf(
          "| config | image AUROC (mean) | image AUROC (max) | pixel AUROC |"
          " score ms/image | rank corr. with NN distance | filter MiB |\n"
          "|---|---:|---:|---:|---:|---:|---:|\n");
      std::printf("| exact kNN (Faiss flat) | %.4f | %.4f | %.4f | %.1f | 1 | %.1f (bank) |\n",
                  exact.image_mean, exact.image_max, exact.pixel, exact.ms_per_image,
                  bank_bytes / 1048576.0);
      std::fflush(stdout);

      const auto report = [&](const std::string& name, const Evaluation& e, double mib) {
        std::printf("| %s | %.4f | %.4f | %.4f | %.1f | %.3f | %.0f |\n", name.c_str(),
                    e.image_mean, e.image_max, e.pixel, e.ms_per_image,
                    spearman(e.cells, exact.cells), mib);
        std::fflush(stdout);
      };
      for (const double width : widths) {
        amq::AmqScorer<> single(paper_params(depth, width * sigma));
        single.fit(views(set.train));
        report("single radius, eps = " + format_number(width) + " sigma",
               evaluate(set, [&](const amq::FeatureMap& m) { return single.score(m); }),
               static_cast<double>(single.filter().size_bytes()) / 1048576.0);
      }
      // One fit per base width; both radius rules are read from the same found fractions.
      for (const double base : widths) {
        amq::MultiRadiusParams params;
        params.radii = 4;
        params.scorer = paper_params(depth, base * sigma);
        params.scorer.filter_bits *= params.radii;  // the same bits per radius
        amq::MultiRadiusScorer<> multi(params);
        multi.fit(views(set.train));
        const double mib = static_cast<double>(multi.filter().size_bytes()) / 1048576.0;
        const std::string name = "R = 4, eps0 = " + format_number(base) + " sigma, ";
        for (const amq::RadiusRule rule :
             {amq::RadiusRule::not_found_mean, amq::RadiusRule::first_found}) {
          report(name + amq::to_string(rule),
                 evaluate(set,
                          [&](const amq::FeatureMap& m) {
                            std::vector<float> fractions(m.pixels() * multi.radii());
                            multi.found_fractions(m, fractions.data());
                            std::vector<float> scores(m.pixels());
                            for (std::size_t p = 0; p < m.pixels(); ++p) {
                              scores[p] = amq::multi_radius_score(
                                  fractions.data() + p * multi.radii(), multi.radii(), rule,
                                  params.found_threshold);
                            }
                            return scores;
                          }),
                 mib);
        }
      }
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
