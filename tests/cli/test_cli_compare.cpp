// `amq` with the kNN baselines on a few real MVTec AD bottle images from ../shared: kNN models
// in the command line's model file (method and index parameters in the metadata), their test
// table, `--device`, and `amq compare` (one table, its JSON report, the feature cache and its
// refusal of other settings or a corrupted file). Exits 77 (skipped) without ../shared.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

const fs::path shared_dir = AMQ_SHARED_DIR;
const fs::path bottle = shared_dir / "data" / "mvtec_ad" / "bottle";
const fs::path weights = shared_dir / "models" / "mobilenet_v2_1.0_224.safetensors";

/// Small AMQ settings; the kNN indexes are small too (IVFPQ: 64 cells for ~5 500 features).
const std::string fast = " --hashes 256 --filter-bits 4194304 --bucket-width 0.1 --nlist 64";

struct Result {
  int status = 0;
  std::string out;
  std::string err;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string quoted(const fs::path& path) { return "\"" + path.string() + "\""; }

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A scratch category of 8 training images (one held out) and 5 test images, 3 defective.
struct Workspace {
  fs::path root;
  fs::path data;

  Workspace() {
    root = fs::temp_directory_path() / ("amq-compare-test-" + std::to_string(::getpid()));
    fs::remove_all(root);
    data = root / "bottle";
    copy_first(bottle / "train" / "good", data / "train" / "good", 8);
    copy_first(bottle / "test" / "good", data / "test" / "good", 2);
    copy_first(bottle / "test" / "broken_large", data / "test" / "broken_large", 3);
    copy_first(bottle / "ground_truth" / "broken_large", data / "ground_truth" / "broken_large", 3);
  }
  ~Workspace() { fs::remove_all(root); }

  static void copy_first(const fs::path& from, const fs::path& to, std::size_t count) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(from)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    fs::create_directories(to);
    for (std::size_t i = 0; i < count && i < files.size(); ++i) {
      fs::copy_file(files[i], to / files[i].filename());
    }
  }

  /// Runs `amq ARGS`, capturing stdout and stderr.
  Result run(const std::string& args) const {
    const fs::path out = root / "stdout.txt";
    const fs::path err = root / "stderr.txt";
    const std::string command =
        std::string("\"") + AMQ_CLI_PATH + "\" " + args + " >" + quoted(out) + " 2>" + quoted(err);
    const int raw = std::system(command.c_str());
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(out), read_text(err)};
  }

  std::string train(const std::string& method, const fs::path& model,
                    const std::string& extra = "") const {
    return "train --data " + quoted(data) + " --weights " + quoted(weights) + " --out " +
           quoted(model) + " --method " + method + fast + extra;
  }

  std::string compare(const std::string& extra) const {
    return "compare --data " + quoted(data) + " --weights " + quoted(weights) + fast + extra;
  }
};

Workspace& workspace() {
  static Workspace instance;
  return instance;
}

/// The metadata of a command-line model file (its JSON sits after magic, version, length).
nlohmann::json metadata_of(const fs::path& model) {
  const std::string bytes = read_text(model);
  REQUIRE(bytes.size() > 20);
  std::uint64_t length = 0;
  for (int i = 0; i < 8; ++i) {
    length |= std::uint64_t{static_cast<unsigned char>(bytes[12 + i])} << (8 * i);
  }
  REQUIRE(20 + length <= bytes.size());
  return nlohmann::json::parse(bytes.substr(20, length));
}

void expect_failure(const Result& result, const std::string& text) {
  CHECK(result.status != 0);
  INFO("stderr: " << result.err);
  CHECK(contains(result.err, text));
}

}  // namespace

TEST_CASE("a kNN model is trained, stored with its method and tested with the same table") {
  Workspace& w = workspace();
  const fs::path model = w.root / "hnsw.amq";
  Result result = w.run(w.train("knn-hnsw", model, " --hnsw-m 16 --ef-search 24"));
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  CHECK(contains(result.err, "knn-hnsw index of 5488 features"));  // 7 images of 28 x 28

  const nlohmann::json meta = metadata_of(model);
  CHECK(meta.at("method").at("name") == "knn-hnsw");
  CHECK(meta.at("method").at("hnsw_m") == 16);
  CHECK(meta.at("method").at("ef_search") == 24);
  CHECK(meta.at("method").at("image_score") == "max");  // PatchCore's rule by default
  CHECK(meta.at("index").at("indexed_features") == 5488);
  CHECK(!meta.contains("sizing"));

  const fs::path report = w.root / "hnsw.json";
  result = w.run("test --model " + quoted(model) + " --data " + quoted(w.data) + " --report " +
                 quoted(report));
  REQUIRE(result.status == 0);
  CHECK(contains(result.out, "knn-hnsw: HNSW M = 16, efConstruction = 64, efSearch = 24"));
  CHECK(contains(result.out, "query (kNN search)"));
  CHECK(contains(result.out, "(index "));
  const nlohmann::json json = nlohmann::json::parse(read_text(report));
  CHECK(json.at("index_bytes").get<double>() > 5488.0 * 448 * 4);  // every feature, 4 bytes each
  CHECK(json.at("ms_per_image").at("encode") == 0.0);
  CHECK(json.at("ms_per_image").at("query").get<double>() > 0.0);
  CHECK(json.at("overall").at("image_auroc").get<double>() >= 0.5);

  // A kNN model cannot be resumed; the model file stays as it was.
  const std::string before = read_text(model);
  expect_failure(w.run("train --resume " + quoted(model) + " --data " + quoted(w.data)),
                 "is a knn-hnsw model");
  CHECK(read_text(model) == before);
}

TEST_CASE("the coreset and the image-score option reach a kNN model") {
  Workspace& w = workspace();
  const fs::path model = w.root / "flat.amq";
  const Result result = w.run(w.train("knn-flat", model, " --coreset 0.25 --image-score mean"));
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  CHECK(contains(result.err, "knn-flat index of 1372 features (of 5488 collected)"));
  const nlohmann::json meta = metadata_of(model);
  CHECK(meta.at("method").at("coreset") == 0.25);
  CHECK(meta.at("method").at("image_score") == "mean");

  expect_failure(w.run(w.train("amq", w.root / "bad.amq", " --coreset 0.1")),
                 "--coreset subsamples a kNN memory bank");
  expect_failure(w.run(w.train("knn-flat", w.root / "bad.amq", " --coreset 1.5")),
                 "--coreset must lie in (0, 1]");
  CHECK(!fs::exists(w.root / "bad.amq"));
}

TEST_CASE("--device cuda is refused where it cannot run") {
  Workspace& w = workspace();
  const fs::path model = w.root / "amq.amq";
  REQUIRE(w.run(w.train("amq", model)).status == 0);
  CHECK(metadata_of(model).at("method").at("name") == "amq");
  const Result result =
      w.run("test --model " + quoted(model) + " --data " + quoted(w.data) + " --device cuda");
#if AMQ_CLI_HAS_CUDA
  // With the CUDA facade the GPU scores, or the run fails naming the missing device.
  if (result.status != 0) CHECK(contains(result.err, "CUDA"));
  expect_failure(w.run("score --model " + quoted(w.root / "hnsw.amq") + " --device cuda " +
                       quoted(w.data / "test" / "good" / "000.png")),
                 "--device cuda scores amq models only");
#else
  expect_failure(result, "this amq was built without CUDA");
#endif
  expect_failure(
      w.run("test --model " + quoted(model) + " --data " + quoted(w.data) + " --device tpu"),
      "--device");
}

TEST_CASE("the structured projection is trained, stored and scored like the dense one") {
  Workspace& w = workspace();
  const fs::path model = w.root / "structured.amq";
  const Result trained =
      w.run(w.train("amq", model, " --projection structured --filter split-block"));
  INFO("stderr: " << trained.err);
  REQUIRE(trained.status == 0);
  const nlohmann::json method = metadata_of(model).at("method");
  CHECK(method.at("projection") == "structured");
  CHECK(method.at("filter") == "split-block");

  // Loading picks the structured scorer (the dense one would refuse the scorer bytes).
  const Result tested = w.run("test --model " + quoted(model) + " --data " + quoted(w.data));
  INFO("stderr: " << tested.err);
  REQUIRE(tested.status == 0);
  CHECK(contains(tested.out, "structured Walsh-Hadamard projection"));
  CHECK(contains(tested.out, "split-block filter"));
  const Result scored =
      w.run("score --model " + quoted(model) + " " + quoted(w.data / "test" / "good" / "000.png"));
  CHECK(scored.status == 0);
  CHECK((contains(scored.out, "normal") || contains(scored.out, "anomalous")));

  const Result on_gpu =
      w.run("test --model " + quoted(model) + " --data " + quoted(w.data) + " --device cuda");
#if AMQ_CLI_HAS_CUDA
  // With the CUDA facade the GPU scores, or the run fails naming the missing device.
  if (on_gpu.status != 0) CHECK(contains(on_gpu.err, "CUDA"));
#else
  expect_failure(on_gpu, "this amq was built without CUDA");
#endif
  expect_failure(w.run(w.train("amq", w.root / "bad.amq", " --projection sparse")), "--projection");
  CHECK(!fs::exists(w.root / "bad.amq"));
}

TEST_CASE("compare prints one table of all methods and caches the features") {
  Workspace& w = workspace();
  const fs::path cache = w.root / "features.amqf";
  const fs::path report = w.root / "compare.json";
  Result result = w.run(w.compare(" --features " + quoted(cache) + " --report " + quoted(report)));
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  CHECK(fs::exists(cache));
  CHECK(contains(result.err, "extracting"));
  for (const char* method : {"amq ", "knn-flat ", "knn-hnsw ", "knn-ivfpq "}) {
    CHECK(contains(result.out, std::string("\n") + method));
  }
  CHECK(contains(result.out, "HNSW M = 32"));
  CHECK(contains(result.out, "IVFPQ nlist = 64, m = 32, nbits = 8, nprobe = 16"));
  CHECK(contains(result.out, "AMQ / kNN-HNSW: scoring time"));
  CHECK(contains(result.out, "load average"));

  const nlohmann::json json = nlohmann::json::parse(read_text(report));
  REQUIRE(json.at("methods").size() == 4);
  const nlohmann::json& amq = json.at("methods").at(0);
  CHECK(amq.at("method") == "amq");
  CHECK(amq.at("structure_bytes") == 4194304 / 8);
  CHECK(amq.at("cpu_ms_per_image").at("encode").get<double>() > 0.0);
  const nlohmann::json& flat = json.at("methods").at(1);
  CHECK(flat.at("cpu_ms_per_image").at("encode") == 0.0);
  CHECK(flat.at("structure_bytes").get<double>() >= 5488.0 * 448 * 4);
  for (const auto& method : json.at("methods")) {
    CHECK(method.at("image_auroc").get<double>() >= 0.0);
    CHECK(method.at("pixel_auroc").get<double>() > 0.5);
  }
  const double ratio = json.at("amq_vs_hnsw").at("structure_bytes_ratio").get<double>();
  CHECK(ratio == doctest::Approx(512.0 * 1024 /
                                 json.at("methods").at(2).at("structure_bytes").get<double>()));

  // The second run reads the cache and gives the exact search the same scores.
  result = w.run(
      w.compare(" --methods knn-flat --features " + quoted(cache) + " --report " + quoted(report)));
  REQUIRE(result.status == 0);
  CHECK(contains(result.err, "read from"));
  CHECK(!contains(result.err, "extracting"));
  const nlohmann::json again = nlohmann::json::parse(read_text(report));
  REQUIRE(again.at("methods").size() == 1);
  CHECK(again.at("methods").at(0).at("image_auroc") == flat.at("image_auroc"));
  CHECK(again.at("methods").at(0).at("pixel_auroc") == flat.at("pixel_auroc"));

  // Other settings than the cache's, a corrupted cache, or --extract-only without a cache.
  expect_failure(w.run(w.compare(" --holdout 0.3 --features " + quoted(cache))),
                 "was made for other data or settings");
  std::string bytes = read_text(cache);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
  const fs::path broken = w.root / "broken.amqf";
  std::ofstream(broken, std::ios::binary) << bytes;
  expect_failure(w.run(w.compare(" --features " + quoted(broken))), "checksum mismatch");
  expect_failure(w.run(w.compare(" --extract-only")), "--extract-only needs --features");
  expect_failure(w.run(w.compare(" --methods amq,knn-lsh")), "--methods");
}

int main(int argc, char** argv) {
  if (!fs::is_directory(bottle) || !fs::is_regular_file(weights)) {
    std::cout << "SKIPPED: test_cli_compare needs the MVTec AD bottle category and the "
              << "MobileNetV2 weights in " << shared_dir << " (../shared beside the repository)\n";
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
