// End-to-end tests of the `amq` command line on a few real MVTec AD bottle images from
// ../shared: train, test (report and heatmaps), score, and the refusal of bad input (exit code
// not 0, an error naming the file, no output written). Exits 77 (skipped) without ../shared.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

namespace fs = std::filesystem;

namespace {

const fs::path shared_dir = AMQ_SHARED_DIR;
const fs::path bottle = shared_dir / "data" / "mvtec_ad" / "bottle";
const fs::path weights = shared_dir / "models" / "mobilenet_v2_1.0_224.safetensors";

/// Small, fast method settings; the defaults are exercised by scripts/demo.sh on all of bottle.
const std::string fast = " --hashes 256 --filter-bits 4194304 --bucket-width 0.1";

struct Result {
  int status = 0;
  std::string out;
  std::string err;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A scratch folder with a small MVTec-shaped category (8 training images, 6 test images of
/// which 4 defective) and a model trained on it once.
struct Workspace {
  fs::path root;
  fs::path data;
  fs::path model;

  Workspace() {
    root = fs::temp_directory_path() / ("amq-cli-test-" + std::to_string(::getpid()));
    fs::remove_all(root);
    data = root / "bottle";
    copy_first(bottle / "train" / "good", data / "train" / "good", 8);
    copy_first(bottle / "test" / "good", data / "test" / "good", 2);
    for (const char* defect : {"broken_large", "contamination"}) {
      copy_first(bottle / "test" / defect, data / "test" / defect, 2);
      copy_first(bottle / "ground_truth" / defect, data / "ground_truth" / defect, 2);
    }
    model = root / "model.amq";
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
    const std::string command = std::string("\"") + AMQ_CLI_PATH + "\" " + args + " >\"" +
                                out.string() + "\" 2>\"" + err.string() + "\"";
    const int raw = std::system(command.c_str());
    Result result{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(out), read_text(err)};
    return result;
  }

  /// A copy of the category in `name`, for a bad-input variant.
  fs::path variant(const std::string& name) const {
    const fs::path copy = root / name;
    fs::remove_all(copy);
    fs::copy(data, copy, fs::copy_options::recursive);
    return copy;
  }
};

Workspace& workspace() {
  static Workspace instance;
  return instance;
}

std::string train_args(const fs::path& data, const fs::path& out) {
  return "train --data \"" + data.string() + "\" --weights \"" + weights.string() + "\" --out \"" +
         out.string() + "\"" + fast;
}

/// Expects a failure whose message contains `text`.
void expect_failure(const Result& result, const std::string& text) {
  CHECK(result.status != 0);
  INFO("stderr: " << result.err);
  CHECK(result.err.find(text) != std::string::npos);
}

bool in_unit_interval(const nlohmann::json& value) {
  return value.is_number() && value.get<double>() >= 0.0 && value.get<double>() <= 1.0;
}

}  // namespace

TEST_CASE("train writes a model file") {
  Workspace& w = workspace();
  const Result result = w.run(train_args(w.data, w.model));
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  CHECK(fs::file_size(w.model) > 4194304 / 8);
  CHECK(result.err.find("7/7 images") != std::string::npos);  // one of 8 held out
  CHECK(result.out.find("threshold") != std::string::npos);
}

TEST_CASE("test prints the table and writes the report and heatmaps") {
  Workspace& w = workspace();
  const fs::path report = w.root / "report.json";
  const fs::path heatmaps = w.root / "heatmaps";
  const Result result = w.run("test --model \"" + w.model.string() + "\" --data \"" +
                              w.data.string() + "\" --report \"" + report.string() +
                              "\" --heatmaps \"" + heatmaps.string() + "\"");
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  CHECK(result.out.find("overall") != std::string::npos);
  CHECK(result.out.find("images/s") != std::string::npos);

  const nlohmann::json json = nlohmann::json::parse(read_text(report));
  CHECK(json["images"].size() == 6);
  for (const char* metric : {"image_auroc", "pixel_auroc", "pixel_auroc_eq7", "au_pro"}) {
    INFO(metric);
    CHECK(in_unit_interval(json["overall"][metric]));
    CHECK(in_unit_interval(json["per_defect"]["broken_large"][metric]));
    CHECK(in_unit_interval(json["per_defect"]["contamination"][metric]));
  }
  CHECK(json["overall"]["defective"] == 4);
  for (const char* stage : {"load", "backbone", "encode", "query", "upsample", "total"}) {
    CHECK(json["ms_per_image"][stage].get<double>() >= 0.0);
  }
  CHECK(json["ms_per_image"]["total"].get<double>() > 0.0);
  CHECK(json["peak_rss_bytes"].get<double>() > 0.0);
  CHECK(json["model_bytes"].get<std::uintmax_t>() == fs::file_size(w.model));

  // One heatmap per test image, each a decodable PNG of the image's size.
  std::size_t count = 0;
  for (const auto& entry : fs::directory_iterator(heatmaps)) {
    const cv::Mat png = cv::imread(entry.path().string());
    CHECK(png.cols == 900);
    CHECK(png.rows == 900);
    ++count;
  }
  CHECK(count == 6);
}

TEST_CASE("score prints a verdict per image and writes heatmaps") {
  Workspace& w = workspace();
  const fs::path heatmaps = w.root / "score-heatmaps";
  const fs::path good = w.data / "test" / "good" / "000.png";
  const fs::path broken = w.data / "test" / "broken_large" / "000.png";
  const Result result = w.run("score --model \"" + w.model.string() + "\" \"" + good.string() +
                              "\" \"" + broken.string() + "\" --heatmaps \"" +
                              heatmaps.string() + "\"");
  INFO("stderr: " << result.err);
  REQUIRE(result.status == 0);
  std::istringstream lines(result.out);
  std::string line;
  std::size_t verdicts = 0;
  while (std::getline(lines, line)) {
    if (line.find(".png") != std::string::npos) {
      CHECK((line.find("normal") != std::string::npos ||
             line.find("anomalous") != std::string::npos));
      ++verdicts;
    }
  }
  CHECK(verdicts == 2);
  CHECK(fs::exists(heatmaps / "000_000.png"));
  CHECK(fs::exists(heatmaps / "001_000.png"));
}

TEST_CASE("bad input is refused with a message naming it and no output") {
  Workspace& w = workspace();
  const fs::path out = w.root / "bad.amq";
  const fs::path report = w.root / "bad-report.json";

  SUBCASE("missing image") {
    const fs::path heatmaps = w.root / "bad-heatmaps";
    const Result result = w.run("score --model \"" + w.model.string() + "\" \"" +
                                (w.data / "nowhere.png").string() + "\" --heatmaps \"" +
                                heatmaps.string() + "\"");
    expect_failure(result, "nowhere.png\" does not exist");
    CHECK(!fs::exists(heatmaps));
  }
  SUBCASE("empty training image") {
    const fs::path data = w.variant("empty-image");
    std::ofstream(data / "train" / "good" / "zzz.png").close();
    expect_failure(w.run(train_args(data, out)), "zzz.png\" is empty");
    CHECK(!fs::exists(out));
  }
  SUBCASE("corrupt test image") {
    const fs::path data = w.variant("corrupt-image");
    std::ofstream(data / "test" / "good" / "000.png") << "not a picture at all";
    const Result result = w.run("test --model \"" + w.model.string() + "\" --data \"" +
                                data.string() + "\" --report \"" + report.string() + "\"");
    expect_failure(result, "cannot decode image");
    CHECK(result.err.find("000.png") != std::string::npos);
    CHECK(!fs::exists(report));
  }
  SUBCASE("mask of the wrong size") {
    const fs::path data = w.variant("small-mask");
    const fs::path mask = data / "ground_truth" / "broken_large" / "000_mask.png";
    cv::imwrite(mask.string(), cv::Mat(10, 12, CV_8U, cv::Scalar(255)));
    const Result result = w.run("test --model \"" + w.model.string() + "\" --data \"" +
                                data.string() + "\" --report \"" + report.string() + "\"");
    expect_failure(result, "is 12 x 10 but its image is 900 x 900");
    CHECK(result.err.find("000_mask.png") != std::string::npos);
    CHECK(!fs::exists(report));
  }
  SUBCASE("defective image without a mask") {
    const fs::path data = w.variant("no-mask");
    fs::remove(data / "ground_truth" / "contamination" / "001_mask.png");
    const Result result = w.run("test --model \"" + w.model.string() + "\" --data \"" +
                                data.string() + "\" --report \"" + report.string() + "\"");
    expect_failure(result, "has no mask");
    CHECK(!fs::exists(report));
  }
  SUBCASE("empty training folder") {
    const fs::path data = w.variant("empty-folder");
    fs::remove_all(data / "train" / "good");
    fs::create_directories(data / "train" / "good");
    expect_failure(w.run(train_args(data, out)), "holds no .png or .jpg image");
    CHECK(!fs::exists(out));
  }
  SUBCASE("data folder without train/good") {
    const fs::path data = w.variant("no-train");
    fs::remove_all(data / "train");
    expect_failure(w.run(train_args(data, out)), "has no train/good folder");
    CHECK(!fs::exists(out));
  }
  SUBCASE("model file that is not ours") {
    const fs::path fake = w.root / "fake.amq";
    std::ofstream(fake) << "just some text";
    const Result result = w.run("test --model \"" + fake.string() + "\" --data \"" +
                                w.data.string() + "\" --report \"" + report.string() + "\"");
    expect_failure(result, "is not an amq model file");
    CHECK(!fs::exists(report));
  }
  SUBCASE("corrupt model file") {
    const fs::path corrupt = w.root / "corrupt.amq";
    fs::copy_file(w.model, corrupt, fs::copy_options::overwrite_existing);
    {
      std::fstream file(corrupt, std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(static_cast<std::streamoff>(fs::file_size(corrupt) / 2));
      file.put('\x5a').put('\xa5');
    }
    const Result result = w.run("test --model \"" + corrupt.string() + "\" --data \"" +
                                w.data.string() + "\" --report \"" + report.string() + "\"");
    expect_failure(result, "checksum mismatch");
    CHECK(!fs::exists(report));
  }
  SUBCASE("weights other than those the model was trained with") {
    const fs::path other = w.root / "other.safetensors";
    fs::copy_file(weights, other, fs::copy_options::overwrite_existing);
    {
      std::fstream file(other, std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(-4, std::ios::end);
      file.put('\x01');
    }
    const Result result = w.run("test --model \"" + w.model.string() + "\" --data \"" +
                                w.data.string() + "\" --weights \"" + other.string() +
                                "\" --report \"" + report.string() + "\"");
    expect_failure(result, "differs from the one the model was trained with");
    CHECK(!fs::exists(report));
  }
}

int main(int argc, char** argv) {
  if (!fs::is_directory(bottle) || !fs::is_regular_file(weights)) {
    std::cout << "SKIPPED: test_cli needs the MVTec AD bottle category and the MobileNetV2 "
              << "weights in " << shared_dir << " (../shared beside the repository)\n";
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
