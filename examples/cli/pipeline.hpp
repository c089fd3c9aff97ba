/// @file pipeline.hpp
/// @brief The detector the command line trains, stores and runs: a feature source (backbone,
/// preprocessing) and a scorer (AmqScorer, or the kNN baseline it is compared with), with the
/// settings and threshold that go with them, and the scoring of one image file with the time of
/// each stage, on the CPU or (AMQ, CUDA builds) on a GPU.
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
#include "amq/error.hpp"
#include "feature_source.hpp"
#include "heatmap.hpp"
#include "knn/knn_scorer.hpp"
#include "report.hpp"

namespace amq {
class CudaAmqScorer;
}

namespace amq::cli {

/// The scorer with the paper's dense projection and classic Bloom filter.
using ClassicScorer = AmqScorer<LshEncoder<>, BloomFilter<ClassicBloom>>;
/// The scorer with the split-block Bloom filter (one cache line per probe).
using SplitBlockScorer = AmqScorer<LshEncoder<>, BloomFilter<SplitBlockBloom>>;
/// The same two filters behind the structured (Walsh-Hadamard) projection.
using StructuredClassicScorer =
    AmqScorer<LshEncoder<StructuredProjection>, BloomFilter<ClassicBloom>>;
using StructuredSplitBlockScorer =
    AmqScorer<LshEncoder<StructuredProjection>, BloomFilter<SplitBlockBloom>>;
/// The scorer of a model: AMQ with either projection and filter policy, or the PatchCore-style
/// kNN baseline (the memory bank in a Faiss index). `amq train --method` chooses.
using AnyScorer = std::variant<ClassicScorer, SplitBlockScorer, StructuredClassicScorer,
                               StructuredSplitBlockScorer, knn::KnnScorer>;

/// The AMQ scorer of a filter ("classic" or "split-block") and a projection ("dense" or
/// "structured"): make(static_cast<Scorer*>(nullptr)) for that scorer type. `origin` prefixes the
/// message of an unknown name (the model file it was read from, or nothing for an option).
template <class Make>
AnyScorer make_amq_scorer(const std::string& filter, const std::string& projection,
                          const std::string& origin, Make make) {
  AMQ_EXPECTS(filter == "classic" || filter == "split-block",
              origin << "unknown filter '" << filter << "' (expected classic or split-block)");
  AMQ_EXPECTS(projection == "dense" || projection == "structured",
              origin << "unknown projection '" << projection
                     << "' (expected dense or structured)");
  const bool split_block = filter == "split-block";
  if (projection == "structured") {
    if (split_block) return make(static_cast<StructuredSplitBlockScorer*>(nullptr));
    return make(static_cast<StructuredClassicScorer*>(nullptr));
  }
  if (split_block) return make(static_cast<SplitBlockScorer*>(nullptr));
  return make(static_cast<ClassicScorer*>(nullptr));
}

/// The methods `amq train --method` knows: "amq", "knn-flat", "knn-hnsw", "knn-ivfpq".
inline const char* const method_names[] = {"amq", "knn-flat", "knn-hnsw", "knn-ivfpq"};

/// The method name of a scorer ("amq" or "knn-<index>").
std::string method_name(const AnyScorer& scorer);

/// The scorer's serialized bytes: AmqScorer::to_bytes, or what KnnScorer::save writes.
std::vector<std::uint8_t> scorer_bytes(const AnyScorer& scorer);

/// The scorer from the bytes of `scorer_bytes`, for the method, filter policy and projection
/// the model's metadata names; `name` stands for the bytes' origin in error messages.
AnyScorer scorer_from_bytes(const std::vector<std::uint8_t>& bytes, const std::string& method,
                            const std::string& filter, const std::string& projection,
                            const std::string& name);

/// Width W, height H and depth D of the feature maps a scorer was trained on.
struct MapShape {
  std::size_t width = 0;   ///< W.
  std::size_t height = 0;  ///< H.
  std::size_t depth = 0;   ///< D.
};

/// The feature-map shape the scorer was trained on.
MapShape scorer_shape(const AnyScorer& scorer);

/// Bytes of the structure that answers the queries: the Bloom filter (M/8) or the Faiss index.
std::size_t query_structure_bytes(const AnyScorer& scorer);

/// One line naming the method and the parameters of its search, for reports: e.g.
/// "amq: G = 2048, classic filter of 2^28 bits, B = 1" or "knn-hnsw: HNSW M = 32, ...".
std::string describe_scorer(const AnyScorer& scorer);

/// The sizing report of an AMQ scorer; throws amq::Error naming the method for a kNN one.
SizingReport amq_sizing(const AnyScorer& scorer);

/// AMQ's sizing figures as model metadata.
nlohmann::json sizing_json(const SizingReport& sizing);

/// Builds the filter or index once every training map is collected. Returns what the model's
/// metadata records about it: AMQ's sizing figures or the kNN index figures.
nlohmann::json build_scorer(AnyScorer& scorer);

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
  nlohmann::json metadata;                          ///< Everything the model file records.
  FeatureSettings settings;                         ///< Feature source settings.
  std::unique_ptr<features::FeatureSource> source;  ///< The backbone.
  AnyScorer scorer;                                 ///< The AMQ or kNN scorer.
  float threshold = 0.0f;                           ///< Image scores above it are anomalous.
  HeatmapStyle style;                               ///< Colour range of heatmaps.
  /// Standard deviation, in feature-map pixels, of the Gaussian that smooths score maps before
  /// bilinear upsampling; 0 keeps the paper's nearest-neighbour upsampling.
  double smooth_sigma = 0.0;
  /// The AMQ scorer's copy on a GPU when scoring with `--device cuda` (see use_device); null:
  /// the CPU scores.
  std::shared_ptr<CudaAmqScorer> device;
};

/// Chooses where `detector` scores: "cpu", or "cuda" for an AMQ model in a build with the CUDA
/// facade. Throws amq::Error for another name, for "cuda" in a build without CUDA, for a kNN
/// model, or when no GPU is usable.
void use_device(Detector& detector, const std::string& device);

/// A W × H score map at `width` × `height`: nearest-neighbour upsampling when `sigma` is 0 (the
/// paper), else Gaussian smoothing of the map with standard deviation `sigma` map pixels
/// followed by bilinear upsampling, which orders the pixels within a map cell by their
/// neighbours' scores.
std::vector<float> upsample_score_map(const std::vector<float>& map, std::size_t map_width,
                                      std::size_t map_height, std::size_t width, std::size_t height,
                                      double sigma);

/// Reads a model file and rebuilds its feature source. Throws amq::Error when the file is not a
/// model, is corrupt, or when the weights file differs from the one it was trained with
/// (`weights_override` replaces the stored path).
Detector load_detector(const std::filesystem::path& model_path,
                       const std::filesystem::path& weights_override);

/// The scores of one image: the part of the image the features cover, its full-resolution
/// score map and its image score.
struct ScoredImage {
  cv::Mat rgb;                   ///< The covered part of the image, 8-bit RGB.
  cv::Rect region;               ///< Where that part lies in the image.
  std::size_t image_width = 0;   ///< The whole image's width.
  std::size_t image_height = 0;  ///< The whole image's height.
  std::vector<float> scores;     ///< Score map upsampled to region size, row-major.
  float image_score = 0.0f;      ///< Image score by the model's rule.
};

/// The score map of a feature map, timed by stage. AMQ: the LSH codes of every pixel
/// (encode), then the filter probes, s = 1 − (1/G) Σ_k E_k (eq. 6) (query); kNN: the nearest-
/// neighbour search (query), each pixel's L2 distance to the memory bank.
std::vector<float> score_feature_map(const AnyScorer& scorer, const FeatureMap& map,
                                     StageTimes& times);

/// The image score of a W × H score map seen at `width` × `height`, by the scorer's rule.
float scorer_image_score(const AnyScorer& scorer, const std::vector<float>& map, std::size_t width,
                         std::size_t height);

/// The part of a `width` × `height` image that the source's feature map covers, in whole
/// pixels and clipped to the image: the pixels a test scores. Throws amq::Error when empty.
cv::Rect scored_region(const features::FeatureSource& source, std::size_t width,
                       std::size_t height);

/// Reads, encodes and scores one image file, adding each stage's time to `times`.
ScoredImage score_image(Detector& detector, const std::filesystem::path& path, StageTimes& times);

/// A heatmap as PNG bytes, with the defect outlined when `mask` (region-sized) is not null. The
/// colours span the model's heatmap range, stretched up to the image's largest score.
std::vector<unsigned char> heatmap_png(const Detector& detector, const ScoredImage& image,
                                       const std::uint8_t* mask);

}  // namespace amq::cli
