// The command line's catalogue of bad input (docs/robustness.md): images, masks, data folders,
// model containers and output files, tested on the command line's own loading code
// (examples/cli/image_io, dataset, model_file, resources), which needs no network weights.
// Each case asserts a fragment of the expected amq::Error message; inputs accepted by design
// assert that behaviour. With the `amq` program built (AMQ_CLI_PATH), the cases that fail
// before any weights are read are also run end to end: exit status 1, the message on stderr,
// and no output file. tests/cli/test_cli.cpp covers the cases that need the weights.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "amq/error.hpp"
#include "amq/serialization.hpp"
#include "dataset.hpp"
#include "image_io.hpp"
#include "model_file.hpp"
#include "resources.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

#define AMQ_CHECK_REFUSED(expression, fragment) \
  CHECK_THROWS_WITH_AS(expression, doctest::Contains(std::string(fragment).c_str()), amq::Error)

// A folder of its own per test case, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("amq_test_cli_bad_input_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(path, ignored);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

void write_bytes(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Bytes encode(const std::string& extension, const cv::Mat& image,
             const std::vector<int>& options = {}) {
  std::vector<unsigned char> bytes;
  REQUIRE(cv::imencode(extension, image, bytes, options));
  return Bytes(bytes.begin(), bytes.end());
}

// A BGR test picture with distinct channel values, as cv::imwrite takes it.
cv::Mat picture(int width, int height) {
  cv::Mat bgr(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      bgr.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<unsigned char>(10 + x), static_cast<unsigned char>(100 + y),
                    static_cast<unsigned char>(200 + (x + y) % 50));
    }
  }
  return bgr;
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_be32(Bytes& bytes, std::size_t at, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(value >> (24 - 8 * i));
}

// A valid PNG whose header (IHDR, with a correct CRC) declares `width` x `height`.
Bytes png_declaring(std::uint32_t width, std::uint32_t height) {
  Bytes png = encode(".png", picture(4, 4));
  put_be32(png, 16, width);
  put_be32(png, 20, height);
  put_be32(png, 29, crc32(png.data() + 12, 17));  // chunk type and data of IHDR
  return png;
}

void put_u64(Bytes& bytes, std::size_t at, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(value >> (8 * i));
}

Bytes resealed(Bytes bytes) {
  put_u64(bytes, bytes.size() - 8, amq::fnv1a64(bytes.data(), bytes.size() - 8));
  return bytes;
}

std::size_t entries(const fs::path& folder) {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator(folder), fs::directory_iterator()));
}

// A minimal MVTec-shaped category: two training images, a good and a defective test image
// with its mask.
fs::path make_category(const fs::path& root) {
  const Bytes png = encode(".png", picture(8, 8));
  write_bytes(root / "train" / "good" / "000.png", png);
  write_bytes(root / "train" / "good" / "001.png", png);
  write_bytes(root / "test" / "good" / "000.png", png);
  write_bytes(root / "test" / "crack" / "000.png", png);
  write_bytes(root / "ground_truth" / "crack" / "000_mask.png",
              encode(".png", cv::Mat(8, 8, CV_8U, cv::Scalar(255))));
  return root;
}

}  // namespace

// ---- Images ----------------------------------------------------------------------------------

TEST_CASE("bad input: image files") {
  TempDir dir("images");
  // 1. Missing; 2. a folder with an image's name.
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "absent.png"),
                    "absent.png\" does not exist or is not a file");
  fs::create_directories(dir / "folder.png");
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "folder.png"), "is not a file");
  // 3. Empty.
  write_bytes(dir / "empty.png", {});
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "empty.png"), "is empty (0 bytes)");
  // 4. Not an image (text, and random bytes after a PNG signature).
  write_bytes(dir / "text.png", Bytes{'h', 'e', 'l', 'l', 'o'});
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "text.png"), "cannot decode image");
  Bytes fake = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  fake.resize(200, 0x5a);
  write_bytes(dir / "fake.png", fake);
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "fake.png"), "cannot decode image");
}

TEST_CASE("bad input: truncated images") {
  TempDir dir("truncated");
  // 5. A PNG cut at many lengths.
  const Bytes png = encode(".png", picture(24, 16));
  for (std::size_t length = 1; length < png.size(); length += 7) {
    CAPTURE(length);
    write_bytes(dir / "cut.png", Bytes(png.begin(), png.begin() + length));
    AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "cut.png"), "cannot decode image");
  }
  // 6. A JPEG cut at many lengths, inside its headers or its compressed scan: the decoder
  // would fill the missing rows with grey, so the cut is detected from the missing end marker.
  const Bytes jpeg = encode(".jpg", picture(24, 16));
  for (std::size_t length = 1; length < jpeg.size() - 1; length += 5) {
    CAPTURE(length);
    write_bytes(dir / "cut.jpg", Bytes(jpeg.begin(), jpeg.begin() + length));
    AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "cut.jpg"), "cut.jpg");
  }
  write_bytes(dir / "half.jpg", Bytes(jpeg.begin(), jpeg.begin() + jpeg.size() * 3 / 4));
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "half.jpg"), "truncated");
}

TEST_CASE("bad input: images of huge dimensions are refused before decoding") {
  TempDir dir("huge");
  // 7. A small file whose header declares 40000 x 40000 pixels (a decompression bomb).
  write_bytes(dir / "bomb.png", png_declaring(40000, 40000));
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "bomb.png"), "40000 x 40000 pixels");
  // 8. A width beyond 2^31.
  write_bytes(dir / "wide.png", png_declaring(0x80000001u, 1));
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "wide.png"), "2147483649 x 1 pixels");
  // 9. A JPEG whose frame header declares 60000 x 60000.
  Bytes jpeg = encode(".jpg", picture(8, 8));
  for (std::size_t i = 2; i + 8 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {  // SOF0: length, precision, height, width
      jpeg[i + 5] = 0xea;
      jpeg[i + 6] = 0x60;
      jpeg[i + 7] = 0xea;
      jpeg[i + 8] = 0x60;
      break;
    }
  }
  write_bytes(dir / "bomb.jpg", jpeg);
  AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "bomb.jpg"), "60000 x 60000 pixels");
  // The limit is on pixels, not on the file: a 4096 x 4096 image is read.
  write_bytes(dir / "large.png", encode(".png", cv::Mat(4096, 4096, CV_8UC3, cv::Scalar(1, 2, 3))));
  const cv::Mat large = amq::cli::read_rgb_image(dir / "large.png");
  CHECK(large.cols == 4096);
  CHECK(large.rows == 4096);
}

TEST_CASE("bad input: other image formats are refused") {
  TempDir dir("formats");
  // 10. A BMP, a PPM and a TIFF (formats OpenCV could decode) named .png: only PNG and JPEG
  // are read, by their signature.
  for (const char* extension : {".bmp", ".ppm", ".tiff"}) {
    CAPTURE(extension);
    write_bytes(dir / "other.png", encode(extension, picture(5, 4)));
    AMQ_CHECK_REFUSED(amq::cli::read_rgb_image(dir / "other.png"), "not a PNG or JPEG image");
  }
  // A PNG named .jpg is read: the signature decides, not the name.
  write_bytes(dir / "named.jpg", encode(".png", picture(5, 4)));
  CHECK(amq::cli::read_rgb_image(dir / "named.jpg").cols == 5);
}

TEST_CASE("accepted by design: grey, 16-bit, RGBA and grey JPEG images become 8-bit RGB") {
  TempDir dir("accepted");
  // 11. Grey: R = G = B = the grey value.
  cv::Mat grey(3, 4, CV_8UC1);
  for (int i = 0; i < 12; ++i) grey.data[i] = static_cast<unsigned char>(20 * i);
  write_bytes(dir / "grey.png", encode(".png", grey));
  cv::Mat rgb = amq::cli::read_rgb_image(dir / "grey.png");
  REQUIRE(rgb.type() == CV_8UC3);
  for (int i = 0; i < 12; ++i) {
    const cv::Vec3b p = rgb.at<cv::Vec3b>(i / 4, i % 4);
    CHECK(p == cv::Vec3b(grey.data[i], grey.data[i], grey.data[i]));
  }
  // 12. 16-bit RGB: each channel keeps its high byte (value / 256).
  cv::Mat deep(2, 2, CV_16UC3);
  deep.at<cv::Vec3w>(0, 0) = cv::Vec3w(0, 0x1234, 0xffff);  // B, G, R
  deep.at<cv::Vec3w>(0, 1) = cv::Vec3w(0x00ff, 0x0100, 0x8000);
  deep.at<cv::Vec3w>(1, 0) = cv::Vec3w(0x7fff, 0xabcd, 0x0001);
  deep.at<cv::Vec3w>(1, 1) = cv::Vec3w(0xfeff, 0x5555, 0xaaaa);
  write_bytes(dir / "deep.png", encode(".png", deep));
  rgb = amq::cli::read_rgb_image(dir / "deep.png");
  REQUIRE(rgb.type() == CV_8UC3);
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 2; ++x) {
      const cv::Vec3w bgr16 = deep.at<cv::Vec3w>(y, x);
      const cv::Vec3b p = rgb.at<cv::Vec3b>(y, x);
      CHECK(p == cv::Vec3b(static_cast<unsigned char>(bgr16[2] >> 8),
                           static_cast<unsigned char>(bgr16[1] >> 8),
                           static_cast<unsigned char>(bgr16[0] >> 8)));
    }
  }
  // 13. RGBA: the alpha channel is dropped, colours are kept as stored (not composited).
  cv::Mat bgra(1, 2, CV_8UC4);
  bgra.at<cv::Vec4b>(0, 0) = cv::Vec4b(1, 2, 3, 0);
  bgra.at<cv::Vec4b>(0, 1) = cv::Vec4b(50, 60, 70, 128);
  write_bytes(dir / "rgba.png", encode(".png", bgra));
  rgb = amq::cli::read_rgb_image(dir / "rgba.png");
  REQUIRE(rgb.type() == CV_8UC3);
  CHECK(rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(3, 2, 1));
  CHECK(rgb.at<cv::Vec3b>(0, 1) == cv::Vec3b(70, 60, 50));
  // 14. A grey JPEG and a progressive JPEG.
  write_bytes(dir / "grey.jpg", encode(".jpg", cv::Mat(8, 8, CV_8UC1, cv::Scalar(128))));
  rgb = amq::cli::read_rgb_image(dir / "grey.jpg");
  CHECK(rgb.type() == CV_8UC3);
  CHECK(std::abs(int(rgb.at<cv::Vec3b>(3, 3)[0]) - 128) <= 2);
  write_bytes(dir / "progressive.jpg",
              encode(".jpg", picture(16, 16), {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  CHECK(amq::cli::read_rgb_image(dir / "progressive.jpg").cols == 16);
}

// ---- Masks -----------------------------------------------------------------------------------

TEST_CASE("bad input: masks") {
  TempDir dir("masks");
  // 15. Wrong size (both orders of the sides).
  write_bytes(dir / "small.png", encode(".png", cv::Mat(10, 12, CV_8U, cv::Scalar(255))));
  AMQ_CHECK_REFUSED(amq::cli::read_mask(dir / "small.png", 10, 12),
                    "is 12 x 10 but its image is 10 x 12");
  // 16. Missing, empty, not an image, a folder.
  AMQ_CHECK_REFUSED(amq::cli::read_mask(dir / "absent_mask.png", 4, 4),
                    "mask \"" + (dir / "absent_mask.png").string() + "\" does not exist");
  write_bytes(dir / "empty_mask.png", {});
  AMQ_CHECK_REFUSED(amq::cli::read_mask(dir / "empty_mask.png", 4, 4), "is empty (0 bytes)");
  write_bytes(dir / "text_mask.png", Bytes{'m', 'a', 's', 'k'});
  AMQ_CHECK_REFUSED(amq::cli::read_mask(dir / "text_mask.png", 4, 4), "cannot decode mask");
  // 17. A mask of huge declared dimensions.
  write_bytes(dir / "bomb_mask.png", png_declaring(50000, 50000));
  AMQ_CHECK_REFUSED(amq::cli::read_mask(dir / "bomb_mask.png", 4, 4), "50000 x 50000 pixels");
}

TEST_CASE("accepted by design: masks that are not binary, colour or 16-bit are binarised") {
  TempDir dir("mask_values");
  // 18. Every grey level: 0..127 normal, 128..255 defect (half intensity).
  cv::Mat ramp(16, 16, CV_8U);
  for (int i = 0; i < 256; ++i) ramp.data[i] = static_cast<unsigned char>(i);
  write_bytes(dir / "ramp.png", encode(".png", ramp));
  amq::cli::Mask mask = amq::cli::read_mask(dir / "ramp.png", 16, 16);
  for (int i = 0; i < 256; ++i) CHECK(mask.pixels[i] == (i >= 128 ? 1 : 0));
  // 19. A colour mask is read as grey first (white defect on black).
  cv::Mat colour(2, 2, CV_8UC3, cv::Scalar(0, 0, 0));
  colour.at<cv::Vec3b>(1, 1) = cv::Vec3b(255, 255, 255);
  write_bytes(dir / "colour.png", encode(".png", colour));
  mask = amq::cli::read_mask(dir / "colour.png", 2, 2);
  CHECK(mask.pixels == std::vector<std::uint8_t>{0, 0, 0, 1});
  // 20. A 16-bit mask (0 and 65535).
  cv::Mat deep(1, 3, CV_16U, cv::Scalar(0));
  deep.at<std::uint16_t>(0, 2) = 65535;
  write_bytes(dir / "deep.png", encode(".png", deep));
  mask = amq::cli::read_mask(dir / "deep.png", 3, 1);
  CHECK(mask.pixels == std::vector<std::uint8_t>{0, 0, 1});
}

// ---- Data folders ----------------------------------------------------------------------------

TEST_CASE("bad input: data folders") {
  TempDir dir("folders");
  // 21. Missing data folder.
  AMQ_CHECK_REFUSED(amq::cli::training_images(dir / "absent"), "data folder");
  AMQ_CHECK_REFUSED(amq::cli::training_images(dir / "absent"), "does not exist");
  // 22. Empty data folder: no train/good, no test.
  fs::create_directories(dir / "empty");
  AMQ_CHECK_REFUSED(amq::cli::training_images(dir / "empty"), "has no train/good folder");
  AMQ_CHECK_REFUSED(amq::cli::test_samples(dir / "empty"), "has no test folder");
  // 23. train/good holding files that are not images (and a folder named like an image).
  write_bytes(dir / "noimages" / "train" / "good" / "notes.txt", Bytes{'x'});
  fs::create_directories(dir / "noimages" / "train" / "good" / "dir.png");
  AMQ_CHECK_REFUSED(amq::cli::training_images(dir / "noimages"), "holds no .png or .jpg image");
  // 24. test/ without defect-type folders; a defect folder without images.
  fs::create_directories(dir / "notypes" / "test");
  AMQ_CHECK_REFUSED(amq::cli::test_samples(dir / "notypes"), "has no defect-type folder");
  const fs::path category = make_category(dir / "category");
  fs::create_directories(category / "test" / "scratch");
  AMQ_CHECK_REFUSED(amq::cli::test_samples(category), "scratch\" holds no .png or .jpg image");
  fs::remove(category / "test" / "scratch");
  // 25. A defective test image without its mask.
  fs::remove(category / "ground_truth" / "crack" / "000_mask.png");
  AMQ_CHECK_REFUSED(amq::cli::test_samples(category), "has no mask");
  // 26. The data folder is a file.
  write_bytes(dir / "file", Bytes{'x'});
  AMQ_CHECK_REFUSED(amq::cli::training_images(dir / "file"), "does not exist");
  // The well-formed category is read: image names sorted, masks found, good images unmasked.
  const fs::path good = make_category(dir / "good_category");
  CHECK(amq::cli::training_images(good).size() == 2);
  const std::vector<amq::cli::TestSample> samples = amq::cli::test_samples(good);
  REQUIRE(samples.size() == 2);
  CHECK(samples[0].defect == "crack");
  CHECK(!samples[0].mask.empty());
  CHECK(samples[1].mask.empty());
}

TEST_CASE("bad input: an unreadable data folder") {
  // 27. A train/good folder without read permission. Root reads any folder, so the check runs
  // in a child process that drops to the unprivileged user "nobody" when started as root.
  TempDir dir("unreadable");
  const fs::path category = make_category(dir / "category");
  fs::permissions(dir.path, fs::perms::all, fs::perm_options::add);
  for (const fs::path& p : fs::recursive_directory_iterator(dir.path)) {
    fs::permissions(p, fs::perms::all, fs::perm_options::add);
  }
  fs::permissions(category / "train" / "good", fs::perms::none);

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    try {
      amq::cli::training_images(category);
    } catch (const std::exception& e) {
      const std::string message = e.what();
      const bool named = message.find("Permission denied") != std::string::npos &&
                         message.find("good") != std::string::npos;
      ::_exit(named ? 0 : 2);
    }
    ::_exit(1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 1: read anyway, 2: a message without cause or folder
}

// ---- Model containers ------------------------------------------------------------------------

TEST_CASE("bad input: command-line model containers") {
  amq::cli::ModelFile model;
  model.metadata = {{"format", "amq-cli-model"}, {"threshold", {{"value", 0.5}}}};
  model.scorer_bytes = Bytes(40, 7);
  const Bytes good = amq::cli::encode_model_file(model);
  const auto decode = [](const Bytes& bytes) {
    return amq::cli::decode_model_file(bytes, "model.amq");
  };
  REQUIRE(decode(good).scorer_bytes == model.scorer_bytes);
  // 28. Empty, and a missing file.
  AMQ_CHECK_REFUSED(decode({}), "'model.amq' is not an amq model file");
  TempDir dir("containers");
  AMQ_CHECK_REFUSED(amq::cli::read_model_file(dir / "absent.amq"), "does not exist");
  // 29. Cut at every length.
  for (std::size_t length = 0; length < good.size(); ++length) {
    CAPTURE(length);
    CHECK_THROWS_AS(decode(Bytes(good.begin(), good.begin() + length)), amq::Error);
  }
  // 30. One corrupted byte at every position.
  for (std::size_t at = 0; at < good.size(); ++at) {
    CAPTURE(at);
    Bytes bytes = good;
    bytes[at] ^= 0x41;
    CHECK_THROWS_AS(decode(bytes), amq::Error);
  }
  // 31. Another container version.
  Bytes bytes = good;
  bytes[8] = 2;
  AMQ_CHECK_REFUSED(decode(resealed(bytes)), "container version 2, this program reads version 1");
  // 32. Metadata that is not JSON; a metadata length beyond the file; a wrong scorer length.
  bytes = good;
  bytes[20] = '}';
  AMQ_CHECK_REFUSED(decode(resealed(bytes)), "metadata is not valid JSON");
  bytes = good;
  put_u64(bytes, 12, std::uint64_t{1} << 62);
  AMQ_CHECK_REFUSED(decode(resealed(bytes)), "truncated: metadata");
  bytes = good;
  put_u64(bytes, good.size() - 8 - 40 - 8, 41);
  AMQ_CHECK_REFUSED(decode(resealed(bytes)), "scorer length 41 does not match");
}

// ---- Output files ----------------------------------------------------------------------------

TEST_CASE("output files are written whole or not at all") {
  TempDir dir("outputs");
  const fs::path report = dir / "report.json";
  amq::cli::write_file_atomically(report, std::string("old report"));
  // 33. Into a missing folder: refused, nothing created.
  AMQ_CHECK_REFUSED(amq::cli::write_file_atomically(dir / "missing" / "r.json", "x"),
                    "cannot create");
  CHECK(!fs::exists(dir / "missing"));
  // 34. A writer that fails part-way: the old file stays, no temporary file remains.
  AMQ_CHECK_REFUSED(amq::cli::write_file_atomically(report,
                                                    [](std::ostream& out) {
                                                      out << "half a report";
                                                      AMQ_FAIL("rendering failed");
                                                    }),
                    "rendering failed");
  CHECK(read_bytes(report) == Bytes{'o', 'l', 'd', ' ', 'r', 'e', 'p', 'o', 'r', 't'});
  CHECK(entries(dir.path) == 1);
  // 35. A write the file system cuts short (file-size limit, like a full disk), for the
  // report writer and for the model container.
  const std::string big(256 * 1024, 'r');
  amq::cli::ModelFile model;
  model.metadata = {{"format", "amq-cli-model"}};
  model.scorer_bytes = Bytes(256 * 1024, 9);
  const fs::path model_path = dir / "model.amq";
  amq::cli::write_model_file(model_path, amq::cli::ModelFile{model.metadata, Bytes(16, 1)});
  const Bytes old_model = read_bytes(model_path);

  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &limited) == 0);
  std::string report_error;
  std::string model_error;
  try {
    amq::cli::write_file_atomically(report, big);
  } catch (const amq::Error& e) {
    report_error = e.what();
  }
  try {
    amq::cli::write_model_file(model_path, model);
  } catch (const amq::Error& e) {
    model_error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);

  CHECK(report_error.find("report.json") != std::string::npos);
  CHECK(model_error.find("cannot write model file") != std::string::npos);
  CHECK(read_bytes(report) == Bytes{'o', 'l', 'd', ' ', 'r', 'e', 'p', 'o', 'r', 't'});
  CHECK(read_bytes(model_path) == old_model);
  CHECK(entries(dir.path) == 2);  // report.json and model.amq, no temporary files
  // 36. Over a folder.
  fs::create_directories(dir / "taken");
  AMQ_CHECK_REFUSED(amq::cli::write_file_atomically(dir / "taken", "x"), "cannot rename");
  CHECK(fs::is_directory(dir / "taken"));
  CHECK(entries(dir.path) == 3);
}

// ---- The program, end to end -----------------------------------------------------------------

#ifdef AMQ_CLI_PATH
namespace {

struct Run {
  int status = -1;
  std::string err;
};

// Runs `amq ARGS` with stderr captured; stdout is discarded.
Run run_amq(const TempDir& dir, const std::string& args) {
  const fs::path err = dir / "stderr.txt";
  const std::string command =
      std::string("\"") + AMQ_CLI_PATH + "\" " + args + " >/dev/null 2>\"" + err.string() + "\"";
  const int raw = std::system(command.c_str());
  Run run;
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  const Bytes text = read_bytes(err);
  run.err.assign(text.begin(), text.end());
  fs::remove(err);
  return run;
}

void expect_error(const Run& run, const std::string& fragment) {
  INFO("stderr: " << run.err);
  CHECK(run.status == 1);
  CHECK(run.err.rfind("error: amq: ", 0) == 0);
  CHECK(run.err.find(fragment) != std::string::npos);
}

std::string quoted(const fs::path& path) { return "\"" + path.string() + "\""; }

}  // namespace

TEST_CASE("the amq program refuses bad input with status 1, a message and no output") {
  TempDir dir("program");
  const fs::path category = make_category(dir / "category");
  const fs::path weights = dir / "weights.safetensors";
  write_bytes(weights, Bytes{'w'});
  const fs::path out = dir / "model.amq";
  const std::string train = "train --weights " + quoted(weights) + " --out " + quoted(out);

  // 37. Training: a missing data folder, a folder without train/good, a bad holdout, an
  // output folder that does not exist. None of them writes a model.
  expect_error(run_amq(dir, train + " --data " + quoted(dir / "absent")), "does not exist");
  fs::create_directories(dir / "bare");
  expect_error(run_amq(dir, train + " --data " + quoted(dir / "bare")), "has no train/good");
  expect_error(run_amq(dir, train + " --data " + quoted(category) + " --holdout 0"),
               "--holdout must lie in (0, 1), got 0");
  expect_error(run_amq(dir, "train --weights " + quoted(weights) + " --data " + quoted(category) +
                                " --out " + quoted(dir / "nowhere" / "m.amq")),
               "does not exist");
  CHECK(!fs::exists(out));

  // 38. Testing and scoring with a model file that is empty, cut short or not a file; and a
  // heatmap folder that is a file. None of them writes a report or heatmaps.
  const fs::path report = dir / "report.json";
  write_bytes(dir / "empty.amq", {});
  expect_error(run_amq(dir, "test --model " + quoted(dir / "empty.amq") + " --data " +
                                quoted(category) + " --report " + quoted(report)),
               "is not an amq model file");
  amq::cli::ModelFile model;
  model.metadata = {{"format", "amq-cli-model"}};
  model.scorer_bytes = Bytes(64, 3);
  Bytes container = amq::cli::encode_model_file(model);
  container.resize(container.size() - 20);
  write_bytes(dir / "cut.amq", container);
  expect_error(run_amq(dir, "test --model " + quoted(dir / "cut.amq") + " --data " +
                                quoted(category) + " --report " + quoted(report)),
               "checksum mismatch");
  expect_error(run_amq(dir, "score --model " + quoted(dir / "category") + " " +
                                quoted(category / "test" / "good" / "000.png")),
               "is not a file");
  write_bytes(dir / "heatmaps", Bytes{'x'});
  expect_error(run_amq(dir, "score --model " + quoted(dir / "cut.amq") + " --heatmaps " +
                                quoted(dir / "heatmaps") + " " +
                                quoted(category / "test" / "good" / "000.png")),
               "exists and is not a folder");
  CHECK(!fs::exists(report));
  CHECK(fs::is_regular_file(dir / "heatmaps"));

  // 39. Option values out of range, refused while the command line is parsed (CLI11's own
  // status), naming the option and the value as typed: zero, negative, NaN, trailing text,
  // and negative numbers for unsigned options, which would otherwise wrap.
  for (const auto& [option, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"--target-fpr 0", "--target-fpr: must be a finite number in (0, 1), got 0"},
           {"--target-fpr -0.5", "got -0.5"},
           {"--target-fpr nan", "got nan"},
           {"--target-fpr 1e-5x", "got 1e-5x"},
           {"--smooth-sigma -1", "--smooth-sigma: must be a finite number in [0, inf)"},
           {"--bucket-width -1", "--bucket-width: must be a finite number in (0, inf), got -1"},
           {"--absolute-bucket-width inf", "got inf"},
           {"-G -5", "--hashes: must be a finite number in [1, inf), got -5"},
           {"-K 0", "--codes-per-key"},
           {"-M 0", "--filter-bits"},
           {"--batch-size 0", "--batch-size"}}) {
    CAPTURE(option);
    const Run run = run_amq(dir, train + " --data " + quoted(category) + " " + option);
    CHECK(run.status != 0);
    CHECK(run.err.find(fragment) != std::string::npos);
    CHECK(!fs::exists(out));
  }
  const Run test_run = run_amq(dir, "test --model " + quoted(dir / "cut.amq") + " --data " +
                                        quoted(category) + " --smooth-sigma nan");
  CHECK(test_run.status != 0);
  CHECK(test_run.err.find("--smooth-sigma: must be a finite number in [0, inf), got nan") !=
        std::string::npos);
}
#endif
