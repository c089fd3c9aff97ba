// amq_mpi_fit: one AMQ model fitted by several MPI processes (docs/distributed.md).
//
// Every rank collects the keys of its own shard of the training maps (image i goes to rank
// i mod P). The ranks then agree on what a single fit would have seen: N and the key count by
// MPI_Allreduce(SUM), the distinct keys exactly, by sending each key to the rank that owns
// its hash and counting there. With these totals every rank sizes the same filter (M, and B by
// the paper's eq. 5 or by the target false-positive rate), inserts its own keys, and the
// filters are united by MPI_Allreduce(BOR) on their words. Rank 0 saves the model, which is
// byte for byte the model of one process fitting all maps (`--single`).
//
// Feature maps come from MVTec-style images through MobileNetV2 (`--data`, `--weights`), or
// are synthetic (`--synthetic N`): map i depends only on the seed and i, so each rank makes its
// own shard without reading anything.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "amq/amq.hpp"

#if AMQ_MPI_FIT_IMAGES
#include "dataset.hpp"
#include "feature_source.hpp"
#include "image_io.hpp"
#endif

namespace {

using ClassicScorer = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::ClassicBloom>>;
using SplitBlockScorer = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>>;

/// The command line of the program.
struct Options {
  std::size_t synthetic = 0;       ///< N synthetic maps; 0 = images from --data.
  std::size_t width = 28;          ///< Synthetic map width W.
  std::size_t height = 28;         ///< Synthetic map height H.
  std::size_t depth = 64;          ///< Synthetic map depth D.
  std::filesystem::path data;      ///< Category folder; its train/good images.
  std::filesystem::path weights;   ///< MobileNetV2 safetensors.
  std::size_t limit = 0;           ///< Use only the first images of --data; 0 = all.
  int threads = 0;                 ///< LibTorch threads per rank; 0 = its default.
  std::size_t hashes = 256;        ///< G.
  double bucket_width = 1.0;       ///< ε in feature units.
  std::string filter = "classic";  ///< "classic" or "split-block".
  std::uint64_t filter_bits = std::uint64_t{1} << 26;  ///< M (paper's rule).
  double target_fpr = 0.0;    ///< When positive, size by distinct keys instead.
  std::uint32_t probes = 0;   ///< B override.
  std::uint64_t seed = 0;     ///< Projection, filter and synthetic-data seed.
  bool single = false;        ///< Plain fit in this one process, without MPI calls.
  std::filesystem::path out;  ///< Model file rank 0 writes.
};

/// Seconds spent in each step on this rank.
struct StepTimes {
  double collect = 0.0;      ///< Features and keys of the local shard.
  double wait = 0.0;         ///< Waiting at the barrier for the slowest rank (stragglers).
  double count = 0.0;        ///< Totals and the exact distinct-key count.
  double build = 0.0;        ///< Sizing and inserting the local keys.
  double allreduce = 0.0;    ///< The bitwise-OR Allreduce of the filter words.
  double collect_cpu = 0.0;  ///< Processor time of collect (all threads of the process).
};

/// One synthetic feature map: pixels near one of 32 centres (drawn from the seed alone, so
/// equal on every rank), chosen and jittered by a generator seeded with (seed, index).
class SyntheticMaps {
 public:
  explicit SyntheticMaps(const Options& o) : o_(o), centres_(32, std::vector<float>(o.depth)) {
    std::mt19937_64 rng(o.seed);
    std::normal_distribution<float> spread(0.0f, 4.0f);
    for (auto& centre : centres_) {
      for (float& v : centre) v = spread(rng);
    }
  }

  std::vector<float> map(std::size_t index) const {
    std::seed_seq seq{static_cast<std::uint32_t>(o_.seed), static_cast<std::uint32_t>(index),
                      static_cast<std::uint32_t>(index >> 32)};
    std::mt19937_64 rng(seq);
    std::normal_distribution<float> jitter(0.0f, 0.25f);
    std::uniform_int_distribution<std::size_t> pick(0, centres_.size() - 1);
    std::vector<float> data(o_.width * o_.height * o_.depth);
    for (std::size_t p = 0; p < o_.width * o_.height; ++p) {
      const std::vector<float>& centre = centres_[pick(rng)];
      for (std::size_t d = 0; d < o_.depth; ++d) data[p * o_.depth + d] = centre[d] + jitter(rng);
    }
    return data;
  }

 private:
  const Options& o_;
  std::vector<std::vector<float>> centres_;
};

/// The training maps, synthetic or from images, dealt to ranks: map i belongs to shard
/// i mod P, so shards differ in size by one map at most.
class MapSource {
 public:
  explicit MapSource(const Options& o) : o_(o) {
    if (o.synthetic > 0) {
      synthetic_.emplace(o);
      return;
    }
#if AMQ_MPI_FIT_IMAGES
    images_ = amq::cli::training_images(o.data);
    if (o.limit > 0 && images_.size() > o.limit) images_.resize(o.limit);
    amq::features::FeatureOptions options =
        amq::features::default_options(amq::features::Backbone::mobilenet_v2);
    options.threads = o.threads;
    network_ = amq::features::make_feature_source(amq::features::Backbone::mobilenet_v2,
                                                  o.weights.string(), options);
#else
    AMQ_EXPECTS(false, "this build reads no images (LibTorch or OpenCV missing): use --synthetic");
#endif
  }

  /// D of every map.
  std::size_t depth() const {
#if AMQ_MPI_FIT_IMAGES
    if (network_) return network_->depth();
#endif
    return o_.depth;
  }

  /// Calls `collect(map)` for each map of shard `shard` of `shards`.
  template <class Collect>
  void for_each(std::size_t shard, std::size_t shards, Collect&& collect) {
    if (synthetic_) {
      for (std::size_t i = shard; i < o_.synthetic; i += shards) {
        const std::vector<float> data = synthetic_->map(i);
        collect(amq::FeatureMap{data.data(), o_.width, o_.height, o_.depth});
      }
      return;
    }
#if AMQ_MPI_FIT_IMAGES
    for (std::size_t i = shard; i < images_.size(); i += shards) {
      const cv::Mat image = amq::cli::read_rgb_image(images_[i]);
      const amq::features::FeatureMapBuffer map = network_->extract(
          {image.data, static_cast<std::size_t>(image.cols), static_cast<std::size_t>(image.rows)});
      collect(map.view());
    }
#endif
  }

 private:
  const Options& o_;
  std::optional<SyntheticMaps> synthetic_;
#if AMQ_MPI_FIT_IMAGES
  std::vector<std::filesystem::path> images_;
  std::unique_ptr<amq::features::FeatureSource> network_;
#endif
};

amq::ScorerParams scorer_params(const Options& o, std::size_t depth) {
  amq::ScorerParams params;
  params.lsh.dim = depth;
  params.lsh.hashes = o.hashes;
  params.lsh.bucket_width = static_cast<float>(o.bucket_width);
  params.lsh.seed = o.seed;
  params.filter_seed = static_cast<std::uint32_t>(o.seed);
  params.filter_bits = o.filter_bits;
  if (o.target_fpr > 0.0) {
    params.sizing = amq::SizingRule::target_fpr;
    params.target_fpr = o.target_fpr;
  }
  params.probes = o.probes;
  return params;
}

/// The number of distinct keys over all ranks, exactly: each key goes to the rank that owns
/// its hash (a partition of the key space), which counts the distinct keys it received.
template <class Scorer>
std::uint64_t global_distinct_keys(const Scorer& scorer, int ranks, MPI_Comm comm) {
  const auto parts = static_cast<std::size_t>(ranks);
  std::vector<std::vector<std::uint64_t>> outgoing(parts);
  // A seed other than the filter's keeps the owner independent of the filter's probes.
  scorer.for_each_collected_key([&](std::uint64_t key) {
    outgoing[amq::murmur3_x64_128(key, 0x6b657973u).h2 % parts].push_back(key);
  });

  std::vector<int> send_counts(parts);
  std::vector<int> send_offsets(parts);
  std::vector<std::uint64_t> send;
  for (std::size_t r = 0; r < parts; ++r) {
    // MPI counts and offsets are int; larger key sets would need several exchange rounds.
    AMQ_EXPECTS(send.size() + outgoing[r].size() <= static_cast<std::size_t>(INT_MAX),
                "distinct-key exchange of more than " << INT_MAX << " keys from one rank");
    send_offsets[r] = static_cast<int>(send.size());
    send_counts[r] = static_cast<int>(outgoing[r].size());
    send.insert(send.end(), outgoing[r].begin(), outgoing[r].end());
    std::vector<std::uint64_t>().swap(outgoing[r]);
  }

  std::vector<int> receive_counts(parts);
  MPI_Alltoall(send_counts.data(), 1, MPI_INT, receive_counts.data(), 1, MPI_INT, comm);
  std::vector<int> receive_offsets(parts);
  std::size_t received = 0;
  for (std::size_t r = 0; r < parts; ++r) {
    AMQ_EXPECTS(
        received + static_cast<std::size_t>(receive_counts[r]) <= static_cast<std::size_t>(INT_MAX),
        "distinct-key exchange of more than " << INT_MAX << " keys to one rank");
    receive_offsets[r] = static_cast<int>(received);
    received += static_cast<std::size_t>(receive_counts[r]);
  }
  std::vector<std::uint64_t> keys(received);
  MPI_Alltoallv(send.data(), send_counts.data(), send_offsets.data(), MPI_UINT64_T, keys.data(),
                receive_counts.data(), receive_offsets.data(), MPI_UINT64_T, comm);

  std::sort(keys.begin(), keys.end());
  std::uint64_t local =
      static_cast<std::uint64_t>(std::unique(keys.begin(), keys.end()) - keys.begin());
  std::uint64_t total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_UINT64_T, MPI_SUM, comm);
  return total;
}

/// N, W, H and the key counts over all ranks: what one fit on every map would have seen.
template <class Scorer>
amq::SizingReport global_totals(const Scorer& scorer, int ranks, MPI_Comm comm) {
  const amq::SizingReport& local = scorer.sizing();
  std::uint64_t sums[2] = {local.images, local.total_keys};
  MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_UINT64_T, MPI_SUM, comm);
  // A rank without maps reports W = H = 0; build(totals) refuses ranks whose maps differ.
  std::uint64_t size[2] = {local.width, local.height};
  MPI_Allreduce(MPI_IN_PLACE, size, 2, MPI_UINT64_T, MPI_MAX, comm);

  amq::SizingReport totals;
  totals.images = sums[0];
  totals.total_keys = sums[1];
  totals.width = size[0];
  totals.height = size[1];
  totals.distinct_keys = global_distinct_keys(scorer, ranks, comm);
  return totals;
}

/// ORs the filter words of all ranks; MPI counts are int, so large filters go in pieces.
void allreduce_or(std::vector<std::uint32_t>& words, MPI_Comm comm) {
  constexpr std::size_t piece = std::size_t{1} << 30;
  for (std::size_t first = 0; first < words.size(); first += piece) {
    const int count = static_cast<int>(std::min(piece, words.size() - first));
    MPI_Allreduce(MPI_IN_PLACE, words.data() + first, count, MPI_UINT32_T, MPI_BOR, comm);
  }
}

template <class Scorer>
void fit(const Options& o, int rank, int ranks) {
  StepTimes times;
  double start = MPI_Wtime();
  const std::clock_t cpu_start = std::clock();
  MapSource maps(o);
  Scorer scorer(scorer_params(o, maps.depth()));
  maps.for_each(o.single ? 0 : static_cast<std::size_t>(rank),
                o.single ? 1 : static_cast<std::size_t>(ranks),
                [&](const amq::FeatureMap& map) { scorer.collect(map); });
  times.collect = MPI_Wtime() - start;
  times.collect_cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;

  if (o.single) {
    start = MPI_Wtime();
    scorer.build();
    times.build = MPI_Wtime() - start;
  } else {
    const MPI_Comm comm = MPI_COMM_WORLD;
    start = MPI_Wtime();
    MPI_Barrier(comm);
    times.wait = MPI_Wtime() - start;

    start = MPI_Wtime();
    const amq::SizingReport totals = global_totals(scorer, ranks, comm);
    times.count = MPI_Wtime() - start;

    start = MPI_Wtime();
    scorer.build(totals);
    times.build = MPI_Wtime() - start;

    // Every rank has built the same M and B; the union of the shards' filters is one word-wise
    // OR, M/8 bytes per rank.
    std::vector<std::uint32_t> words(scorer.filter().words().begin(),
                                     scorer.filter().words().end());
    MPI_Barrier(comm);
    start = MPI_Wtime();
    allreduce_or(words, comm);
    times.allreduce = MPI_Wtime() - start;
    if (rank == 0) {
      using Filter = std::decay_t<decltype(scorer.filter())>;
      scorer.unite(Filter::from_words(scorer.filter().params(), words));
    }
  }

  // The slowest rank sets each step's time. The processor time of collecting shows the work
  // per rank even when ranks share cores with other jobs, which wall-clock time does not.
  double slowest[6] = {times.collect, times.wait,      times.count,
                       times.build,   times.allreduce, times.collect_cpu};
  double cpu_all = times.collect_cpu;
  if (!o.single) {
    MPI_Allreduce(MPI_IN_PLACE, slowest, 6, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &cpu_all, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  }
  if (rank != 0) return;
  start = MPI_Wtime();
  scorer.save(o.out.string());
  const double save = MPI_Wtime() - start;
  const amq::SizingReport& s = scorer.sizing();
  std::printf(
      "ranks %d  maps %llu  keys %llu  distinct %llu  M %llu  B %u  fpr %.3g  "
      "collect %.3f s  wait %.3f s  count %.3f s  build %.3f s  allreduce %.4f s (%llu bytes)  "
      "save %.3f s  collect cpu %.2f s (slowest rank) %.2f s (all ranks)\n",
      o.single ? 1 : ranks, static_cast<unsigned long long>(s.images),
      static_cast<unsigned long long>(s.total_keys),
      static_cast<unsigned long long>(s.distinct_keys), static_cast<unsigned long long>(s.bits),
      s.probes, s.estimated_fpr, slowest[0], slowest[1], slowest[2], slowest[3], slowest[4],
      static_cast<unsigned long long>(scorer.filter().size_bytes()), save, slowest[5], cpu_all);
}

void check(const Options& o, int ranks) {
  AMQ_EXPECTS(!o.single || ranks == 1,
              "--single fits in one process, but " << ranks << " MPI ranks were started");
  AMQ_EXPECTS((o.synthetic > 0) != !o.data.empty(),
              "give exactly one of --synthetic N and --data DIR");
  AMQ_EXPECTS(o.data.empty() || !o.weights.empty(), "--data needs --weights (MobileNetV2)");
  AMQ_EXPECTS(o.synthetic == 0 || (o.width > 0 && o.height > 0 && o.depth > 0),
              "synthetic maps of " << o.width << " x " << o.height << " x " << o.depth
                                   << " must have positive sizes");
  AMQ_EXPECTS(o.filter == "classic" || o.filter == "split-block",
              "unknown filter '" << o.filter << "' (expected classic or split-block)");
  const std::filesystem::path folder =
      o.out.parent_path().empty() ? std::filesystem::path(".") : o.out.parent_path();
  AMQ_EXPECTS(std::filesystem::is_directory(folder),
              "cannot write model " << o.out << ": folder " << folder << " does not exist");
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  Options o;
  CLI::App app{"amq_mpi_fit: fit one AMQ model over MPI processes (image i on rank i mod P)"};
  app.add_option("--synthetic", o.synthetic, "Fit N synthetic feature maps");
  app.add_option("--width", o.width, "Synthetic map width W")->capture_default_str();
  app.add_option("--height", o.height, "Synthetic map height H")->capture_default_str();
  app.add_option("--depth", o.depth, "Synthetic map depth D")->capture_default_str();
  app.add_option("--data", o.data, "Category folder: fit its train/good images");
  app.add_option("--weights", o.weights, "MobileNetV2 weights (safetensors)");
  app.add_option("--limit", o.limit, "Use only the first images of --data (0: all)");
  app.add_option("--threads", o.threads, "LibTorch threads per rank (0: default)");
  app.add_option("--hashes,-G", o.hashes, "Hash functions G")->capture_default_str();
  app.add_option("--bucket-width", o.bucket_width, "Bucket width in feature units")
      ->capture_default_str();
  app.add_option("--filter", o.filter, "classic or split-block")->capture_default_str();
  app.add_option("--filter-bits,-M", o.filter_bits, "Filter size M; B by eq. 5")
      ->capture_default_str();
  app.add_option("--target-fpr", o.target_fpr, "Size by the distinct keys for this FPR");
  app.add_option("--probes", o.probes, "Probe count B (default: by the sizing rule)");
  app.add_option("--seed", o.seed, "Seed of projection, filter and synthetic maps")
      ->capture_default_str();
  app.add_flag("--single", o.single, "Plain one-process fit, the reference of the MPI fit");
  app.add_option("--out,-o", o.out, "Model file (written by rank 0)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    MPI_Finalize();
    return code;
  }

  try {
    check(o, ranks);
    if (o.filter == "split-block") {
      fit<SplitBlockScorer>(o, rank, ranks);
    } else {
      fit<ClassicScorer>(o, rank, ranks);
    }
  } catch (const std::exception& error) {
    // One rank's failure must stop all of them: the others would wait in a collective forever.
    std::cerr << "amq_mpi_fit: rank " << rank << ": error: " << error.what() << "\n";
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return 0;
}
