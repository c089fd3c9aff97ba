/// @file knn_scorer.hpp
/// @brief PatchCore-style nearest-neighbour scoring with Faiss: the baseline amq is measured
/// against. A pixel's score is the L2 distance from its feature to the nearest feature of the
/// memory bank (all normal training pixels, or a coreset of them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "amq/feature_map.hpp"
#include "amq/score_map.hpp"
#include "knn/coreset.hpp"

namespace faiss {
struct Index;
}

namespace amq::knn {

/// The Faiss index that holds the memory bank.
enum class IndexKind : std::uint32_t {
  flat = 0,   ///< exact search, faiss::IndexFlatL2
  hnsw = 1,   ///< graph search, faiss::IndexHNSWFlat
  ivfpq = 2,  ///< inverted lists of product-quantised residuals, faiss::IndexIVFPQ
};

/// The name of an index kind: "flat", "hnsw" or "ivfpq".
std::string to_string(IndexKind kind);
/// The index kind with that name; amq::Error for any other name.
IndexKind parse_index_kind(const std::string& name);

/// Parameters of the kNN baseline. The IVFPQ defaults suit a memory bank of about
/// 160 000 patches of a few hundred channels (209 images of 28 x 28 pixels).
struct KnnParams {
  /// Which Faiss index holds the memory bank.
  IndexKind index = IndexKind::flat;
  /// How image_score() summarises a score map; PatchCore takes the maximum.
  ImageScore image_score = ImageScore::max;

  /// HNSW: neighbours per node in the graph (twice that on the bottom layer).
  int hnsw_m = 32;
  /// HNSW: candidate list length while the graph is built.
  int ef_construction = 64;
  /// HNSW: candidate list length while searching; larger is slower and more exact.
  int ef_search = 64;

  /// IVFPQ: coarse cells; about 4 sqrt(N) for N = 160 000 is 1600, a power of two below it
  /// keeps about 160 patches per cell.
  int nlist = 1024;
  /// IVFPQ: sub-quantisers per vector; must divide the depth D (288 / 32 = 9 channels each).
  int pq_m = 32;
  /// IVFPQ: bits per sub-quantiser code (8: 256 centroids per sub-space).
  int pq_nbits = 8;
  /// IVFPQ: cells visited per query.
  int nprobe = 16;
  /// IVFPQ: training rows sampled from the memory bank (at least 39 per cell for k-means).
  std::size_t train_sample = 65536;

  /// Subsample the memory bank by greedy k-centre selection before indexing.
  bool use_coreset = false;
  /// The coreset selection's own parameters (ratio 10 % by default).
  CoresetParams coreset;

  /// Seed of the IVFPQ training sample.
  std::uint64_t seed = 0;
};

/// Scores feature maps by their distance to a memory bank of normal feature maps.
///
/// Use: collect() every normal feature map (or fit() them all), build() once, then score()
/// test maps; add() extends a built index. score() is const and may run on several threads
/// at once. Every map must have the training maps' width, height and depth D.
class KnnScorer {
 public:
  /// A scorer with these parameters and no memory bank yet; checks the parameters.
  explicit KnnScorer(const KnnParams& params = {});
  ~KnnScorer();
  KnnScorer(KnnScorer&&) noexcept;
  KnnScorer& operator=(KnnScorer&&) noexcept;
  KnnScorer(const KnnScorer&) = delete;
  KnnScorer& operator=(const KnnScorer&) = delete;

  /// Appends the pixels of a normal feature map to the memory bank (before build()).
  void collect(const FeatureMap& map);
  /// Builds the index: coreset (if asked), training (IVFPQ), then insertion of the bank.
  /// The collected features are released afterwards.
  void build();
  /// collect() every map, then build().
  void fit(const std::vector<FeatureMap>& maps);
  /// Inserts the pixels of another normal feature map into a built index (no coreset).
  void add(const FeatureMap& map);

  /// Writes the W · H pixel scores of `map` to `out`: each pixel's L2 distance to its nearest
  /// memory bank feature (k = 1), the score map PatchCore upsamples.
  void score(const FeatureMap& map, float* out) const;
  /// The W · H pixel scores of `map` (see the pointer overload).
  std::vector<float> score(const FeatureMap& map) const;
  /// The image score of a W × H score map seen at `image_width` × `image_height` (0 × 0: the
  /// map's own size), by the parameters' rule (max or mean of the upsampled map).
  float image_score(const float* score_map, std::size_t image_width = 0,
                    std::size_t image_height = 0) const;

  /// Sets the HNSW search list length (not while score() runs on another thread).
  void set_ef_search(int ef_search);
  /// Sets the IVFPQ cells probed per query (not while score() runs on another thread).
  void set_nprobe(int nprobe);

  /// True once build() or load() has made an index.
  bool built() const { return index_ != nullptr; }
  /// The parameters in use.
  const KnnParams& params() const { return params_; }
  /// Channels per pixel, D (0 before the first map).
  std::size_t depth() const { return depth_; }
  /// Feature map width W (0 before the first map).
  std::size_t width() const { return width_; }
  /// Feature map height H (0 before the first map).
  std::size_t height() const { return height_; }
  /// Features collected and waiting for build().
  std::size_t collected() const;
  /// Features in the built index.
  std::size_t size() const;
  /// Bytes of the index as Faiss serialises it: the memory bank's footprint.
  std::size_t index_bytes() const;

  /// Writes the model: a header (magic, version, parameters), the Faiss index, a checksum.
  void save(std::ostream& out) const;
  /// Writes the model to a temporary file beside `path`, then renames it into place.
  void save(const std::string& path) const;
  /// Reads a model written by save(); amq::Error names what is wrong with a bad one.
  static KnnScorer load(std::istream& in);
  /// Reads a model file written by save().
  static KnnScorer load(const std::string& path);

 private:
  void expect_map(const FeatureMap& map, const char* what) const;
  void configure_search();

  KnnParams params_;
  std::size_t depth_ = 0;
  std::size_t width_ = 0;
  std::size_t height_ = 0;
  std::vector<float> bank_;
  std::unique_ptr<faiss::Index> index_;
};

}  // namespace amq::knn
