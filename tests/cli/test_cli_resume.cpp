// `amq train --resume` on real MVTec AD bottle images from ../shared: training on folder A and
// resuming with folder B gives the model of training on A and B at once (same filter, same
// held-out images and threshold, same scores), and conflicting or broken input is refused.
// Exits 77 (skipped) without ../shared.
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

/// Small method settings with M and B given, so that eq. 5 plays no part.
const std::string classic_fixed =
    " --hashes 256 --bucket-width 0.1 --filter classic --filter-bits 4194304 --probes 3";
/// The split-block filter always has B = 8: the default sizing resumes exactly.
const std::string split_block = " --hashes 256 --bucket-width 0.1 --filter split-block";

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

/// Two categories of 10 training images each (bottle images 0–9 and 10–19) and two test
/// images. With the default hold-out of 10 %, training on both holds out image 5 of each, as
/// training on either alone does; A keeps 9 images to fit, so the bucket width (set from the
/// first 8) is the same for A alone and for A and B.
struct Workspace {
  fs::path root;
  fs::path a;
  fs::path b;
  std::vector<fs::path> probes;

  Workspace() {
    root = fs::temp_directory_path() / ("amq-resume-test-" + std::to_string(::getpid()));
    fs::remove_all(root);
    a = root / "a";
    b = root / "b";
    copy_range(bottle / "train" / "good", a / "train" / "good", 0, 10);
    copy_range(bottle / "train" / "good", b / "train" / "good", 10, 20);
    copy_range(bottle / "test" / "broken_large", root / "probes", 0, 1);
    copy_range(bottle / "test" / "good", root / "probes", 0, 1);
    for (const auto& entry : fs::directory_iterator(root / "probes")) {
      probes.push_back(entry.path());
    }
    std::sort(probes.begin(), probes.end());
  }
  ~Workspace() { fs::remove_all(root); }

  static void copy_range(const fs::path& from, const fs::path& to, std::size_t begin,
                         std::size_t end) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(from)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    fs::create_directories(to);
    for (std::size_t i = begin; i < end && i < files.size(); ++i) {
      // Test images of different folders share names: keep the folder in the copy's name.
      fs::copy_file(files[i], to / (from.filename().string() + "_" + files[i].filename().string()));
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

  Result train(const std::vector<fs::path>& data, const fs::path& out,
               const std::string& method) const {
    std::string args = "train --weights " + quoted(weights) + " --out " + quoted(out) + method;
    for (const fs::path& folder : data) args += " --data " + quoted(folder);
    return run(args);
  }

  Result resume(const fs::path& model, const fs::path& data, const fs::path& out,
                const std::string& extra = "") const {
    return run("train --resume " + quoted(model) + " --data " + quoted(data) + " --out " +
               quoted(out) + extra);
  }

  /// The `amq score` lines of the probe images (image score and verdict).
  std::string scores(const fs::path& model) const {
    std::string args = "score --model " + quoted(model);
    for (const fs::path& image : probes) args += " " + quoted(image);
    const Result result = run(args);
    REQUIRE(result.status == 0);
    return result.out;
  }
};

Workspace& workspace() {
  static Workspace instance;
  return instance;
}

std::uint64_t read_u64(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  REQUIRE(at + 8 <= bytes.size());
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | bytes[at + static_cast<std::size_t>(i)];
  return v;
}

std::uint32_t read_u32(const std::vector<std::uint8_t>& bytes, std::size_t at) {
  return static_cast<std::uint32_t>(read_u64(bytes, at) & 0xffffffffu);
}

/// The two parts of a command-line model file (docs/command-line.md): metadata and scorer.
struct ModelParts {
  nlohmann::json metadata;
  std::vector<std::uint8_t> scorer;
};

ModelParts read_model(const fs::path& path) {
  const std::string text = read_text(path);
  const std::vector<std::uint8_t> bytes(text.begin(), text.end());
  std::size_t at = 8 + 4;  // magic, container version
  const std::uint64_t json_size = read_u64(bytes, at);
  at += 8;
  REQUIRE(at + json_size <= bytes.size());
  ModelParts parts;
  parts.metadata = nlohmann::json::parse(text.substr(at, json_size));
  at += json_size;
  const std::uint64_t scorer_size = read_u64(bytes, at);
  at += 8;
  REQUIRE(at + scorer_size + 8 == bytes.size());
  parts.scorer.assign(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                      bytes.begin() + static_cast<std::ptrdiff_t>(at + scorer_size));
  return parts;
}

/// The sizing figures that describe the build, not the filter (docs/distributed.md).
const char* const build_figures[] = {"distinct_keys", "paper_probes", "fpr_bits", "fpr_probes"};

/// Expects the resumed model to equal the one trained at once, except the build figures: in
/// the metadata's sizing, and in the scorer (model format version 1: distinct keys at 124,
/// eq. 5's B at 140, the FPR rule's M and B at 144 and 152) and its checksum.
void expect_same_model(const fs::path& at_once, const fs::path& resumed) {
  ModelParts one = read_model(at_once);
  ModelParts two = read_model(resumed);
  CHECK(one.metadata["sizing"]["distinct_keys"] != two.metadata["sizing"]["distinct_keys"]);
  for (const char* figure : build_figures) {
    one.metadata["sizing"].erase(figure);
    two.metadata["sizing"].erase(figure);
  }
  CHECK(one.metadata.dump(2) == two.metadata.dump(2));

  REQUIRE(one.scorer.size() == two.scorer.size());
  REQUIRE(one.scorer.size() > 200);
  CHECK(read_u32(one.scorer, 8) == 1);  // version 1 (K = 1): the offsets below apply
  std::size_t differing = 0;
  for (std::size_t i = 0; i < one.scorer.size(); ++i) {
    const bool build_figure = (i >= 124 && i < 132) || (i >= 140 && i < 156);
    const bool checksum = i >= one.scorer.size() - 8;
    if (one.scorer[i] != two.scorer[i] && !build_figure && !checksum) ++differing;
  }
  CHECK(differing == 0);
}

}  // namespace

TEST_CASE("resuming with B equals training on A and B at once") {
  const Workspace& w = workspace();
  for (const std::string& method : {classic_fixed, split_block}) {
    INFO("method:" << method);
    const fs::path at_once = w.root / "ab.amq";
    const fs::path first = w.root / "a.amq";
    const fs::path resumed = w.root / "a_then_b.amq";
    REQUIRE(w.train({w.a, w.b}, at_once, method).status == 0);
    REQUIRE(w.train({w.a}, first, method).status == 0);
    const std::string before = read_text(first);
    const Result result = w.resume(first, w.b, resumed);
    INFO("stderr: " << result.err);
    REQUIRE(result.status == 0);
    CHECK(read_text(first) == before);  // --out leaves the resumed model alone

    expect_same_model(at_once, resumed);
    const nlohmann::json metadata = read_model(resumed).metadata;
    CHECK(metadata["training"]["images"] == 18);
    CHECK(metadata["threshold"]["holdout_images"].size() == 2);
    CHECK(w.scores(at_once) == w.scores(resumed));
  }
}

TEST_CASE("without --out, resume replaces the model") {
  const Workspace& w = workspace();
  const fs::path model = w.root / "in_place.amq";
  REQUIRE(w.train({w.a}, model, classic_fixed).status == 0);
  const Result result = w.run("train --resume " + quoted(model) + " --data " + quoted(w.b));
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  CHECK(read_model(model).metadata["training"]["images"] == 18);
}

TEST_CASE("resume refuses options that would change the model and lost held-out images") {
  const Workspace& w = workspace();
  const fs::path model = w.root / "base.amq";
  REQUIRE(w.train({w.a}, model, classic_fixed).status == 0);
  const fs::path out = w.root / "refused.amq";

  for (const std::string option : {" --hashes 128", " --filter split-block", " --seed 3",
                                   " --backbone wrn50", " --probes 4", " --holdout 0.2"}) {
    const Result result = w.resume(model, w.b, out, option);
    INFO("option:" << option << " stderr: " << result.err);
    CHECK(result.status != 0);
    const std::string name = option.substr(1, option.find(' ', 1) - 1);
    CHECK(result.err.find(name) != std::string::npos);
    CHECK(result.err.find("--resume") != std::string::npos);
    CHECK(!fs::exists(out));
  }

  // The threshold is recomputed over every held-out image: one that is gone stops the resume.
  const std::string held =
      read_model(model).metadata["threshold"]["holdout_images"][0].get<std::string>();
  const fs::path aside = w.root / "aside.png";
  fs::rename(held, aside);
  const Result result = w.resume(model, w.b, out);
  fs::rename(aside, held);
  CHECK(result.status != 0);
  CHECK(result.err.find(fs::path(held).filename().string()) != std::string::npos);
  CHECK(!fs::exists(out));
}

int main(int argc, char** argv) {
  if (!fs::is_directory(bottle) || !fs::is_regular_file(weights)) {
    std::cout << "SKIPPED: test_cli_resume needs the MVTec AD bottle category and the "
              << "MobileNetV2 weights in " << shared_dir << " (../shared beside the "
              << "repository)\n";
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
