/// @file commands.hpp
/// @brief The three commands of `amq`: train, test and score, with their options.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace amq::cli {

/// Options of `amq train`.
struct TrainOptions {
  std::vector<std::filesystem::path> data;  ///< Category folders; their train/good images.
  std::string backbone = "mobilenet_v2";    ///< Feature source.
  std::filesystem::path weights;            ///< Backbone weights (safetensors).
  std::vector<std::string> layers;          ///< Backbone layers; empty = its default.
  std::size_t image_size = 224;             ///< Side of the square network input.
  bool local_average = false;               ///< 3×3 averaging of each layer (PatchCore).
  /// "amq", or a kNN baseline to compare with: "knn-flat", "knn-hnsw", "knn-ivfpq".
  std::string method = "amq";
  std::size_t hashes = 2048;           ///< G.
  double bucket_width = 0.03;          ///< ε in multiples of the projection spread.
  double absolute_bucket_width = 0.0;  ///< ε as is, when positive.
  std::uint64_t filter_bits = std::uint64_t{1} << 28;  ///< M for the paper's eq. 5.
  double target_fpr = 0.0;           ///< When positive, size by distinct keys instead.
  std::uint32_t probes = 0;          ///< B override; 0 = the sizing rule's.
  std::uint32_t codes_per_key = 1;   ///< K, codes per key (AND); 1 = the paper.
  std::string filter = "classic";    ///< "classic" or "split-block".
  std::string projection = "dense";  ///< "dense" (the paper) or "structured".
  std::uint64_t seed = 0;            ///< Seed of the projection and the filter.
  std::string image_score;           ///< "mean" or "max"; empty = the method's own
                                     ///< (AMQ: mean, as the paper; kNN: max, PatchCore).
  double coreset = 0.0;              ///< kNN: coreset ratio in (0, 1]; 0 = whole bank.
  int hnsw_m = 32;                   ///< kNN HNSW: neighbours per graph node.
  int ef_construction = 64;          ///< kNN HNSW: candidate list while building.
  int ef_search = 64;                ///< kNN HNSW: candidate list while searching.
  int nlist = 1024;                  ///< kNN IVFPQ: coarse cells.
  int pq_m = 32;                     ///< kNN IVFPQ: sub-quantisers (must divide D).
  int pq_nbits = 8;                  ///< kNN IVFPQ: bits per sub-quantiser code.
  int nprobe = 16;                   ///< kNN IVFPQ: cells visited per query.
  double holdout = 0.1;              ///< Fraction of normal images kept out to set the
                                     ///< threshold.
  std::size_t batch_size = 8;        ///< Images per forward pass.
  double smooth_sigma = 1.0;         ///< Score-map smoothing; 0 = nearest neighbour.
  std::filesystem::path out;         ///< Model file to write.
  /// A model to add the images of `data` to (`--resume`); empty = train a new model.
  std::filesystem::path resume;
  /// The options given that a model fixes (backbone, method, hold-out, ...), as written on
  /// the command line; `--resume` refuses them.
  std::vector<std::string> model_options;
};

/// Options of `amq test`.
struct TestOptions {
  std::filesystem::path model;     ///< Model file.
  std::filesystem::path data;      ///< Category folder; its test/ and ground_truth/.
  std::filesystem::path weights;   ///< Replaces the weights path stored in the model.
  std::filesystem::path report;    ///< JSON report to write; empty = none.
  std::filesystem::path heatmaps;  ///< Folder for heatmaps; empty = none.
  double smooth_sigma = -1.0;      ///< Replaces the stored smoothing when not negative.
  std::string device = "cpu";      ///< Where AMQ scores: "cpu" or "cuda".
};

/// Options of `amq score`.
struct ScoreOptions {
  std::filesystem::path model;                ///< Model file.
  std::vector<std::filesystem::path> images;  ///< Images to score.
  std::filesystem::path weights;              ///< Replaces the stored weights path.
  std::filesystem::path heatmaps;             ///< Folder for heatmaps; empty = none.
  double smooth_sigma = -1.0;                 ///< Replaces the stored smoothing when not
                                              ///< negative.
  std::string device = "cpu";                 ///< Where AMQ scores: "cpu" or "cuda".
};

/// Fits a model on normal images and writes it, or with `resume` adds normal images to a
/// model; progress on stderr, summary on stdout.
void run_train(const TrainOptions& options);
/// Scores a test set, prints the metrics table and writes the report and heatmaps.
void run_test(const TestOptions& options);
/// Prints the image score and verdict of each image and writes their heatmaps.
void run_score(const ScoreOptions& options);

}  // namespace amq::cli
