/// @file methods.hpp
/// @brief The scorers `amq train` and `amq compare` make from their options: AMQ (the paper's
/// method, with either filter) or the PatchCore-style kNN baseline with a flat, HNSW or IVFPQ
/// Faiss index, and what the model's metadata records about each.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "pipeline.hpp"

namespace amq::cli {

/// True for the kNN methods ("knn-flat", "knn-hnsw", "knn-ivfpq").
bool is_knn_method(const std::string& method);

/// Refuses, before any work, an unknown method and parameters the method cannot use (an
/// image-score rule other than mean or max, a coreset ratio outside (0, 1], kNN index
/// parameters that Faiss would refuse).
void check_method_options(const TrainOptions& options);

/// The image-score rule of `options`: as given, else the method's own (AMQ: mean, as the paper;
/// kNN: max, as PatchCore).
std::string image_score_rule(const TrainOptions& options);

/// A scorer of the method of `options` for feature maps of `depth` channels, ready to collect.
/// `bucket_width` is the absolute bucket width ε (AMQ only).
AnyScorer make_method_scorer(const TrainOptions& options, std::size_t depth, float bucket_width);

/// The "method" entry of a model's metadata: the method's name and every parameter it was
/// trained with (for AMQ also the projection spread σ the bucket width was measured in).
nlohmann::json method_json(const TrainOptions& options, float bucket_width, double spread);

/// One line for the training log about a built scorer, from the metadata build_scorer gave.
std::string build_summary(const AnyScorer& scorer, const nlohmann::json& built);

}  // namespace amq::cli
