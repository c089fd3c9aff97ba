/// @file compare.hpp
/// @brief `amq compare`: AMQ and the PatchCore-style kNN baselines trained and tested on the
/// same features of one MVTec AD category, side by side in one table.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "commands.hpp"

namespace amq::cli {

/// Options of `amq compare`.
struct CompareOptions {
  std::filesystem::path data;     ///< Category folder (train/good, test, ground_truth).
  std::filesystem::path weights;  ///< Backbone weights (safetensors).
  /// Methods to compare, in table order ("amq", "knn-flat", "knn-hnsw", "knn-ivfpq").
  std::vector<std::string> methods = {"amq", "knn-flat", "knn-hnsw", "knn-ivfpq"};
  /// Backbone, hold-out, smoothing and every method's parameters, as `amq train` takes them
  /// (its `data`, `method` and `out` are not used).
  TrainOptions settings;
  /// Feature cache: read when it exists and matches, else written after extraction; empty =
  /// extract without keeping the features.
  std::filesystem::path features;
  std::filesystem::path report;  ///< JSON report to write; empty = none.
  bool extract_only = false;      ///< Only extract and cache the features (needs `features`).
};

/// Extracts the features of `data` once (or reads them from the cache), then trains and tests
/// each method on them and prints one table: accuracy, time per image, memory; and the ratios
/// of AMQ to kNN-HNSW in scoring time and memory.
void run_compare(const CompareOptions& options);

}  // namespace amq::cli
