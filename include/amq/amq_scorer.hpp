/// @file amq_scorer.hpp
/// @brief AmqScorer: the AMQ anomaly detector. Training inserts the LSH keys of normal feature
/// maps into a Bloom filter; scoring gives each pixel the fraction of its keys not found.
///
/// Training streams: `collect` encodes one feature map at a time and keeps only the distinct
/// keys (and the count of all keys), `build` sizes the filter and inserts them, so the memory of
/// training grows with the number of distinct keys, never with the number of images. `fit` is
/// collect for each map followed by build; `add` inserts further normal maps into a built
/// filter. Scoring (`score`, `image_score`) is const and safe from several threads at once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "amq/bloom_filter.hpp"
#include "amq/bloom_policies.hpp"
#include "amq/detail/key_set.hpp"
#include "amq/error.hpp"
#include "amq/feature_map.hpp"
#include "amq/hashing.hpp"
#include "amq/lsh_encoder.hpp"
#include "amq/score_map.hpp"
#include "amq/serialization.hpp"
#include "amq/structured_projection.hpp"

namespace amq {

/// How `build` chooses the filter size M (bits) and probe count B. The numeric values are
/// stored in model files and never change.
enum class SizingRule : std::uint32_t {
  /// The paper: M is given (ScorerParams::filter_bits) and B = round(M / (N·W·H·G) · ln 2),
  /// its eq. 5, with N·W·H·G the number of keys inserted (repeats included).
  paper = 0,
  /// M and B for a target false-positive rate (ScorerParams::target_fpr), sized by the number
  /// of distinct keys counted while collecting.
  target_fpr = 1,
};

/// The printable name of a sizing rule ("paper" or "target_fpr").
inline const char* to_string(SizingRule rule) {
  switch (rule) {
    case SizingRule::paper:
      return "paper";
    case SizingRule::target_fpr:
      return "target_fpr";
  }
  return "unknown";
}

/// Parameters of an AmqScorer. The defaults follow the paper, except the dimension D, which
/// must be set to the depth of the feature maps.
struct ScorerParams {
  /// Projection: dimension D, hash count G, bucket width ε, seed.
  LshParams lsh;
  /// Which rule sizes the filter.
  SizingRule sizing = SizingRule::paper;
  /// M for the paper's rule: filter size in bits (default 2^30 bits = 128 MiB).
  std::uint64_t filter_bits = std::uint64_t{1} << 30;
  /// Per-lookup false-positive rate for the target-FPR rule. A false positive lowers a pixel
  /// score by 1/G, so the default keeps about 0.02 false hits per pixel at G = 2048.
  double target_fpr = 1e-5;
  /// B when positive: overrides the probe count of the chosen rule (M is kept).
  std::uint32_t probes = 0;
  /// Seed of the filter's probe hashes.
  std::uint32_t filter_seed = 0;
  /// How the score map becomes one image score.
  ImageScore image_score = ImageScore::mean;
  /// K, codes per key (AND-concatenation): the G codes of a pixel form G/K keys, one per table
  /// of K consecutive hash functions (make_table_key), and the pixel score is
  /// s = 1 − found tables / (G/K). K = 1 is the paper; K must divide G.
  std::uint32_t codes_per_key = 1;
};

/// The figures behind the filter's size: what training saw, what each sizing rule asks for,
/// which one was built, and the filter's estimated false-positive rate.
struct SizingReport {
  std::uint64_t images = 0;               ///< N, normal feature maps inserted.
  std::uint64_t width = 0;                ///< W, feature-map width.
  std::uint64_t height = 0;               ///< H, feature-map height.
  std::uint64_t hashes = 0;               ///< G, hash functions per pixel.
  std::uint64_t total_keys = 0;           ///< N·W·H·G/K, keys inserted with repeats.
  std::uint64_t distinct_keys = 0;        ///< Distinct keys among those collected before build.
  std::uint64_t paper_bits = 0;           ///< The paper's M (as given).
  std::uint32_t paper_probes = 0;         ///< The paper's B, eq. 5 (0 when M is not given).
  double target_fpr = 0.0;                ///< The target of the FPR rule.
  std::uint64_t fpr_bits = 0;             ///< M for the target FPR from the distinct keys.
  std::uint32_t fpr_probes = 0;           ///< B for the target FPR.
  SizingRule chosen = SizingRule::paper;  ///< The rule the filter was built by.
  std::uint64_t bits = 0;                 ///< M of the built filter.
  std::uint32_t probes = 0;               ///< B of the built filter (after any override).
  double estimated_fpr = 0.0;             ///< False-positive estimate of the built filter.
};

namespace detail {

/// Identifies a filter policy in model files; specialised for each policy amq ships.
template <class Policy>
struct PolicyFormat;
template <>
struct PolicyFormat<ClassicBloom> {
  static constexpr std::uint32_t id = 1;
  static constexpr const char* name = "classic";
};
template <>
struct PolicyFormat<SplitBlockBloom> {
  static constexpr std::uint32_t id = 2;
  static constexpr const char* name = "split-block";
};

/// Identifies a filter type in model files by its policy.
template <class Filter>
struct FilterFormat;
template <class Policy>
struct FilterFormat<BloomFilter<Policy>> : PolicyFormat<Policy> {
  using policy = Policy;
};

/// Identifies an encoder in model files; specialised for each projection amq ships.
template <class Encoder>
struct EncoderFormat;
template <>
struct EncoderFormat<LshEncoder<DenseProjection>> {
  static constexpr std::uint32_t id = 1;
  static constexpr const char* name = "dense Gaussian projection";
};
template <>
struct EncoderFormat<LshEncoder<StructuredProjection>> {
  static constexpr std::uint32_t id = 2;
  static constexpr const char* name = "structured Walsh-Hadamard projection";
};

/// Magic bytes at the start of every model file.
constexpr char model_magic[8] = {'A', 'M', 'Q', 'M', 'O', 'D', 'E', 'L'};
/// The newest model format version this library writes and reads. Version 2 adds the codes
/// per key K; a model with K = 1 is written as version 1, byte for byte as before.
constexpr std::uint32_t model_version = 2;

}  // namespace detail

/// The AMQ anomaly detector over feature maps of a fixed size W × H × D.
/// @tparam Encoder maps a P × D feature matrix to P × G integer codes (LshEncoder).
/// @tparam Filter  the approximate membership structure (BloomFilter with a policy).
template <class Encoder = LshEncoder<>, class Filter = BloomFilter<ClassicBloom>>
class AmqScorer {
 public:
  /// A scorer ready to collect normal feature maps; generates the projection from `params`.
  explicit AmqScorer(const ScorerParams& params) : params_(checked(params)), encoder_(params.lsh) {}

  /// Encodes one normal feature map and remembers its distinct keys for `build`.
  void collect(const FeatureMap& map) {
    AMQ_EXPECTS(!filter_,
                "collect after build: use add to insert more normal feature maps "
                "into a built filter");
    expect_map(map, report_.images == 0);
    const std::vector<std::int32_t> codes = encoder_.encode(map.matrix());
    const std::size_t g = encoder_.hashes();
    const std::uint32_t k = params_.codes_per_key;
    for (std::size_t p = 0; p < map.pixels(); ++p) {
      const std::int32_t* row = codes.data() + p * g;
      for (std::size_t t = 0; t < tables(); ++t) {
        keys_.insert(make_table_key(static_cast<std::uint32_t>(t), row + t * k, k));
      }
    }
    count_inserted(map);
  }

  /// Sizes the filter by the chosen rule, inserts the collected keys, frees them and returns
  /// the sizing report.
  const SizingReport& build() {
    AMQ_EXPECTS(!filter_, "build called twice: the filter is already built");
    AMQ_EXPECTS(report_.images > 0, "build needs at least one collected feature map");

    // A shard of a distributed fit (build(totals)) has set the count over all shards already.
    report_.distinct_keys = std::max<std::uint64_t>(report_.distinct_keys, keys_.size());
    report_.paper_bits = params_.filter_bits;
    report_.paper_probes =
        params_.filter_bits > 0 ? paper_probe_count(params_.filter_bits, report_.total_keys) : 0;
    report_.target_fpr = params_.target_fpr;
    const BloomParams by_fpr =
        size_for_fpr<Policy>(report_.distinct_keys, params_.target_fpr, params_.filter_seed);
    report_.fpr_bits = by_fpr.bits;
    report_.fpr_probes = by_fpr.probes;

    BloomParams chosen = by_fpr;
    if (params_.sizing == SizingRule::paper) {
      chosen = BloomParams{report_.paper_bits, report_.paper_probes, params_.filter_seed};
    }
    if (params_.probes > 0) chosen.probes = params_.probes;
    // The policy may round M and fix B (split-block: whole blocks, B = 8); report what it built.
    chosen = Policy::normalized(chosen);
    report_.chosen = params_.sizing;
    report_.bits = chosen.bits;
    report_.probes = chosen.probes;

    filter_.emplace(chosen);
    insert_collected();
    keys_.clear();
    report_.estimated_fpr = filter_->estimated_fpr();
    return report_;
  }

  /// Builds this scorer as one shard of a fit split over several scorers (processes or
  /// machines). The filter is sized from `totals`, the figures of all shards together (images
  /// N, width W, height H, total_keys, distinct_keys), so every shard gets the M and B of one
  /// fit on all maps; then this shard's collected keys are inserted. Uniting the shards'
  /// filters (unite) gives that single fit's filter bit for bit. A shard may hold no map.
  const SizingReport& build(const SizingReport& totals) {
    AMQ_EXPECTS(!filter_, "build called twice: the filter is already built");
    AMQ_EXPECTS(totals.images > 0 && totals.width > 0 && totals.height > 0,
                "shard totals of " << totals.images << " maps of " << totals.width << " x "
                                   << totals.height << " pixels: need at least one map");
    AMQ_EXPECTS(report_.images == 0 ||
                    (totals.width == report_.width && totals.height == report_.height),
                "shard totals for maps of " << totals.width << " x " << totals.height
                                            << " pixels, this shard's maps are " << report_.width
                                            << " x " << report_.height);
    AMQ_EXPECTS(totals.total_keys == totals.images * totals.width * totals.height * tables(),
                "shard totals of " << totals.total_keys << " keys, expected N·W·H·G/K = "
                                   << totals.images * totals.width * totals.height * tables());
    AMQ_EXPECTS(totals.images >= report_.images && totals.distinct_keys >= keys_.size(),
                "shard totals (" << totals.images << " maps, " << totals.distinct_keys
                                 << " distinct keys) below this shard's own (" << report_.images
                                 << " maps, " << keys_.size() << " distinct keys)");
    report_.images = totals.images;
    report_.width = totals.width;
    report_.height = totals.height;
    report_.hashes = encoder_.hashes();
    report_.total_keys = totals.total_keys;
    report_.distinct_keys = totals.distinct_keys;
    return build();
  }

  /// ORs `other` into the built filter: the filter of both key sets (e.g. of two shards built
  /// with build(totals)). Throws amq::Error unless both have the same M, B and seed.
  void unite(const Filter& other) {
    AMQ_EXPECTS(filter_, "unite needs a built filter: call build first");
    filter_->merge(other);
    report_.estimated_fpr = filter_->estimated_fpr();
  }

  /// Calls `visit(key)` once for each distinct key collected since construction, before build
  /// (in no particular order); a distributed fit counts the distinct keys of all shards so.
  template <class Visit>
  void for_each_collected_key(Visit&& visit) const {
    keys_.for_each(std::forward<Visit>(visit));
  }

  /// Collects every map, then builds: the whole training in one call. Sizes and depths of
  /// all maps are checked before any is collected.
  const SizingReport& fit(const std::vector<FeatureMap>& maps) {
    AMQ_EXPECTS(!maps.empty(), "fit needs at least one normal feature map");
    AMQ_EXPECTS(!filter_, "fit on a built model: use add to insert more normal feature maps");
    for (const FeatureMap& map : maps) {
      expect_map(map, report_.images == 0);
      AMQ_EXPECTS(map.width == maps.front().width && map.height == maps.front().height,
                  "fit: feature map of " << map.width << " x " << map.height
                                         << " pixels among maps of " << maps.front().width << " x "
                                         << maps.front().height);
    }
    for (const FeatureMap& map : maps) collect(map);
    return build();
  }

  /// Inserts the keys of one more normal feature map into the built filter (M and B stay).
  void add(const FeatureMap& map) {
    AMQ_EXPECTS(filter_, "add needs a built filter: call fit or build first");
    expect_map(map, false);
    const std::vector<std::int32_t> codes = encoder_.encode(map.matrix());
    const std::size_t g = encoder_.hashes();
    const std::uint32_t k = params_.codes_per_key;
    std::vector<std::uint64_t> keys(map.pixels() * tables());
    for (std::size_t p = 0; p < map.pixels(); ++p) {
      for (std::size_t t = 0; t < tables(); ++t) {
        keys[p * tables() + t] =
            make_table_key(static_cast<std::uint32_t>(t), codes.data() + p * g + t * k, k);
      }
    }
    filter_->add(keys.data(), keys.size());
    count_inserted(map);
    report_.estimated_fpr = filter_->estimated_fpr();
  }

  /// The first step of score: the G LSH codes of every pixel of `map`, W · H rows of G codes
  /// (row-major), for score_codes. Callers that time or batch the two steps apart use these.
  std::vector<std::int32_t> encode(const FeatureMap& map) const {
    expect_map(map, report_.images == 0);
    return encoder_.encode(map.matrix());
  }

  /// The second step of score: writes to `out` the scores of `pixels` pixels from their codes
  /// (`pixels` rows of G codes, as encode gives them), s = 1 − (1/G) Σ_k E_k, the paper's
  /// eq. 6, where E_k says whether key k of the pixel is in the filter (with K codes per key:
  /// the G/K table keys, s = 1 − found/(G/K)). OpenMP across pixels.
  void score_codes(const std::int32_t* codes, std::size_t pixels, float* out) const {
    AMQ_EXPECTS(filter_, "score needs a trained model: call fit or build first");
    AMQ_EXPECTS(pixels == 0 || codes != nullptr, "codes of " << pixels << " pixels are null");
    AMQ_EXPECTS(pixels == 0 || out != nullptr, "score map output is null");
    const std::size_t g = encoder_.hashes();
    const std::size_t t_count = tables();
    const std::uint32_t k = params_.codes_per_key;
    const auto count = static_cast<std::ptrdiff_t>(pixels);
    const Filter& filter = *filter_;

#pragma omp parallel
    {
      std::vector<std::uint64_t> keys(t_count);
#pragma omp for schedule(static)
      for (std::ptrdiff_t p = 0; p < count; ++p) {
        const std::int32_t* row = codes + static_cast<std::size_t>(p) * g;
        for (std::size_t t = 0; t < t_count; ++t) {
          keys[t] = make_table_key(static_cast<std::uint32_t>(t), row + t * k, k);
        }
        const std::size_t found = filter.count(keys.data(), t_count);
        out[p] = static_cast<float>(1.0 - static_cast<double>(found) /
                                              static_cast<double>(t_count));
      }
    }
  }

  /// Writes the W · H pixel scores of `map` to `out`: score_codes(encode(map)), eq. 6.
  void score(const FeatureMap& map, float* out) const {
    AMQ_EXPECTS(filter_, "score needs a trained model: call fit or build first");
    expect_map(map, false);
    AMQ_EXPECTS(out != nullptr, "score map output is null");
    const std::vector<std::int32_t> codes = encoder_.encode(map.matrix());
    score_codes(codes.data(), map.pixels(), out);
  }

  /// The W · H pixel scores of `map` (see the pointer overload).
  std::vector<float> score(const FeatureMap& map) const {
    std::vector<float> out(map.pixels());
    score(map, out.data());
    return out;
  }

  /// The score maps of several feature maps, one image per OpenMP thread. If any map is
  /// refused (e.g. a non-finite feature), the first such error is thrown after the others ran.
  std::vector<std::vector<float>> score(const std::vector<FeatureMap>& maps) const {
    AMQ_EXPECTS(filter_, "score needs a trained model: call fit or build first");
    std::vector<std::vector<float>> out(maps.size());
    for (std::size_t i = 0; i < maps.size(); ++i) {
      expect_map(maps[i], false);
      out[i].resize(maps[i].pixels());
    }

    // An exception must not leave an OpenMP region: keep the first and rethrow it after.
    std::exception_ptr failure;
    const auto count = static_cast<std::ptrdiff_t>(maps.size());
#pragma omp parallel for schedule(dynamic)
    for (std::ptrdiff_t i = 0; i < count; ++i) {
      try {
        score(maps[i], out[i].data());
      } catch (...) {
#pragma omp critical(amq_scorer_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    return out;
  }

  /// The image score of a W × H score map seen at `image_width` × `image_height` (0 × 0: the
  /// map's own size), by the model's rule: mean (paper) or max of the upsampled map.
  float image_score(const float* score_map, std::size_t image_width = 0,
                    std::size_t image_height = 0) const {
    AMQ_EXPECTS(report_.width > 0, "image_score needs a trained model");
    return amq::image_score(score_map, report_.width, report_.height, params_.image_score,
                            image_width, image_height);
  }

  /// True once the filter is built (by build, fit or load).
  bool built() const { return filter_.has_value(); }
  /// The parameters the scorer was made with.
  const ScorerParams& params() const { return params_; }
  /// The sizing figures; complete after build.
  const SizingReport& sizing() const { return report_; }
  /// The encoder (projection and bucket width).
  const Encoder& encoder() const { return encoder_; }
  /// Throws amq::Error naming the first parameter of `params` that AmqScorer refuses.
  static void check_params(const ScorerParams& params) { checked(params); }
  /// G/K, the keys (tables) per pixel.
  std::size_t tables() const { return encoder_.hashes() / params_.codes_per_key; }
  /// The built filter. Throws amq::Error before build.
  const Filter& filter() const {
    AMQ_EXPECTS(filter_, "the filter is not built yet");
    return *filter_;
  }
  /// Feature-map width W the model was trained on (0 before the first map).
  std::size_t map_width() const { return report_.width; }
  /// Feature-map height H the model was trained on (0 before the first map).
  std::size_t map_height() const { return report_.height; }

  /// Saves the trained model to one file (format in docs/model-format.md), atomically: the
  /// file at `path` is replaced whole or not at all.
  void save(const std::string& path) const { write_file_atomically(path, to_bytes()); }

  /// The bytes `save` writes, for callers that store the model inside another file.
  std::vector<std::uint8_t> to_bytes() const {
    AMQ_EXPECTS(filter_, "save needs a trained model: call fit or build first");
    ByteWriter out;
    out.bytes(detail::model_magic, sizeof detail::model_magic);
    out.u32(params_.codes_per_key == 1 ? 1 : detail::model_version);
    write_parameters(out);
    write_report(out);
    out.f32_array(encoder_.directions());
    out.f32_array(encoder_.offsets());
    out.u32_array(filter_->words());
    out.checksum();
    return out.take();
  }

  /// Loads a model saved by `save`. Throws amq::Error naming the file and the fault when it is
  /// not a model, another format version, another encoder or filter policy, truncated,
  /// corrupted (checksum) or inconsistent.
  static AmqScorer load(const std::string& path) {
    const std::vector<std::uint8_t> bytes = read_file_bytes(path);
    return from_bytes(bytes.data(), bytes.size(), path);
  }

  /// A model from `size` bytes in the model format, with the checks of `load`; `name` stands
  /// for the bytes' origin in error messages.
  static AmqScorer from_bytes(const std::uint8_t* data, std::size_t size, const std::string& name) {
    AMQ_EXPECTS(size == 0 || data != nullptr, "model bytes of '" << name << "' are null");
    ByteReader in(data, size, name);
    check_envelope(data, size, in);
    // The fields lie between the envelope's head and its checksum; offsets stay file offsets.
    ByteReader body(data, size - 8, name);
    body.skip(sizeof detail::model_magic);
    const std::uint32_t version = body.u32("format version");
    return read_model(body, version);
  }

 private:
  using Policy = typename detail::FilterFormat<Filter>::policy;

  // The private constructor of load: the encoder is regenerated from the stored parameters.
  AmqScorer(const ScorerParams& params, int) : params_(params), encoder_(params.lsh) {}

  static ScorerParams checked(const ScorerParams& params) {
    AMQ_EXPECTS(params.sizing == SizingRule::paper || params.sizing == SizingRule::target_fpr,
                "unknown sizing rule " << static_cast<std::uint32_t>(params.sizing));
    AMQ_EXPECTS(params.sizing != SizingRule::paper || params.filter_bits > 0,
                "the paper's sizing rule needs filter_bits M > 0, got " << params.filter_bits);
    // A filter that cannot be allocated is refused now, not after the whole training.
    if (params.sizing == SizingRule::paper) detail::expect_filter_fits(params.filter_bits);
    AMQ_EXPECTS(
        std::isfinite(params.target_fpr) && params.target_fpr > 0.0 && params.target_fpr < 1.0,
        "target false-positive rate must be in (0, 1), got " << params.target_fpr);
    AMQ_EXPECTS(params.image_score == ImageScore::mean || params.image_score == ImageScore::max,
                "unknown image-score rule " << static_cast<std::uint32_t>(params.image_score));
    AMQ_EXPECTS(params.codes_per_key >= 1 && params.lsh.hashes % params.codes_per_key == 0,
                "codes per key K must be at least 1 and divide G = "
                    << params.lsh.hashes << ", got K = " << params.codes_per_key);
    return params;
  }

  // Feature maps must match the model: D always, W × H once the first map fixed them.
  void expect_map(const FeatureMap& map, bool first) const {
    AMQ_EXPECTS(map.data != nullptr, "feature map data is null");
    AMQ_EXPECTS(map.depth == encoder_.dim(),
                "feature map depth D = " << map.depth
                                         << " differs from the model's D = " << encoder_.dim());
    AMQ_EXPECTS(map.width == 0 || map.height <= SIZE_MAX / map.width / map.depth,
                "feature map of " << map.width << " x " << map.height << " x " << map.depth
                                  << " floats overflows the address space");
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
    report_.total_keys += map.pixels() * tables();
  }

  void insert_collected() {
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
  }

  void write_parameters(ByteWriter& out) const {
    const LshParams& lsh = encoder_.params();
    out.u32(detail::EncoderFormat<Encoder>::id);
    out.u64(lsh.dim);
    out.u64(lsh.hashes);
    out.f32(lsh.bucket_width);
    out.u64(lsh.seed);
    out.u32(detail::FilterFormat<Filter>::id);
    out.u64(report_.bits);
    out.u32(report_.probes);
    out.u32(params_.filter_seed);
    out.u32(static_cast<std::uint32_t>(params_.image_score));
    out.u32(static_cast<std::uint32_t>(params_.sizing));
    out.u64(params_.filter_bits);
    out.f64(params_.target_fpr);
    out.u32(params_.probes);
    if (params_.codes_per_key != 1) out.u32(params_.codes_per_key);
  }

  void write_report(ByteWriter& out) const {
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
  }

  // Magic, version and checksum, in that order, so that a file of another kind or version is
  // named as such rather than as corrupted.
  static void check_envelope(const std::uint8_t* bytes, std::size_t size, ByteReader& in) {
    constexpr std::size_t envelope = sizeof detail::model_magic + 4 + 8;
    if (size < envelope) {
      in.fail("truncated: " + std::to_string(size) + " bytes, fewer than the " +
              std::to_string(envelope) + " of magic, version and checksum");
    }
    char magic[sizeof detail::model_magic];
    in.bytes(magic, sizeof magic, "magic");
    if (std::memcmp(magic, detail::model_magic, sizeof magic) != 0) {
      in.fail("not an amq model file (bad magic bytes)");
    }
    const std::uint32_t version = in.u32("format version");
    if (version < 1 || version > detail::model_version) {
      in.fail("format version " + std::to_string(version) + ", this library reads versions 1 to " +
              std::to_string(detail::model_version));
    }
    const std::size_t body_end = size - 8;
    ByteReader tail(bytes + body_end, 8, in.path());
    const std::uint64_t stored = tail.u64("checksum");
    const std::uint64_t computed = fnv1a64(bytes, body_end);
    if (stored != computed) {
      in.fail("checksum mismatch (stored " + std::to_string(stored) + ", computed " +
              std::to_string(computed) + "): the file is corrupted or truncated");
    }
  }

  static AmqScorer read_model(ByteReader& in, std::uint32_t version) {
    ScorerParams params;
    const std::uint32_t encoder_id = in.u32("encoder kind");
    if (encoder_id != detail::EncoderFormat<Encoder>::id) {
      in.fail("encoder kind " + std::to_string(encoder_id) + ", expected " +
              std::to_string(detail::EncoderFormat<Encoder>::id) + " (" +
              detail::EncoderFormat<Encoder>::name + ")");
    }
    params.lsh.dim = in.u64("dimension D");
    params.lsh.hashes = in.u64("hash count G");
    params.lsh.bucket_width = in.f32("bucket width");
    params.lsh.seed = in.u64("projection seed");
    expect_projection_fits(in, params.lsh);

    const std::uint32_t policy_id = in.u32("filter policy");
    if (policy_id != detail::FilterFormat<Filter>::id) {
      in.fail("filter policy " + std::to_string(policy_id) + ", expected " +
              std::to_string(detail::FilterFormat<Filter>::id) + " (" +
              detail::FilterFormat<Filter>::name + ")");
    }
    BloomParams filter_params;
    filter_params.bits = in.u64("filter bits M");
    filter_params.probes = in.u32("probe count B");
    params.filter_seed = in.u32("filter seed");
    filter_params.seed = params.filter_seed;

    params.image_score = static_cast<ImageScore>(in.u32("image-score rule"));
    params.sizing = static_cast<SizingRule>(in.u32("sizing rule"));
    params.filter_bits = in.u64("paper filter bits");
    params.target_fpr = in.f64("target false-positive rate");
    params.probes = in.u32("probe override");
    if (version >= 2) {
      params.codes_per_key = in.u32("codes per key K");
      if (params.codes_per_key == 1) in.fail("version 2 is written only for codes per key K > 1");
    }
    try {
      checked(params);
    } catch (const Error& error) {
      in.fail(std::string("bad parameters: ") + error.what());
    }

    AmqScorer scorer(params, 0);
    scorer.read_report(in, filter_params);
    scorer.read_projection(in);
    scorer.read_filter(in, filter_params);
    if (in.remaining() != 0) {
      in.fail(std::to_string(in.remaining()) + " unexpected bytes before the checksum");
    }
    return scorer;
  }

  // The projection is G × D floats: refuse parameters whose projection could not be in the
  // file before anything of that size is allocated.
  static void expect_projection_fits(ByteReader& in, const LshParams& lsh) {
    if (lsh.dim == 0 || lsh.hashes == 0) {
      in.fail("dimension D = " + std::to_string(lsh.dim) +
              " and hash count G = " + std::to_string(lsh.hashes) + " must be positive");
    }
    if (lsh.hashes > in.remaining() / 4 || lsh.dim > in.remaining() / 4 / lsh.hashes) {
      in.fail("truncated: a projection of G = " + std::to_string(lsh.hashes) +
              " by D = " + std::to_string(lsh.dim) + " floats cannot fit in the " +
              std::to_string(in.remaining()) + " bytes left");
    }
    if (!std::isfinite(lsh.bucket_width) || lsh.bucket_width <= 0.0f) {
      in.fail("bucket width must be finite and positive, got " + std::to_string(lsh.bucket_width));
    }
  }

  void read_report(ByteReader& in, const BloomParams& filter_params) {
    report_.images = in.u64("trained images N");
    report_.width = in.u64("map width W");
    report_.height = in.u64("map height H");
    report_.hashes = params_.lsh.hashes;
    report_.total_keys = in.u64("total keys");
    report_.distinct_keys = in.u64("distinct keys");
    report_.paper_bits = in.u64("paper M");
    report_.paper_probes = in.u32("paper B");
    report_.fpr_bits = in.u64("FPR-rule M");
    report_.fpr_probes = in.u32("FPR-rule B");
    report_.estimated_fpr = in.f64("estimated false-positive rate");
    report_.target_fpr = params_.target_fpr;
    report_.chosen = params_.sizing;
    report_.bits = filter_params.bits;
    report_.probes = filter_params.probes;
    if (report_.images == 0 || report_.width == 0 || report_.height == 0) {
      in.fail("trained on " + std::to_string(report_.images) + " maps of " +
              std::to_string(report_.width) + " x " + std::to_string(report_.height) + " pixels");
    }
    if (!std::isfinite(report_.estimated_fpr) || report_.estimated_fpr < 0.0 ||
        report_.estimated_fpr > 1.0) {
      in.fail("estimated false-positive rate " + std::to_string(report_.estimated_fpr) +
              " is not in [0, 1]");
    }
  }

  // A model does not depend on regenerating its projection: the stored one must equal what
  // the encoder generates from the stored parameters, bit for bit, or the file is refused.
  void read_projection(ByteReader& in) {
    const std::vector<float> directions =
        in.f32_array(encoder_.directions().size(), "projection directions");
    const std::vector<float> offsets = in.f32_array(encoder_.offsets().size(), "offsets");
    const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    if (!same_bits(directions, encoder_.directions()) || !same_bits(offsets, encoder_.offsets())) {
      in.fail("the stored projection differs from the one generated from its seed " +
              std::to_string(params_.lsh.seed));
    }
  }

  void read_filter(ByteReader& in, const BloomParams& filter_params) {
    // A filter of M bits needs M/8 bytes of file: check that before the policy sizes anything.
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
    const std::uint64_t expected_words = Policy::word_count(filter_params);
    if (expected_words > in.remaining() / 4) {
      in.fail("truncated: a filter of " + std::to_string(filter_params.bits) +
              " bits cannot fit in the " + std::to_string(in.remaining()) + " bytes left");
    }
    const std::vector<std::uint32_t> words = in.u32_array(expected_words, "filter words");
    try {
      filter_.emplace(Filter::from_words(filter_params, words));
    } catch (const Error& error) {
      in.fail(std::string("bad filter: ") + error.what());
    }
  }

  ScorerParams params_;
  Encoder encoder_;
  detail::KeySet keys_;
  std::optional<Filter> filter_;
  SizingReport report_;
};

}  // namespace amq
