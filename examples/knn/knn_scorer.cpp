#include "knn/knn_scorer.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <istream>
#include <numeric>
#include <ostream>

#include "amq/error.hpp"

namespace amq::knn {
namespace {

using FaissId = faiss::Index::idx_t;

constexpr char kMagic[8] = {'A', 'M', 'Q', '-', 'K', 'N', 'N', '\n'};
constexpr std::uint32_t kFormatVersion = 1;

/// Runs a Faiss call and turns its exception into amq::Error naming the step.
template <class Call>
void faiss_call(const char* step, Call&& call) {
  try {
    call();
  } catch (const faiss::FaissException& e) {
    AMQ_FAIL("Faiss failed to " << step << ": " << e.what());
  }
}

/// A running 64-bit FNV-1a over 8-byte little-endian words of the byte stream: cheap enough to
/// cover a memory bank of gigabytes, and any flipped bit changes it. Pieces of any size give
/// the value of the whole stream.
class Checksum {
 public:
  void update(const std::uint8_t* bytes, std::size_t n) {
    std::size_t i = 0;
    for (; i < n && filled_ > 0; ++i) push(bytes[i]);
    for (; i + 8 <= n; i += 8) {
      std::uint64_t word = 0;
      for (std::size_t j = 0; j < 8; ++j) word |= std::uint64_t{bytes[i + j]} << (8 * j);
      mix(word);
    }
    for (; i < n; ++i) push(bytes[i]);
  }
  /// The checksum of the stream so far; a last partial word is mixed in with its length.
  std::uint64_t value() const {
    return filled_ == 0 ? state_ : (state_ ^ pending_ ^ (std::uint64_t{filled_} << 56)) * kPrime;
  }

 private:
  static constexpr std::uint64_t kPrime = 0x100000001B3ULL;
  void push(std::uint8_t byte) {
    pending_ |= std::uint64_t{byte} << (8 * filled_);
    if (++filled_ == 8) {
      mix(pending_);
      pending_ = 0;
      filled_ = 0;
    }
  }
  void mix(std::uint64_t word) { state_ = (state_ ^ word) * kPrime; }
  std::uint64_t state_ = 0xCBF29CE484222325ULL;
  std::uint64_t pending_ = 0;
  unsigned filled_ = 0;
};

/// Builds the header in memory, little-endian, whatever the host's byte order.
class HeaderWriter {
 public:
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    buffer_.insert(buffer_.end(), p, p + n);
  }
  void u32(std::uint32_t v) {
    for (int j = 0; j < 4; ++j) buffer_.push_back(static_cast<std::uint8_t>(v >> (8 * j)));
  }
  void u64(std::uint64_t v) {
    for (int j = 0; j < 8; ++j) buffer_.push_back(static_cast<std::uint8_t>(v >> (8 * j)));
  }
  void i32(int v) { u32(static_cast<std::uint32_t>(v)); }
  void f64(double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  }
  const std::vector<std::uint8_t>& buffer() const { return buffer_; }

 private:
  std::vector<std::uint8_t> buffer_;
};

/// Reads the model stream, checksumming what it reads, and names the field that is missing
/// when the stream ends early.
class ModelReader {
 public:
  explicit ModelReader(std::istream& in) : in_(in) {}

  void bytes(void* data, std::size_t n, const char* field) {
    in_.read(static_cast<char*>(data), static_cast<std::streamsize>(n));
    AMQ_EXPECTS(in_.gcount() == static_cast<std::streamsize>(n),
                "kNN model file is truncated: it ends inside the "
                    << field << " (read " << in_.gcount() << " of " << n << " bytes)");
    checksum_.update(static_cast<const std::uint8_t*>(data), n);
  }
  std::uint32_t u32(const char* field) {
    std::uint8_t b[4];
    bytes(b, 4, field);
    std::uint32_t v = 0;
    for (int j = 0; j < 4; ++j) v |= std::uint32_t{b[j]} << (8 * j);
    return v;
  }
  std::uint64_t u64(const char* field) {
    std::uint8_t b[8];
    bytes(b, 8, field);
    std::uint64_t v = 0;
    for (int j = 0; j < 8; ++j) v |= std::uint64_t{b[j]} << (8 * j);
    return v;
  }
  int i32(const char* field) { return static_cast<int>(u32(field)); }
  double f64(const char* field) {
    const std::uint64_t bits = u64(field);
    double v = 0;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  /// Reads `n` payload bytes in pieces, so a corrupt length fails as truncation instead of
  /// one huge allocation.
  std::vector<std::uint8_t> payload(std::uint64_t n) {
    constexpr std::uint64_t kPiece = std::uint64_t{1} << 24;
    std::vector<std::uint8_t> data;
    while (data.size() < n) {
      const std::size_t piece = static_cast<std::size_t>(std::min(kPiece, n - data.size()));
      const std::size_t at = data.size();
      data.resize(at + piece);
      bytes(data.data() + at, piece, "Faiss index");
    }
    return data;
  }
  std::uint64_t checksum() const { return checksum_.value(); }

 private:
  std::istream& in_;
  Checksum checksum_;
};

void check_params(const KnnParams& p) {
  AMQ_EXPECTS(
      p.index == IndexKind::flat || p.index == IndexKind::hnsw || p.index == IndexKind::ivfpq,
      "unknown index kind " << static_cast<std::uint32_t>(p.index));
  AMQ_EXPECTS(p.image_score == ImageScore::max || p.image_score == ImageScore::mean,
              "unknown image score kind " << static_cast<std::uint32_t>(p.image_score));
  AMQ_EXPECTS(p.hnsw_m >= 2, "HNSW M must be at least 2, got " << p.hnsw_m);
  AMQ_EXPECTS(p.ef_construction >= 1,
              "HNSW efConstruction must be positive, got " << p.ef_construction);
  AMQ_EXPECTS(p.ef_search >= 1, "HNSW efSearch must be positive, got " << p.ef_search);
  AMQ_EXPECTS(p.nlist >= 1, "IVFPQ nlist must be positive, got " << p.nlist);
  AMQ_EXPECTS(p.pq_m >= 1, "IVFPQ m must be positive, got " << p.pq_m);
  AMQ_EXPECTS(p.pq_nbits >= 1 && p.pq_nbits <= 16,
              "IVFPQ nbits must lie in [1, 16], got " << p.pq_nbits);
  AMQ_EXPECTS(p.nprobe >= 1 && p.nprobe <= p.nlist,
              "IVFPQ nprobe must lie in [1, nlist = " << p.nlist << "], got " << p.nprobe);
  AMQ_EXPECTS(p.train_sample >= 1,
              "IVFPQ training sample must be positive, got " << p.train_sample);
  AMQ_EXPECTS(p.coreset.ratio > 0.0 && p.coreset.ratio <= 1.0,
              "coreset ratio must lie in (0, 1], got " << p.coreset.ratio);
}

/// `count` distinct rows out of `rows`, by a seeded partial Fisher-Yates shuffle.
std::vector<std::size_t> sample_rows(std::size_t rows, std::size_t count, std::uint64_t seed) {
  std::vector<std::size_t> order(rows);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::uint64_t state = seed ^ 0x747261696E696E67ULL;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    std::swap(order[i], order[i + static_cast<std::size_t>(z % (rows - i))]);
  }
  order.resize(count);
  return order;
}

std::vector<float> gather_rows(const std::vector<float>& bank, std::size_t depth,
                               const std::vector<std::size_t>& rows) {
  std::vector<float> out(rows.size() * depth);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(bank.data() + rows[i] * depth, depth, out.data() + i * depth);
  }
  return out;
}

}  // namespace

std::string to_string(IndexKind kind) {
  switch (kind) {
    case IndexKind::flat:
      return "flat";
    case IndexKind::hnsw:
      return "hnsw";
    case IndexKind::ivfpq:
      return "ivfpq";
  }
  AMQ_FAIL("unknown index kind " << static_cast<std::uint32_t>(kind));
}

IndexKind parse_index_kind(const std::string& name) {
  if (name == "flat") return IndexKind::flat;
  if (name == "hnsw") return IndexKind::hnsw;
  if (name == "ivfpq") return IndexKind::ivfpq;
  AMQ_FAIL("unknown kNN index '" << name << "' (expected flat, hnsw or ivfpq)");
}

KnnScorer::KnnScorer(const KnnParams& params) : params_(params) { check_params(params_); }
KnnScorer::~KnnScorer() = default;
KnnScorer::KnnScorer(KnnScorer&&) noexcept = default;
KnnScorer& KnnScorer::operator=(KnnScorer&&) noexcept = default;

void KnnScorer::expect_map(const FeatureMap& map, const char* what) const {
  AMQ_EXPECTS(map.data != nullptr, what << " has no data");
  AMQ_EXPECTS(map.pixels() > 0,
              what << " has no pixels (" << map.width << " x " << map.height << ")");
  AMQ_EXPECTS(map.depth > 0, what << " has depth 0");
  if (depth_ > 0) {
    AMQ_EXPECTS(map.depth == depth_,
                what << " has depth D = " << map.depth << ", the memory bank has D = " << depth_);
    AMQ_EXPECTS(map.width == width_ && map.height == height_,
                what << " is " << map.width << " x " << map.height << " pixels, the training maps"
                     << " are " << width_ << " x " << height_);
  }
  detail::expect_finite(map.matrix(), what);
}

void KnnScorer::collect(const FeatureMap& map) {
  AMQ_EXPECTS(!built(), "collect() after build(): use add() to extend a built index");
  expect_map(map, "training feature map");
  depth_ = map.depth;
  width_ = map.width;
  height_ = map.height;
  bank_.insert(bank_.end(), map.data, map.data + map.pixels() * map.depth);
}

void KnnScorer::fit(const std::vector<FeatureMap>& maps) {
  for (const FeatureMap& map : maps) collect(map);
  build();
}

void KnnScorer::build() {
  AMQ_EXPECTS(!built(), "build() called twice");
  AMQ_EXPECTS(!bank_.empty(), "build() needs collected feature maps, none were given");
  const std::size_t d = depth_;

  if (params_.use_coreset) {
    const MatrixView<const float> all{bank_.data(), bank_.size() / d, d};
    bank_ = gather_rows(bank_, d, greedy_coreset(all, params_.coreset));
  }
  const std::size_t rows = bank_.size() / d;
  const auto di = static_cast<int>(d);

  std::unique_ptr<faiss::Index> index;
  if (params_.index == IndexKind::flat) {
    index = std::make_unique<faiss::IndexFlatL2>(di);
  } else if (params_.index == IndexKind::hnsw) {
    auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(di, params_.hnsw_m);
    hnsw->hnsw.efConstruction = params_.ef_construction;
    index = std::move(hnsw);
  } else {
    AMQ_EXPECTS(d % static_cast<std::size_t>(params_.pq_m) == 0,
                "IVFPQ m = " << params_.pq_m << " must divide the depth D = " << d);
    const std::size_t sample = std::min(params_.train_sample, rows);
    const std::size_t needed = std::max<std::size_t>(static_cast<std::size_t>(params_.nlist),
                                                     std::size_t{1} << params_.pq_nbits);
    AMQ_EXPECTS(sample >= needed, "IVFPQ training needs at least "
                                      << needed
                                      << " rows (nlist and 2^nbits centroids), the memory bank "
                                      << "gives " << sample);
    auto ivfpq = std::make_unique<faiss::IndexIVFPQ>(
        new faiss::IndexFlatL2(di), d, static_cast<std::size_t>(params_.nlist),
        static_cast<std::size_t>(params_.pq_m), static_cast<std::size_t>(params_.pq_nbits));
    ivfpq->own_fields = true;
    const std::vector<float> training =
        gather_rows(bank_, d, sample_rows(rows, sample, params_.seed));
    faiss_call("train the IVFPQ index",
               [&] { ivfpq->train(static_cast<FaissId>(sample), training.data()); });
    index = std::move(ivfpq);
  }
  faiss_call("add the memory bank", [&] { index->add(static_cast<FaissId>(rows), bank_.data()); });

  index_ = std::move(index);
  configure_search();
  bank_.clear();
  bank_.shrink_to_fit();
}

void KnnScorer::add(const FeatureMap& map) {
  AMQ_EXPECTS(built(), "add() needs a built index: call build() first");
  expect_map(map, "added feature map");
  faiss_call("add a feature map",
             [&] { index_->add(static_cast<FaissId>(map.pixels()), map.data); });
}

void KnnScorer::configure_search() {
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index_.get())) {
    hnsw->hnsw.efSearch = params_.ef_search;
  }
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get())) {
    ivf->nprobe = static_cast<std::size_t>(params_.nprobe);
  }
}

void KnnScorer::set_ef_search(int ef_search) {
  KnnParams p = params_;
  p.ef_search = ef_search;
  check_params(p);
  params_ = p;
  if (built()) configure_search();
}

void KnnScorer::set_nprobe(int nprobe) {
  KnnParams p = params_;
  p.nprobe = nprobe;
  check_params(p);
  params_ = p;
  if (built()) configure_search();
}

void KnnScorer::score(const FeatureMap& map, float* out) const {
  AMQ_EXPECTS(built(), "score() needs a built index: call build() or load() first");
  AMQ_EXPECTS(out != nullptr, "score map output is null");
  expect_map(map, "test feature map");

  const std::size_t n = map.pixels();
  std::vector<FaissId> nearest(n);
  faiss_call("search the memory bank",
             [&] { index_->search(static_cast<FaissId>(n), map.data, 1, out, nearest.data()); });
  // Faiss returns squared L2 distances; PatchCore's score is the distance itself. Rounding
  // in the expanded ||x||^2 + ||y||^2 - 2 x.y form can dip just below zero.
  for (std::size_t i = 0; i < n; ++i) out[i] = std::sqrt(std::max(out[i], 0.0f));
}

std::vector<float> KnnScorer::score(const FeatureMap& map) const {
  std::vector<float> out(map.pixels());
  score(map, out.data());
  return out;
}

float KnnScorer::image_score(const float* score_map, std::size_t image_width,
                             std::size_t image_height) const {
  AMQ_EXPECTS(width_ > 0, "image_score needs a trained model");
  return amq::image_score(score_map, width_, height_, params_.image_score, image_width,
                          image_height);
}

std::size_t KnnScorer::collected() const { return depth_ == 0 ? 0 : bank_.size() / depth_; }

std::size_t KnnScorer::size() const {
  return built() ? static_cast<std::size_t>(index_->ntotal) : 0;
}

std::size_t KnnScorer::index_bytes() const {
  if (!built()) return 0;
  faiss::VectorIOWriter writer;
  faiss_call("serialise the index", [&] { faiss::write_index(index_.get(), &writer); });
  return writer.data.size();
}

void KnnScorer::save(std::ostream& out) const {
  AMQ_EXPECTS(built(), "save() needs a built index");
  faiss::VectorIOWriter payload;
  faiss_call("serialise the index", [&] { faiss::write_index(index_.get(), &payload); });

  HeaderWriter h;
  h.bytes(kMagic, sizeof kMagic);
  h.u32(kFormatVersion);
  h.u32(static_cast<std::uint32_t>(params_.index));
  h.u32(static_cast<std::uint32_t>(params_.image_score));
  h.u64(depth_);
  h.u64(width_);
  h.u64(height_);
  h.i32(params_.hnsw_m);
  h.i32(params_.ef_construction);
  h.i32(params_.ef_search);
  h.i32(params_.nlist);
  h.i32(params_.pq_m);
  h.i32(params_.pq_nbits);
  h.i32(params_.nprobe);
  h.u64(params_.train_sample);
  h.u32(params_.use_coreset ? 1 : 0);
  h.f64(params_.coreset.ratio);
  h.u64(params_.coreset.projection_dim);
  h.u64(params_.coreset.seed);
  h.u64(params_.seed);
  h.u64(static_cast<std::uint64_t>(index_->ntotal));
  h.u64(payload.data.size());

  Checksum checksum;
  checksum.update(h.buffer().data(), h.buffer().size());
  checksum.update(payload.data.data(), payload.data.size());
  HeaderWriter tail;
  tail.u64(checksum.value());

  out.write(reinterpret_cast<const char*>(h.buffer().data()),
            static_cast<std::streamsize>(h.buffer().size()));
  out.write(reinterpret_cast<const char*>(payload.data.data()),
            static_cast<std::streamsize>(payload.data.size()));
  out.write(reinterpret_cast<const char*>(tail.buffer().data()),
            static_cast<std::streamsize>(tail.buffer().size()));
  AMQ_EXPECTS(out.good(), "writing the kNN model failed after "
                              << h.buffer().size() + payload.data.size() << " bytes");
}

void KnnScorer::save(const std::string& path) const {
  const std::string temp = path + ".tmp";
  try {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    AMQ_EXPECTS(out.is_open(), "cannot open '" << temp << "' to write the kNN model");
    save(out);
    out.close();
    AMQ_EXPECTS(!out.fail(), "closing '" << temp << "' failed");
    AMQ_EXPECTS(std::rename(temp.c_str(), path.c_str()) == 0,
                "cannot rename '" << temp << "' to '" << path << "'");
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
}

KnnScorer KnnScorer::load(std::istream& in) {
  ModelReader r(in);
  char magic[sizeof kMagic];
  r.bytes(magic, sizeof magic, "magic");
  AMQ_EXPECTS(std::memcmp(magic, kMagic, sizeof kMagic) == 0,
              "not a kNN model file: the magic bytes do not read AMQ-KNN");
  const std::uint32_t version = r.u32("format version");
  AMQ_EXPECTS(version == kFormatVersion, "kNN model format version "
                                             << version << " is not supported (this build reads "
                                             << kFormatVersion << ")");
  KnnParams p;
  const std::uint32_t kind = r.u32("index kind");
  AMQ_EXPECTS(kind <= 2, "kNN model file names unknown index kind " << kind);
  p.index = static_cast<IndexKind>(kind);
  const std::uint32_t image_score = r.u32("image score rule");
  AMQ_EXPECTS(image_score <= 1, "kNN model file names unknown image score rule " << image_score);
  p.image_score = static_cast<ImageScore>(image_score);
  const std::uint64_t depth = r.u64("depth");
  const std::uint64_t width = r.u64("width");
  const std::uint64_t height = r.u64("height");
  p.hnsw_m = r.i32("HNSW M");
  p.ef_construction = r.i32("HNSW efConstruction");
  p.ef_search = r.i32("HNSW efSearch");
  p.nlist = r.i32("IVFPQ nlist");
  p.pq_m = r.i32("IVFPQ m");
  p.pq_nbits = r.i32("IVFPQ nbits");
  p.nprobe = r.i32("IVFPQ nprobe");
  p.train_sample = r.u64("IVFPQ training sample");
  p.use_coreset = r.u32("coreset flag") != 0;
  p.coreset.ratio = r.f64("coreset ratio");
  p.coreset.projection_dim = r.u64("coreset projection");
  p.coreset.seed = r.u64("coreset seed");
  p.seed = r.u64("seed");
  const std::uint64_t count = r.u64("feature count");
  const std::uint64_t payload_size = r.u64("index size");
  std::vector<std::uint8_t> payload = r.payload(payload_size);
  const std::uint64_t computed = r.checksum();
  const std::uint64_t stored = r.u64("checksum");
  AMQ_EXPECTS(stored == computed, "kNN model file is corrupt: checksum " << std::hex << stored
                                                                         << " stored, " << computed
                                                                         << " computed");

  // The checksum matched, so a mismatch below means a file written by another program.
  AMQ_EXPECTS(depth > 0 && width > 0 && height > 0, "kNN model file has an empty feature map shape "
                                                        << width << " x " << height << " x "
                                                        << depth);
  KnnScorer scorer(p);
  faiss::VectorIOReader reader;
  reader.data = std::move(payload);
  faiss::Index* raw = nullptr;
  faiss_call("read the index in the kNN model file", [&] { raw = faiss::read_index(&reader); });
  scorer.index_.reset(raw);
  const faiss::Index* index = scorer.index_.get();
  const bool kind_matches =
      (p.index == IndexKind::flat && dynamic_cast<const faiss::IndexFlatL2*>(index)) ||
      (p.index == IndexKind::hnsw && dynamic_cast<const faiss::IndexHNSWFlat*>(index)) ||
      (p.index == IndexKind::ivfpq && dynamic_cast<const faiss::IndexIVFPQ*>(index));
  AMQ_EXPECTS(kind_matches, "kNN model file header says "
                                << to_string(p.index) << " but holds another kind of Faiss index");
  AMQ_EXPECTS(static_cast<std::uint64_t>(index->d) == depth,
              "kNN model file header says depth " << depth << ", its index has " << index->d);
  AMQ_EXPECTS(
      static_cast<std::uint64_t>(index->ntotal) == count,
      "kNN model file header says " << count << " features, its index has " << index->ntotal);
  scorer.depth_ = static_cast<std::size_t>(depth);
  scorer.width_ = static_cast<std::size_t>(width);
  scorer.height_ = static_cast<std::size_t>(height);
  scorer.configure_search();
  return scorer;
}

KnnScorer KnnScorer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  AMQ_EXPECTS(in.is_open(), "cannot open kNN model file '" << path << "'");
  return load(in);
}

}  // namespace amq::knn
