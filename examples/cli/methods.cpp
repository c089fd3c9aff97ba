#include "methods.hpp"

#include <cstdio>
#include <type_traits>
#include <utility>

#include "amq/error.hpp"
#include "resources.hpp"

namespace amq::cli {
namespace {

ImageScore parse_rule(const std::string& name) {
  if (name == "max") return ImageScore::max;
  AMQ_EXPECTS(name == "mean", "unknown image score '" << name << "' (expected mean or max)");
  return ImageScore::mean;
}

knn::KnnParams knn_params(const TrainOptions& o) {
  knn::KnnParams p;
  p.index = knn::parse_index_kind(o.method.substr(4));
  p.image_score = parse_rule(image_score_rule(o));
  p.hnsw_m = o.hnsw_m;
  p.ef_construction = o.ef_construction;
  p.ef_search = o.ef_search;
  p.nlist = o.nlist;
  p.pq_m = o.pq_m;
  p.pq_nbits = o.pq_nbits;
  p.nprobe = o.nprobe;
  p.use_coreset = o.coreset > 0.0;
  if (p.use_coreset) p.coreset.ratio = o.coreset;
  p.coreset.seed = o.seed;
  p.seed = o.seed;
  return p;
}

ScorerParams amq_params(const TrainOptions& o, std::size_t depth, float bucket_width) {
  ScorerParams params;
  params.lsh.dim = depth;
  params.lsh.hashes = o.hashes;
  params.lsh.bucket_width = bucket_width;
  params.lsh.seed = o.seed;
  params.filter_seed = static_cast<std::uint32_t>(o.seed);
  params.sizing = o.target_fpr > 0.0 ? SizingRule::target_fpr : SizingRule::paper;
  params.filter_bits = o.filter_bits;
  if (o.target_fpr > 0.0) params.target_fpr = o.target_fpr;
  params.probes = o.probes;
  params.codes_per_key = o.codes_per_key;
  params.image_score = parse_rule(image_score_rule(o));
  return params;
}

}  // namespace

bool is_knn_method(const std::string& method) {
  return method == "knn-flat" || method == "knn-hnsw" || method == "knn-ivfpq";
}

void check_method_options(const TrainOptions& o) {
  AMQ_EXPECTS(
      o.method == "amq" || is_knn_method(o.method),
      "unknown method '" << o.method << "' (expected amq, knn-flat, knn-hnsw or knn-ivfpq)");
  parse_rule(image_score_rule(o));
  AMQ_EXPECTS(o.coreset >= 0.0 && o.coreset <= 1.0,
              "--coreset must lie in (0, 1] (0: no coreset), got " << o.coreset);
  AMQ_EXPECTS(o.coreset == 0.0 || is_knn_method(o.method),
              "--coreset subsamples a kNN memory bank; method '" << o.method << "' has none");
  // The kNN scorer checks its parameters when it is made.
  if (is_knn_method(o.method)) knn::KnnScorer check(knn_params(o));
}

std::string image_score_rule(const TrainOptions& o) {
  if (!o.image_score.empty()) return o.image_score;
  return is_knn_method(o.method) ? "max" : "mean";
}

AnyScorer make_method_scorer(const TrainOptions& o, std::size_t depth, float bucket_width) {
  if (is_knn_method(o.method)) {
    return AnyScorer(std::in_place_type<knn::KnnScorer>, knn_params(o));
  }
  const ScorerParams params = amq_params(o, depth, bucket_width);
  return make_amq_scorer(o.filter, o.projection, "", [&](auto* tag) {
    return AnyScorer(std::in_place_type<std::remove_pointer_t<decltype(tag)>>, params);
  });
}

nlohmann::json method_json(const TrainOptions& o, float bucket_width, double spread) {
  if (is_knn_method(o.method)) {
    const knn::KnnParams p = knn_params(o);
    nlohmann::json json = {
        {"name", o.method},
        {"index", knn::to_string(p.index)},
        {"image_score", image_score_rule(o)},
        {"smooth_sigma", o.smooth_sigma},
        {"coreset", o.coreset > 0.0 ? nlohmann::json(o.coreset) : nlohmann::json(nullptr)},
        {"seed", o.seed}};
    if (p.index == knn::IndexKind::hnsw) {
      json["hnsw_m"] = p.hnsw_m;
      json["ef_construction"] = p.ef_construction;
      json["ef_search"] = p.ef_search;
    } else if (p.index == knn::IndexKind::ivfpq) {
      json["nlist"] = p.nlist;
      json["pq_m"] = p.pq_m;
      json["pq_nbits"] = p.pq_nbits;
      json["nprobe"] = p.nprobe;
    }
    return json;
  }
  return {
      {"name", "amq"},
      {"hashes", o.hashes},
      {"bucket_width", bucket_width},
      {"bucket_width_in_spreads",
       o.absolute_bucket_width > 0.0 ? nlohmann::json(nullptr) : nlohmann::json(o.bucket_width)},
      {"projection_spread", spread},
      {"seed", o.seed},
      {"codes_per_key", o.codes_per_key},
      {"filter", o.filter},
      {"projection", o.projection},
      {"image_score", image_score_rule(o)},
      {"smooth_sigma", o.smooth_sigma}};
}

std::string build_summary(const AnyScorer& scorer, const nlohmann::json& built) {
  char line[256];
  if (std::holds_alternative<knn::KnnScorer>(scorer)) {
    std::snprintf(line, sizeof line, "%s index of %zu features (of %zu collected), %s",
                  method_name(scorer).c_str(), built.at("indexed_features").get<std::size_t>(),
                  built.at("collected_features").get<std::size_t>(),
                  format_bytes(built.at("index_bytes").get<std::size_t>()).c_str());
    return line;
  }
  const SizingReport s = amq_sizing(scorer);
  std::snprintf(line, sizeof line,
                "filter of %llu bits (%s), %u probes, %llu distinct of %llu keys, estimated "
                "false-positive rate %.3g",
                static_cast<unsigned long long>(s.bits), format_bytes(s.bits / 8).c_str(), s.probes,
                static_cast<unsigned long long>(s.distinct_keys),
                static_cast<unsigned long long>(s.total_keys), s.estimated_fpr);
  return line;
}

}  // namespace amq::cli
