// Which MobileNetV2 layers make a good feature map? Trains an AmqScorer on one MVTec AD
// category for several layer sets, with and without the 3×3 local average, and prints image and
// pixel AUROC. The candidate layers are extracted once per setting and sliced by channel.
// Usage: amq_layer_study MOBILENET_WEIGHTS CATEGORY_DIR [HASHES] [BUCKET_WIDTHS...]
// Bucket widths are in units of the training features' spread (default 0.5 1 2).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "amq/amq.hpp"
#include "feature_source.hpp"

namespace fs = std::filesystem;
using namespace amq::features;

namespace {

// The candidate layers in extraction order, with their channel counts.
const std::vector<std::pair<std::string, std::size_t>> candidates = {
    {"features.6", 32}, {"features.13", 96}, {"features.16", 160}, {"features.17", 320}};

// Side of the grid on which pixel AUROC is computed (masks and score maps resampled to it).
constexpr std::size_t mask_side = 224;

struct Sample {
  cv::Mat rgb;
  bool anomalous = false;
  std::vector<std::uint8_t> mask;  // mask_side², 1 = defect
};

std::vector<fs::path> sorted_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

cv::Mat read_rgb(const fs::path& path) {
  const cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
  AMQ_EXPECTS(!bgr.empty(), "cannot read image " << path);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

std::vector<std::uint8_t> read_mask(const fs::path& path) {
  std::vector<std::uint8_t> mask(mask_side * mask_side, 0);
  if (path.empty()) return mask;
  const cv::Mat full = cv::imread(path.string(), cv::IMREAD_GRAYSCALE);
  AMQ_EXPECTS(!full.empty(), "cannot read mask " << path);
  cv::Mat small;
  cv::resize(full, small, cv::Size(mask_side, mask_side), 0, 0, cv::INTER_NEAREST);
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = small.data[i] > 127 ? 1 : 0;
  return mask;
}

std::vector<FeatureMapBuffer> extract(FeatureSource& source, const std::vector<cv::Mat>& images) {
  std::vector<RgbImage> views;
  for (const cv::Mat& image : images) {
    views.push_back(
        {image.data, static_cast<std::size_t>(image.cols), static_cast<std::size_t>(image.rows)});
  }
  return source.extract_batch(views);
}

// The channels [first, first + count) of every pixel of `map`.
std::vector<float> slice(const FeatureMapBuffer& map, const std::vector<std::size_t>& ranges) {
  std::vector<float> out;
  for (std::size_t p = 0; p < map.width * map.height; ++p) {
    for (std::size_t r = 0; r < ranges.size(); r += 2) {
      const float* first = map.data.data() + p * map.depth + ranges[r];
      out.insert(out.end(), first, first + ranges[r + 1]);
    }
  }
  return out;
}

// The root mean square per-channel standard deviation: the spread of a projection onto a
// random unit direction, which sets the scale of the bucket width.
double spread(const std::vector<std::vector<float>>& maps, std::size_t depth) {
  std::vector<double> sum(depth, 0.0);
  std::vector<double> squares(depth, 0.0);
  double count = 0.0;
  for (const auto& map : maps) {
    for (std::size_t i = 0; i < map.size(); ++i) {
      sum[i % depth] += map[i];
      squares[i % depth] += double(map[i]) * map[i];
    }
    count += static_cast<double>(map.size() / depth);
  }
  double trace = 0.0;
  for (std::size_t c = 0; c < depth; ++c) {
    trace += squares[c] / count - (sum[c] / count) * (sum[c] / count);
  }
  return std::sqrt(trace / static_cast<double>(depth));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MOBILENET_WEIGHTS CATEGORY_DIR [HASHES] [WIDTHS...]\n",
                 argv[0]);
    return 2;
  }
  const std::string weights = argv[1];
  const fs::path category = argv[2];
  const std::size_t hashes = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 1024;
  std::vector<double> widths;
  for (int i = 4; i < argc; ++i) widths.push_back(std::strtod(argv[i], nullptr));
  if (widths.empty()) widths = {0.5, 1.0, 2.0};

  try {
    std::vector<cv::Mat> train;
    for (const fs::path& file : sorted_files(category / "train" / "good")) {
      train.push_back(read_rgb(file));
    }
    std::vector<Sample> test;
    for (const fs::path& kind : sorted_files(category / "test")) {
      for (const fs::path& file : sorted_files(kind)) {
        Sample sample;
        sample.rgb = read_rgb(file);
        sample.anomalous = kind.filename() != "good";
        const fs::path mask =
            category / "ground_truth" / kind.filename() / (file.stem().string() + "_mask.png");
        sample.mask = read_mask(sample.anomalous ? mask : fs::path());
        test.push_back(std::move(sample));
      }
    }
    std::vector<cv::Mat> test_images;
    for (const Sample& s : test) test_images.push_back(s.rgb);
    std::printf("%zu training images, %zu test images, G = %zu\n", train.size(), test.size(),
                hashes);

    const std::vector<std::vector<std::string>> layer_sets = {
        {"features.6", "features.13", "features.16"},
        {"features.6", "features.13"},
        {"features.6", "features.13", "features.17"},
        {"features.6", "features.13", "features.16", "features.17"},
        {"features.6"}};
    std::printf("| layers | D | local average | ε / spread | image AUROC | pixel AUROC |\n");
    std::printf("|---|---|---|---|---|---|\n");
    for (const bool local_average : {false, true}) {
      FeatureOptions options = default_options(Backbone::mobilenet_v2);
      options.layers.clear();
      for (const auto& candidate : candidates) options.layers.push_back(candidate.first);
      options.local_average = local_average;
      auto source = make_feature_source(Backbone::mobilenet_v2, weights, options);
      const std::vector<FeatureMapBuffer> train_maps = extract(*source, train);
      const std::vector<FeatureMapBuffer> test_maps = extract(*source, test_images);
      const std::size_t side = source->width();

      for (const auto& layers : layer_sets) {
        std::vector<std::size_t> ranges;
        std::size_t depth = 0;
        std::string name;
        for (const std::string& layer : layers) {
          std::size_t offset = 0;
          for (const auto& candidate : candidates) {
            if (candidate.first == layer) {
              ranges.push_back(offset);
              ranges.push_back(candidate.second);
              depth += candidate.second;
            }
            offset += candidate.second;
          }
          name += (name.empty() ? "" : "+") + layer.substr(9);
        }
        std::vector<std::vector<float>> train_data;
        for (const auto& map : train_maps) train_data.push_back(slice(map, ranges));
        std::vector<std::vector<float>> test_data;
        for (const auto& map : test_maps) test_data.push_back(slice(map, ranges));
        const double s = spread(train_data, depth);

        for (const double factor : widths) {
          amq::ScorerParams params;
          params.lsh.dim = depth;
          params.lsh.hashes = hashes;
          params.lsh.bucket_width = static_cast<float>(factor * s);
          params.lsh.seed = 1;
          params.sizing = amq::SizingRule::target_fpr;
          amq::AmqScorer<> scorer(params);
          std::vector<amq::FeatureMap> fit_maps;
          for (const auto& data : train_data) fit_maps.push_back({data.data(), side, side, depth});
          scorer.fit(fit_maps);

          std::vector<float> image_scores;
          std::vector<std::uint8_t> image_labels;
          std::vector<float> pixel_scores;
          std::vector<std::uint8_t> pixel_labels;
          for (std::size_t i = 0; i < test.size(); ++i) {
            const std::vector<float> map = scorer.score({test_data[i].data(), side, side, depth});
            image_scores.push_back(scorer.image_score(map.data()));
            image_labels.push_back(test[i].anomalous ? 1 : 0);
            const std::vector<float> upsampled =
                amq::upsample_nearest(map.data(), side, side, mask_side, mask_side);
            pixel_scores.insert(pixel_scores.end(), upsampled.begin(), upsampled.end());
            pixel_labels.insert(pixel_labels.end(), test[i].mask.begin(), test[i].mask.end());
          }
          std::printf("| %s | %zu | %s | %.2f | %.3f | %.3f |\n", name.c_str(), depth,
                      local_average ? "yes" : "no", factor, amq::auroc(image_scores, image_labels),
                      amq::auroc(pixel_scores, pixel_labels));
          std::fflush(stdout);
        }
      }
    }
  } catch (const amq::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
