/// @file pipeline.hpp
/// @brief The detector the command line trains, stores and runs: a feature source (backbone,
/// preprocessing) and an AmqScorer, with the settings and threshold that go with them, and the
/// scoring of one image file with the time of each stage.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "amq/amq_scorer.hpp"
#include "feature_source.hpp"
#include "heatmap.hpp"
#include "report.hpp"

namespace amq::cli {

/// The scorer with the paper's classic Bloom filter.
using ClassicScorer = AmqScorer<LshEncoder<>, BloomFilter<ClassicBloom>>;
/// The scorer with the split-block Bloom filter (one cache line per probe).
using SplitBlockScorer = AmqScorer<LshEncoder<>, BloomFilter<SplitBlockBloom>>;
/// Either scorer; the filter policy is chosen on the command line.
using AnyScorer = std::variant<ClassicScorer, SplitBlockScorer>;

/// The scorer's serialized bytes, as AmqScorer::save writes them.
std::vector<std::uint8_t> scorer_bytes(const AnyScorer& scorer);

/// What makes a feature source: backbone, weights file and options. Stored in the model so
/// that testing computes exactly the features that training did.
struct FeatureSettings {
  std::string backbone = "mobilenet_v2";  ///< "mobilenet_v2" or "wide_resnet50_2".
  std::filesystem::path weights;          ///< Safetensors weights file.
  features::FeatureOptions options;       ///< Layers, input size, framing, local averaging.

  /// The settings as model metadata (weights by absolute path, size and checksum).
  nlohmann::json to_json() const;
  /// Settings read from model metadata; `weights_override`, when not empty, replaces the
  /// stored weights path. Throws amq::Error for missing or malformed fields.
  static FeatureSettings from_json(const nlohmann::json& json,
                                   const std::filesystem::path& weights_override);
};

/// Size and FNV-1a 64 checksum of a file, to recognise the weights a model was trained with.
nlohmann::json file_fingerprint(const std::filesystem::path& path);

/// Builds the feature source of `settings`; throws amq::Error naming a bad weights file.
std::unique_ptr<features::FeatureSource> make_source(const FeatureSettings& settings);

/// The standard deviation of the projection of a feature vector onto a random unit direction,
/// sqrt(trace(covariance) / D), estimated from `maps`. The bucket width is given in multiples of
/// it, so that one setting suits backbones and layers whose features differ in scale.
double projection_spread(const std::vector<features::FeatureMapBuffer>& maps);

/// A trained detector, ready to score images.
struct Detector {
  nlohmann::json metadata;                           ///< Everything the model file records.
  FeatureSettings settings;                          ///< Feature source settings.
  std::unique_ptr<features::FeatureSource> source;   ///< The backbone.
  AnyScorer scorer;                                  ///< The AMQ scorer.
  float threshold = 0.0f;                            ///< Image scores above it are anomalous.
  HeatmapStyle style;                                ///< Colour range of heatmaps.
  /// Standard deviation, in feature-map pixels, of the Gaussian that smooths score maps before
  /// bilinear upsampling; 0 keeps the paper's nearest-neighbour upsampling.
  double smooth_sigma = 0.0;
};

/// A W × H score map at `width` × `height`: nearest-neighbour upsampling when `sigma` is 0 (the
/// paper), else Gaussian smoothing of the map with standard deviation `sigma` map pixels
/// followed by bilinear upsampling, which orders the pixels within a map cell by their
/// neighbours' scores.
std::vector<float> upsample_score_map(const std::vector<float>& map, std::size_t map_width,
                                      std::size_t map_height, std::size_t width,
                                      std::size_t height, double sigma);

/// Reads a model file and rebuilds its feature source. Throws amq::Error when the file is not a
/// model, is corrupt, or when the weights file differs from the one it was trained with
/// (`weights_override` replaces the stored path).
Detector load_detector(const std::filesystem::path& model_path,
                       const std::filesystem::path& weights_override);

/// The scores of one image: the part of the image the features cover, its full-resolution
/// score map and its image score.
struct ScoredImage {
  cv::Mat rgb;               ///< The covered part of the image, 8-bit RGB.
  cv::Rect region;           ///< Where that part lies in the image.
  std::size_t image_width = 0;   ///< The whole image's width.
  std::size_t image_height = 0;  ///< The whole image's height.
  std::vector<float> scores;     ///< Score map upsampled to region size, row-major.
  float image_score = 0.0f;      ///< Image score by the model's rule.
};

/// The score map of a feature map, split into its two steps so that each can be timed:
/// LSH codes of every pixel, then the filter probes, s = 1 − (1/G) Σ_k E_k (eq. 6).
std::vector<float> score_feature_map(const AnyScorer& scorer, const FeatureMap& map,
                                     StageTimes& times);

/// Reads, encodes and scores one image file, adding each stage's time to `times`.
ScoredImage score_image(Detector& detector, const std::filesystem::path& path,
                        StageTimes& times);

/// A heatmap as PNG bytes, with the defect outlined when `mask` (region-sized) is not null. The
/// colours span the model's heatmap range, stretched up to the image's largest score.
std::vector<unsigned char> heatmap_png(const Detector& detector, const ScoredImage& image,
                                       const std::uint8_t* mask);

}  // namespace amq::cli
