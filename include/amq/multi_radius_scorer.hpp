/// @file multi_radius_scorer.hpp
/// @brief MultiRadiusScorer: AMQ membership tests at R geometric bucket widths ε·2^i,
/// i = 0 … R−1, so that a pixel's score follows its nearest-neighbour distance over a range of
/// 2^R instead of saturating outside a band around one width.
///
/// This is the classic reduction of nearest-neighbour search to near-neighbour tests at
/// geometric radii. One projection serves every radius: w_k · x is computed once and quantised
/// R times, h_k^i(x) = floor((w_k · x + 2^i b_k) / (2^i ε)), so the offsets stay uniform in
/// [0, 2^i ε) and the extra cost per radius is quantisation and G/K probes, constant per pixel.
/// All radii share one Bloom filter: the key of table t at radius i carries the table index
/// i·(G/K) + t, so keys of different radii never coincide.
///
/// The score. Let f_i be the fraction of a pixel's G/K keys found at radius i. For a pixel at
/// distance c from the normal data, 1 − f_i is a smoothed step in log2(c/ε) that rises near
/// i (the code of one direction differs once |w·(x − y)| is comparable to the width 2^i ε).
/// The default rule, RadiusRule::not_found_mean, averages these steps:
///     s = (1/R) Σ_i (1 − f_i),
/// a sum of shifted steps, i.e. about (log2(c/ε) + const) / R for c in [ε, 2^R ε]: a monotone
/// estimate of the NN distance on a log scale that uses every radius and needs no threshold.
/// For R = 1 it is the paper's score. RadiusRule::first_found is the textbook reduction,
/// s = (r* + 1 − f_{r*}) / R with r* the smallest i where f_i ≥ τ (s = 1 when there is none);
/// it reads only one radius and jumps with τ. On MVTec AD bottle (docs/results.md) the mean
/// rule correlates better with the exact NN distance (Spearman) and gives the higher pixel
/// AUROC at every base width tried; with many training pixels the found fraction at the
/// smallest radius is already ≥ τ = 0.5 for nearly every pixel, so first_found mostly reduces
/// to the single-radius score. Hence the default.
///
/// Model files: a format of their own (magic AMQRADII), described in docs/model-format.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/bloom_filter.hpp"
#include "amq/bloom_policies.hpp"
#include "amq/detail/key_set.hpp"
#include "amq/detail/quantize.hpp"
#include "amq/error.hpp"
#include "amq/feature_map.hpp"
#include "amq/hashing.hpp"
#include "amq/lsh_encoder.hpp"
#include "amq/score_map.hpp"
#include "amq/serialization.hpp"

namespace amq {

/// How the found fractions f_0 … f_{R−1} of a pixel become its score. The numeric values are
/// stored in model files and never change.
enum class RadiusRule : std::uint32_t {
  /// s = (1/R) Σ_i (1 − f_i): the mean of the single-radius scores (default).
  not_found_mean = 0,
  /// s = (r* + 1 − f_{r*}) / R, r* the smallest radius with f ≥ τ; s = 1 if none.
  first_found = 1,
};

/// The printable name of a radius rule ("not_found_mean" or "first_found").
inline const char* to_string(RadiusRule rule) {
  switch (rule) {
    case RadiusRule::not_found_mean:
      return "not_found_mean";
    case RadiusRule::first_found:
      return "first_found";
  }
  return "unknown";
}

/// Parameters of a MultiRadiusScorer.
struct MultiRadiusParams {
  /// Projection, filter sizing, codes per key and image-score rule, as for AmqScorer; its
  /// bucket width is ε, the smallest of the R widths.
  ScorerParams scorer;
  /// R, the number of bucket widths ε, 2ε, …, 2^{R−1} ε.
  std::uint32_t radii = 4;
  /// How the per-radius found fractions make the pixel score.
  RadiusRule rule = RadiusRule::not_found_mean;
  /// τ of RadiusRule::first_found, in (0, 1].
  double found_threshold = 0.5;
};

/// The score of one pixel from its found fractions f_0 … f_{R−1} (`fractions`, R values) by
/// `rule` (see the file comment).
inline float multi_radius_score(const float* fractions, std::size_t radii, RadiusRule rule,
                                double found_threshold) {
  if (rule == RadiusRule::first_found) {
    for (std::size_t i = 0; i < radii; ++i) {
      if (fractions[i] >= found_threshold) {
        return static_cast<float>((static_cast<double>(i) + 1.0 - fractions[i]) /
                                  static_cast<double>(radii));
      }
    }
    return 1.0f;
  }
  double not_found = 0.0;
  for (std::size_t i = 0; i < radii; ++i) not_found += 1.0 - fractions[i];
  return static_cast<float>(not_found / static_cast<double>(radii));
}

namespace detail {
/// Magic bytes at the start of every multi-radius model file.
constexpr char multi_radius_magic[8] = {'A', 'M', 'Q', 'R', 'A', 'D', 'I', 'I'};
/// The multi-radius model format version this library writes and reads.
constexpr std::uint32_t multi_radius_version = 1;
}  // namespace detail

/// The AMQ detector with R bucket widths sharing one projection and one filter.
/// @tparam Encoder LshEncoder with a projection policy (its bucket width is the smallest, ε).
/// @tparam Filter  the approximate membership structure (BloomFilter with a policy).
template <class Encoder = LshEncoder<>, class Filter = BloomFilter<ClassicBloom>>
class MultiRadiusScorer {
 public:
  /// A scorer ready to collect normal feature maps; generates the projection from `params`.
  explicit MultiRadiusScorer(const MultiRadiusParams& params)
      : params_(checked(params)), encoder_(params.scorer.lsh) {}

  /// Encodes one normal feature map at every radius and remembers its distinct keys.
  void collect(const FeatureMap& map) {
    AMQ_EXPECTS(!filter_, "collect after build: use add to insert more normal feature maps");
    expect_map(map, report_.images == 0);
    const std::vector<std::int32_t> codes = encode_radii(map);
    for_each_key(codes, map.pixels(), [&](std::size_t, std::uint64_t key) { keys_.insert(key); });
    count_inserted(map);
  }

  /// Sizes the one filter of all radii by the chosen rule (the paper's B counts the keys of
  /// every radius, N·W·H·(G/K)·R), inserts the collected keys and returns the sizing report.
  const SizingReport& build() {
    AMQ_EXPECTS(!filter_, "build called twice: the filter is already built");
    AMQ_EXPECTS(report_.images > 0, "build needs at least one collected feature map");
    const ScorerParams& p = params_.scorer;
    report_.distinct_keys = keys_.size();
    report_.paper_bits = p.filter_bits;
    report_.paper_probes =
        p.filter_bits > 0 ? paper_probe_count(p.filter_bits, report_.total_keys) : 0;
    report_.target_fpr = p.target_fpr;
    const BloomParams by_fpr =
        size_for_fpr<Policy>(report_.distinct_keys, p.target_fpr, p.filter_seed);
    report_.fpr_bits = by_fpr.bits;
    report_.fpr_probes = by_fpr.probes;
    BloomParams chosen = by_fpr;
    if (p.sizing == SizingRule::paper) {
      chosen = BloomParams{report_.paper_bits, report_.paper_probes, p.filter_seed};
    }
    if (p.probes > 0) chosen.probes = p.probes;
    chosen = Policy::normalized(chosen);
    report_.chosen = p.sizing;
    report_.bits = chosen.bits;
    report_.probes = chosen.probes;

    filter_.emplace(chosen);
    std::vector<std::uint64_t> chunk;
    chunk.reserve(std::size_t{1} << 16);
    keys_.for_each([&](std::uint64_t key) {
      chunk.push_back(key);
      if (chunk.size() == chunk.capacity()) {
        filter_->add(chunk.data(), chunk.size());
        chunk.clear();
      }
    });
    filter_->add(chunk.data(), chunk.size());
    keys_.clear();
    report_.estimated_fpr = filter_->estimated_fpr();
    return report_;
  }

  /// Collects every map, then builds.
  const SizingReport& fit(const std::vector<FeatureMap>& maps) {
    AMQ_EXPECTS(!maps.empty(), "fit needs at least one normal feature map");
    for (const FeatureMap& map : maps) collect(map);
    return build();
  }

  /// Inserts the keys of one more normal feature map into the built filter (M and B stay).
  void add(const FeatureMap& map) {
    AMQ_EXPECTS(filter_, "add needs a built filter: call fit or build first");
    expect_map(map, false);
    const std::vector<std::int32_t> codes = encode_radii(map);
    std::vector<std::uint64_t> keys;
    keys.reserve(map.pixels() * tables() * radii());
    for_each_key(codes, map.pixels(), [&](std::size_t, std::uint64_t key) { keys.push_back(key); });
    filter_->add(keys.data(), keys.size());
    count_inserted(map);
    report_.estimated_fpr = filter_->estimated_fpr();
  }

  /// Writes f_i, the fraction of keys found at radius i, for every pixel of `map` to `out`
  /// (W · H rows of R values). OpenMP across pixels.
  void found_fractions(const FeatureMap& map, float* out) const {
    AMQ_EXPECTS(filter_, "scoring needs a trained model: call fit or build first");
    AMQ_EXPECTS(out != nullptr, "found-fraction output is null");
    expect_map(map, false);
    const std::vector<std::int32_t> codes = encode_radii(map);
    const std::size_t pixels = map.pixels();
    const std::size_t t_count = tables();
    const auto count = static_cast<std::ptrdiff_t>(pixels);
#pragma omp parallel
    {
      std::vector<std::uint64_t> keys(t_count);
#pragma omp for schedule(static)
      for (std::ptrdiff_t p = 0; p < count; ++p) {
        for (std::size_t i = 0; i < radii(); ++i) {
          make_pixel_keys(codes, pixels, static_cast<std::size_t>(p), i, keys.data());
          const std::size_t found = filter_->count(keys.data(), t_count);
          out[static_cast<std::size_t>(p) * radii() + i] =
              static_cast<float>(static_cast<double>(found) / static_cast<double>(t_count));
        }
      }
    }
  }

  /// Writes the W · H pixel scores of `map` to `out`, by the model's radius rule.
  void score(const FeatureMap& map, float* out) const {
    AMQ_EXPECTS(out != nullptr, "score map output is null");
    std::vector<float> fractions(map.pixels() * radii());
    found_fractions(map, fractions.data());
    for (std::size_t p = 0; p < map.pixels(); ++p) {
      out[p] = multi_radius_score(fractions.data() + p * radii(), radii(), params_.rule,
                                  params_.found_threshold);
    }
  }

  /// The W · H pixel scores of `map` (see the pointer overload).
  std::vector<float> score(const FeatureMap& map) const {
    std::vector<float> out(map.pixels());
    score(map, out.data());
    return out;
  }

  /// The image score of a W × H score map seen at `image_width` × `image_height` (0 × 0: the
  /// map's own size), by the model's image-score rule.
  float image_score(const float* score_map, std::size_t image_width = 0,
                    std::size_t image_height = 0) const {
    AMQ_EXPECTS(report_.width > 0, "image_score needs a trained model");
    return amq::image_score(score_map, report_.width, report_.height, params_.scorer.image_score,
                            image_width, image_height);
  }

  /// True once the filter is built (by build, fit or load).
  bool built() const { return filter_.has_value(); }
  /// The parameters the scorer was made with.
  const MultiRadiusParams& params() const { return params_; }
  /// R, the number of bucket widths.
  std::size_t radii() const { return params_.radii; }
  /// G/K, keys per pixel and radius.
  std::size_t tables() const { return encoder_.hashes() / params_.scorer.codes_per_key; }
  /// The bucket width of radius i, ε·2^i.
  float bucket_width(std::size_t i) const {
    return std::ldexp(encoder_.params().bucket_width, static_cast<int>(i));
  }
  /// The sizing figures; complete after build.
  const SizingReport& sizing() const { return report_; }
  /// The encoder (projection, and the offsets and width of radius 0).
  const Encoder& encoder() const { return encoder_; }
  /// The built filter. Throws amq::Error before build.
  const Filter& filter() const {
    AMQ_EXPECTS(filter_, "the filter is not built yet");
    return *filter_;
  }

  /// Saves the trained model to one file, atomically (format in docs/model-format.md).
  void save(const std::string& path) const { write_file_atomically(path, to_bytes()); }

  /// The bytes `save` writes.
  std::vector<std::uint8_t> to_bytes() const {
    AMQ_EXPECTS(filter_, "save needs a trained model: call fit or build first");
    const ScorerParams& p = params_.scorer;
    const LshParams& lsh = encoder_.params();
    ByteWriter out;
    out.bytes(detail::multi_radius_magic, sizeof detail::multi_radius_magic);
    out.u32(detail::multi_radius_version);
    out.u32(detail::EncoderFormat<Encoder>::id);
    out.u64(lsh.dim);
    out.u64(lsh.hashes);
    out.f32(lsh.bucket_width);
    out.u64(lsh.seed);
    out.u32(p.codes_per_key);
    out.u32(params_.radii);
    out.u32(static_cast<std::uint32_t>(params_.rule));
    out.f64(params_.found_threshold);
    out.u32(detail::FilterFormat<Filter>::id);
    out.u64(report_.bits);
    out.u32(report_.probes);
    out.u32(p.filter_seed);
    out.u32(static_cast<std::uint32_t>(p.image_score));
    out.u32(static_cast<std::uint32_t>(p.sizing));
    out.u64(p.filter_bits);
    out.f64(p.target_fpr);
    out.u32(p.probes);
    out.u64(report_.images);
    out.u64(report_.width);
    out.u64(report_.height);
    out.u64(report_.total_keys);
    out.u64(report_.distinct_keys);
    out.u64(report_.paper_bits);
    out.u32(report_.paper_probes);
    out.u64(report_.fpr_bits);
    out.u32(report_.fpr_probes);
    out.f64(report_.estimated_fpr);
    out.f32_array(encoder_.directions());
    out.f32_array(encoder_.offsets());
    out.u32_array(filter_->words());
    out.checksum();
    return out.take();
  }

  /// Loads a model saved by `save`; amq::Error names the file and the fault when it is not a
  /// multi-radius model, another version, encoder or policy, truncated, corrupted or
  /// inconsistent.
  static MultiRadiusScorer load(const std::string& path) {
    const std::vector<std::uint8_t> bytes = read_file_bytes(path);
    return from_bytes(bytes.data(), bytes.size(), path);
  }

  /// A model from `size` bytes in the multi-radius format; `name` stands for their origin.
  static MultiRadiusScorer from_bytes(const std::uint8_t* data, std::size_t size,
                                      const std::string& name) {
    AMQ_EXPECTS(size == 0 || data != nullptr, "model bytes of '" << name << "' are null");
    ByteReader in(data, size, name);
    constexpr std::size_t envelope = sizeof detail::multi_radius_magic + 4 + 8;
    if (size < envelope) in.fail("truncated: " + std::to_string(size) + " bytes");
    char magic[sizeof detail::multi_radius_magic];
    in.bytes(magic, sizeof magic, "magic");
    if (std::memcmp(magic, detail::multi_radius_magic, sizeof magic) != 0) {
      in.fail("not an amq multi-radius model file (bad magic bytes)");
    }
    const std::uint32_t version = in.u32("format version");
    if (version != detail::multi_radius_version) {
      in.fail("multi-radius format version " + std::to_string(version) +
              ", this library reads version " + std::to_string(detail::multi_radius_version));
    }
    ByteReader tail(data + size - 8, 8, name);
    if (tail.u64("checksum") != fnv1a64(data, size - 8)) {
      in.fail("checksum mismatch: the file is corrupted or truncated");
    }
    ByteReader body(data, size - 8, name);
    body.skip(in.position());
    return read_model(body);
  }

 private:
  using Policy = typename detail::FilterFormat<Filter>::policy;

  static MultiRadiusParams checked(const MultiRadiusParams& params) {
    const ScorerParams& p = params.scorer;
    AMQ_EXPECTS(params.radii >= 1 && params.radii <= 64,
                "radius count R must be in [1, 64], got " << params.radii);
    AMQ_EXPECTS(params.rule == RadiusRule::not_found_mean || params.rule == RadiusRule::first_found,
                "unknown radius rule " << static_cast<std::uint32_t>(params.rule));
    AMQ_EXPECTS(params.found_threshold > 0.0 && params.found_threshold <= 1.0,
                "found threshold tau must be in (0, 1], got " << params.found_threshold);
    AMQ_EXPECTS(std::isfinite(std::ldexp(p.lsh.bucket_width, static_cast<int>(params.radii) - 1)),
                "largest bucket width eps * 2^(R-1) overflows: eps = " << p.lsh.bucket_width
                                                                       << ", R = " << params.radii);
    AMQ_EXPECTS(p.codes_per_key >= 1 && p.lsh.hashes % p.codes_per_key == 0,
                "codes per key K must be at least 1 and divide G = " << p.lsh.hashes << ", got K = "
                                                                     << p.codes_per_key);
    AMQ_EXPECTS(
        p.lsh.hashes / p.codes_per_key * params.radii <= std::numeric_limits<std::uint32_t>::max(),
        "(G/K) * R table indices must fit in 32 bits, got G = "
            << p.lsh.hashes << ", K = " << p.codes_per_key << ", R = " << params.radii);
    // The remaining checks (sizing, FPR, image score) are AmqScorer's.
    AmqScorer<Encoder, Filter>::check_params(p);
    return params;
  }

  void expect_map(const FeatureMap& map, bool first) const {
    AMQ_EXPECTS(map.data != nullptr, "feature map data is null");
    AMQ_EXPECTS(map.depth == encoder_.dim(),
                "feature map depth D = " << map.depth
                                         << " differs from the model's D = " << encoder_.dim());
    AMQ_EXPECTS(map.pixels() > 0,
                "feature map has no pixels (" << map.width << " x " << map.height << ")");
    if (!first) {
      AMQ_EXPECTS(map.width == report_.width && map.height == report_.height,
                  "feature map is " << map.width << " x " << map.height
                                    << " pixels, the model's maps are " << report_.width << " x "
                                    << report_.height);
    }
  }

  void count_inserted(const FeatureMap& map) {
    report_.width = map.width;
    report_.height = map.height;
    report_.hashes = encoder_.hashes();
    report_.images += 1;
    report_.total_keys += map.pixels() * tables() * radii();
  }

  /// Codes of every pixel at every radius: R blocks of P × G, from one projection.
  std::vector<std::int32_t> encode_radii(const FeatureMap& map) const {
    const MatrixView<const float> features = map.matrix();
    detail::expect_finite(features, "feature matrix");
    const std::size_t g = encoder_.hashes();
    const std::size_t pixels = map.pixels();
    std::vector<float> projected(pixels * g);
    encoder_.projection().project(features, MatrixView<float>{projected.data(), pixels, g});

    std::vector<std::int32_t> codes(radii() * pixels * g);
    std::vector<float> offsets(g);
    for (std::size_t i = 0; i < radii(); ++i) {
      // 2^i b_k and 2^i ε are exact in float: the radius-i offsets stay uniform in [0, 2^i ε).
      for (std::size_t k = 0; k < g; ++k) {
        offsets[k] = std::ldexp(encoder_.offsets()[k], static_cast<int>(i));
      }
      const float width = bucket_width(i);
      for (std::size_t p = 0; p < pixels; ++p) {
        const bool in_range = detail::quantize_row(projected.data() + p * g, offsets.data(), width,
                                                   g, codes.data() + (i * pixels + p) * g);
        AMQ_EXPECTS(in_range, "a code of pixel " << p << " at radius " << i
                                                 << " is outside int32; features or bucket "
                                                    "width are out of scale");
      }
    }
    return codes;
  }

  /// The G/K keys of pixel p at radius i; table t of radius i has index i·(G/K) + t.
  void make_pixel_keys(const std::vector<std::int32_t>& codes, std::size_t pixels, std::size_t p,
                       std::size_t i, std::uint64_t* keys) const {
    const std::size_t g = encoder_.hashes();
    const std::uint32_t k = params_.scorer.codes_per_key;
    const std::int32_t* row = codes.data() + (i * pixels + p) * g;
    for (std::size_t t = 0; t < tables(); ++t) {
      keys[t] = make_table_key(static_cast<std::uint32_t>(i * tables() + t), row + t * k, k);
    }
  }

  template <class Visit>
  void for_each_key(const std::vector<std::int32_t>& codes, std::size_t pixels,
                    Visit&& visit) const {
    std::vector<std::uint64_t> keys(tables());
    for (std::size_t i = 0; i < radii(); ++i) {
      for (std::size_t p = 0; p < pixels; ++p) {
        make_pixel_keys(codes, pixels, p, i, keys.data());
        for (std::uint64_t key : keys) visit(i, key);
      }
    }
  }

  // The private constructor of load: the encoder is regenerated from the stored parameters.
  MultiRadiusScorer(const MultiRadiusParams& params, int)
      : params_(params), encoder_(params.scorer.lsh) {}

  static MultiRadiusScorer read_model(ByteReader& in) {
    MultiRadiusParams params;
    ScorerParams& p = params.scorer;
    const std::uint32_t encoder_id = in.u32("encoder kind");
    if (encoder_id != detail::EncoderFormat<Encoder>::id) {
      in.fail("encoder kind " + std::to_string(encoder_id) + ", expected " +
              std::to_string(detail::EncoderFormat<Encoder>::id) + " (" +
              detail::EncoderFormat<Encoder>::name + ")");
    }
    p.lsh.dim = in.u64("dimension D");
    p.lsh.hashes = in.u64("hash count G");
    p.lsh.bucket_width = in.f32("bucket width");
    p.lsh.seed = in.u64("projection seed");
    if (p.lsh.dim == 0 || p.lsh.hashes == 0 || p.lsh.hashes > in.remaining() / 4 ||
        p.lsh.dim > in.remaining() / 4 / p.lsh.hashes) {
      in.fail("a projection of G = " + std::to_string(p.lsh.hashes) +
              " by D = " + std::to_string(p.lsh.dim) + " floats cannot be in the " +
              std::to_string(in.remaining()) + " bytes left");
    }
    p.codes_per_key = in.u32("codes per key K");
    params.radii = in.u32("radius count R");
    params.rule = static_cast<RadiusRule>(in.u32("radius rule"));
    params.found_threshold = in.f64("found threshold");
    const std::uint32_t policy_id = in.u32("filter policy");
    if (policy_id != detail::FilterFormat<Filter>::id) {
      in.fail("filter policy " + std::to_string(policy_id) + ", expected " +
              std::to_string(detail::FilterFormat<Filter>::id) + " (" +
              detail::FilterFormat<Filter>::name + ")");
    }
    BloomParams filter_params;
    filter_params.bits = in.u64("filter bits M");
    filter_params.probes = in.u32("probe count B");
    p.filter_seed = in.u32("filter seed");
    filter_params.seed = p.filter_seed;
    p.image_score = static_cast<ImageScore>(in.u32("image-score rule"));
    p.sizing = static_cast<SizingRule>(in.u32("sizing rule"));
    p.filter_bits = in.u64("paper filter bits");
    p.target_fpr = in.f64("target false-positive rate");
    p.probes = in.u32("probe override");
    try {
      checked(params);
    } catch (const Error& error) {
      in.fail(std::string("bad parameters: ") + error.what());
    }

    MultiRadiusScorer scorer(params, 0);
    SizingReport& r = scorer.report_;
    r.images = in.u64("trained images N");
    r.width = in.u64("map width W");
    r.height = in.u64("map height H");
    r.hashes = p.lsh.hashes;
    r.total_keys = in.u64("total keys");
    r.distinct_keys = in.u64("distinct keys");
    r.paper_bits = in.u64("paper M");
    r.paper_probes = in.u32("paper B");
    r.fpr_bits = in.u64("FPR-rule M");
    r.fpr_probes = in.u32("FPR-rule B");
    r.estimated_fpr = in.f64("estimated false-positive rate");
    r.target_fpr = p.target_fpr;
    r.chosen = p.sizing;
    r.bits = filter_params.bits;
    r.probes = filter_params.probes;
    if (r.images == 0 || r.width == 0 || r.height == 0) {
      in.fail("trained on " + std::to_string(r.images) + " maps of " + std::to_string(r.width) +
              " x " + std::to_string(r.height) + " pixels");
    }

    const std::vector<float> directions =
        in.f32_array(scorer.encoder_.directions().size(), "projection directions");
    const std::vector<float> offsets = in.f32_array(scorer.encoder_.offsets().size(), "offsets");
    const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    if (!same_bits(directions, scorer.encoder_.directions()) ||
        !same_bits(offsets, scorer.encoder_.offsets())) {
      in.fail("the stored projection differs from the one generated from its seed " +
              std::to_string(p.lsh.seed));
    }

    if (filter_params.bits / 8 > in.remaining()) {
      in.fail("truncated: a filter of " + std::to_string(filter_params.bits) +
              " bits cannot fit in the " + std::to_string(in.remaining()) + " bytes left");
    }
    BloomParams normalized;
    try {
      normalized = Policy::normalized(filter_params);
    } catch (const Error& error) {
      in.fail(std::string("bad filter parameters: ") + error.what());
    }
    if (normalized != filter_params) {
      in.fail("filter parameters M = " + std::to_string(filter_params.bits) +
              ", B = " + std::to_string(filter_params.probes) + " are not valid for the " +
              detail::FilterFormat<Filter>::name + " policy");
    }
    const std::vector<std::uint32_t> words =
        in.u32_array(Policy::word_count(filter_params), "filter words");
    try {
      scorer.filter_.emplace(Filter::from_words(filter_params, words));
    } catch (const Error& error) {
      in.fail(std::string("bad filter: ") + error.what());
    }
    if (in.remaining() != 0) {
      in.fail(std::to_string(in.remaining()) + " unexpected bytes before the checksum");
    }
    return scorer;
  }

  MultiRadiusParams params_;
  Encoder encoder_;
  detail::KeySet keys_;
  std::optional<Filter> filter_;
  SizingReport report_;
};

}  // namespace amq
