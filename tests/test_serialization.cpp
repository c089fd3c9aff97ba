#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "amq/amq.hpp"

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kWidth = 4;
constexpr std::size_t kHeight = 3;
constexpr std::size_t kDepth = 8;
constexpr std::size_t kHashes = 32;
constexpr std::uint64_t kBits = 4096;

// Offsets of fields in a version-1 file (docs/model-format.md).
constexpr std::size_t kVersionAt = 8;
constexpr std::size_t kHashCountAt = 24;
constexpr std::size_t kBucketWidthAt = 32;
constexpr std::size_t kPolicyAt = 44;
constexpr std::size_t kTargetFprAt = 80;
constexpr std::size_t kDirectionCountAt = 164;

std::vector<float> random_map(std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> data(kWidth * kHeight * kDepth);
  for (float& v : data) v = normal(rng);
  return data;
}

amq::FeatureMap view(const std::vector<float>& data) {
  return {data.data(), kWidth, kHeight, kDepth};
}

// A folder of its own per test case, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("amq_test_serialization_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void put_u32(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(value >> (8 * i));
}

void put_u64(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint64_t get_u64(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= std::uint64_t{bytes[at + i]} << (8 * i);
  return value;
}

// Recomputes the trailing checksum, so that a test reaches the field checks behind it.
void reseal(std::vector<std::uint8_t>& bytes) {
  put_u64(bytes, bytes.size() - 8, amq::fnv1a64(bytes.data(), bytes.size() - 8));
}

struct Trained {
  std::vector<std::vector<float>> train;
  std::vector<std::vector<float>> test;
  amq::AmqScorer<> scorer;

  explicit Trained(amq::ImageScore rule = amq::ImageScore::max) : scorer(params(rule)) {
    std::mt19937 rng(11);
    for (int i = 0; i < 6; ++i) train.push_back(random_map(rng));
    for (int i = 0; i < 3; ++i) test.push_back(random_map(rng));
    std::vector<amq::FeatureMap> maps;
    for (const auto& m : train) maps.push_back(view(m));
    scorer.fit(maps);
  }

  static amq::ScorerParams params(amq::ImageScore rule) {
    amq::ScorerParams p;
    p.lsh.dim = kDepth;
    p.lsh.hashes = kHashes;
    p.lsh.bucket_width = 2.0f;
    p.lsh.seed = 99;
    p.filter_bits = kBits;
    p.filter_seed = 5;
    p.image_score = rule;
    return p;
  }
};

void check_refused(const std::string& path, const std::string& expected) {
  CAPTURE(expected);
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>::load(path), doctest::Contains(expected.c_str()),
                       amq::Error);
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>::load(path), doctest::Contains(path.c_str()), amq::Error);
}

}  // namespace

TEST_CASE("FNV-1a 64 matches its published test values") {
  CHECK(amq::fnv1a64(nullptr, 0) == 0xcbf29ce484222325ULL);
  const std::uint8_t a[] = {'a'};
  CHECK(amq::fnv1a64(a, 1) == 0xaf63dc4c8601ec8cULL);
  const std::uint8_t foobar[] = {'f', 'o', 'o', 'b', 'a', 'r'};
  CHECK(amq::fnv1a64(foobar, 6) == 0x85944171f73967e8ULL);
}

TEST_CASE("a loaded model scores exactly like the saved one") {
  TempDir dir("roundtrip");
  Trained trained;
  const std::string path = dir.file("model.amq");
  trained.scorer.save(path);

  // Only the model remains in the folder: the temporary file was renamed.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  // The size in docs/model-format.md: 196 + 4·G·D + 4·G + 4·words, with M/32 words here.
  CHECK(fs::file_size(path) == 196 + 4 * kHashes * kDepth + 4 * kHashes + 4 * (kBits / 32));

  const amq::AmqScorer<> loaded = amq::AmqScorer<>::load(path);
  CHECK(loaded.filter().words() == trained.scorer.filter().words());
  CHECK(loaded.encoder().directions() == trained.scorer.encoder().directions());
  CHECK(loaded.encoder().offsets() == trained.scorer.encoder().offsets());
  CHECK(loaded.map_width() == kWidth);
  CHECK(loaded.map_height() == kHeight);
  CHECK(loaded.params().image_score == amq::ImageScore::max);
  CHECK(loaded.params().filter_seed == 5);

  const amq::SizingReport& a = trained.scorer.sizing();
  const amq::SizingReport& b = loaded.sizing();
  CHECK(b.images == a.images);
  CHECK(b.total_keys == a.total_keys);
  CHECK(b.distinct_keys == a.distinct_keys);
  CHECK(b.paper_bits == a.paper_bits);
  CHECK(b.paper_probes == a.paper_probes);
  CHECK(b.fpr_bits == a.fpr_bits);
  CHECK(b.fpr_probes == a.fpr_probes);
  CHECK(b.bits == a.bits);
  CHECK(b.probes == a.probes);
  CHECK(b.estimated_fpr == a.estimated_fpr);

  for (const auto& t : trained.test) {
    const std::vector<float> before = trained.scorer.score(view(t));
    CHECK(loaded.score(view(t)) == before);
    CHECK(loaded.image_score(before.data(), 32, 24) ==
          trained.scorer.image_score(before.data(), 32, 24));
  }

  // Saving the loaded model gives the same bytes.
  const std::string again = dir.file("again.amq");
  loaded.save(again);
  CHECK(read_bytes(again) == read_bytes(path));

  // The in-memory twins: to_bytes is the file, from_bytes loads it with the same checks.
  std::vector<std::uint8_t> bytes = trained.scorer.to_bytes();
  CHECK(bytes == read_bytes(path));
  const auto from_memory = amq::AmqScorer<>::from_bytes(bytes.data(), bytes.size(), "in memory");
  CHECK(from_memory.score(view(trained.test[0])) == trained.scorer.score(view(trained.test[0])));
  bytes[bytes.size() / 2] ^= 0x01;
  CHECK_THROWS_WITH_AS(amq::AmqScorer<>::from_bytes(bytes.data(), bytes.size(), "in memory"),
                       doctest::Contains("model file 'in memory': checksum mismatch"), amq::Error);
}

TEST_CASE("a loaded model keeps learning like the original") {
  TempDir dir("add");
  Trained trained;
  const std::string path = dir.file("model.amq");
  trained.scorer.save(path);
  amq::AmqScorer<> loaded = amq::AmqScorer<>::load(path);
  trained.scorer.add(view(trained.test[0]));
  loaded.add(view(trained.test[0]));
  CHECK(loaded.filter().words() == trained.scorer.filter().words());
  CHECK(loaded.sizing().images == 7);
}

TEST_CASE("saving over a model replaces it whole") {
  TempDir dir("replace");
  Trained trained;
  const std::string path = dir.file("model.amq");
  write_bytes(path, {'o', 'l', 'd'});
  trained.scorer.save(path);
  CHECK_NOTHROW(amq::AmqScorer<>::load(path));
  CHECK_THROWS_WITH_AS(trained.scorer.save(dir.file("missing/model.amq")),
                       doctest::Contains("missing/model.amq"), amq::Error);
  CHECK(!fs::exists(dir.path / "missing"));
}

TEST_CASE("wrong, truncated and corrupted files are refused") {
  TempDir dir("corrupt");
  Trained trained;
  const std::string path = dir.file("model.amq");
  trained.scorer.save(path);
  const std::vector<std::uint8_t> good = read_bytes(path);
  REQUIRE(good.size() > kDirectionCountAt + 8);
  // The layout the offsets above assume: G·D directions follow at kDirectionCountAt.
  REQUIRE(get_u64(good, kDirectionCountAt) == kHashes * kDepth);
  const std::string bad = dir.file("bad.amq");

  SUBCASE("missing file") { check_refused(dir.file("absent.amq"), "cannot open"); }

  SUBCASE("empty and tiny files") {
    write_bytes(bad, {});
    check_refused(bad, "truncated");
    write_bytes(bad, {'A', 'M', 'Q'});
    check_refused(bad, "truncated");
  }

  SUBCASE("bad magic") {
    auto bytes = good;
    bytes[0] = 'X';
    write_bytes(bad, bytes);
    check_refused(bad, "bad magic");
  }

  SUBCASE("other format version") {
    auto bytes = good;
    put_u32(bytes, kVersionAt, 3);
    write_bytes(bad, bytes);
    check_refused(bad, "format version 3, this library reads versions 1 to 2");
  }

  SUBCASE("truncated at every length") {
    for (std::size_t length : {std::size_t{20}, std::size_t{100}, kDirectionCountAt + 4,
                               good.size() / 2, good.size() - 1}) {
      CAPTURE(length);
      write_bytes(bad, std::vector<std::uint8_t>(good.begin(), good.begin() + length));
      CHECK_THROWS_AS(amq::AmqScorer<>::load(bad), amq::Error);
    }
    write_bytes(bad, std::vector<std::uint8_t>(good.begin(), good.end() - 3));
    check_refused(bad, "checksum mismatch");
  }

  SUBCASE("one flipped bit anywhere") {
    for (std::size_t at : {std::size_t{30}, kDirectionCountAt + 20, good.size() / 2,
                           good.size() - 20, good.size() - 1}) {
      CAPTURE(at);
      auto bytes = good;
      bytes[at] ^= 0x10;
      write_bytes(bad, bytes);
      check_refused(bad, "checksum mismatch");
    }
  }

  SUBCASE("extra bytes") {
    auto bytes = good;
    bytes.insert(bytes.end() - 8, {1, 2, 3, 4});
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "4 unexpected bytes");
  }

  SUBCASE("other filter policy") {
    auto bytes = good;
    put_u32(bytes, kPolicyAt, 2);
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "filter policy 2, expected 1 (classic)");
    CHECK_NOTHROW(amq::AmqScorer<>::load(path));
  }

  SUBCASE("NaN parameters") {
    auto bytes = good;
    const float nan = std::nanf("");
    std::uint32_t bits = 0;
    std::memcpy(&bits, &nan, 4);
    put_u32(bytes, kBucketWidthAt, bits);
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "bucket width must be finite");

    bytes = good;
    const double nan64 = std::nan("");
    std::uint64_t bits64 = 0;
    std::memcpy(&bits64, &nan64, 8);
    put_u64(bytes, kTargetFprAt, bits64);
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "target false-positive rate");
  }

  SUBCASE("size fields larger than the file never allocate") {
    auto bytes = good;
    put_u64(bytes, kHashCountAt, std::uint64_t{1} << 60);
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "cannot fit");

    bytes = good;
    put_u64(bytes, kDirectionCountAt, std::uint64_t{1} << 61);
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "the parameters require " + std::to_string(kHashes * kDepth));
  }

  SUBCASE("a stored projection that differs from its seed") {
    auto bytes = good;
    bytes[kDirectionCountAt + 8] ^= 0x01;
    reseal(bytes);
    write_bytes(bad, bytes);
    check_refused(bad, "stored projection differs");
  }
}
