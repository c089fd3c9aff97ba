#include "feature_cache.hpp"

#include <cstdint>
#include <cstring>

#include "amq/error.hpp"
#include "amq/serialization.hpp"

namespace amq::cli {
namespace fs = std::filesystem;
namespace {

constexpr char cache_magic[8] = {'A', 'M', 'Q', '-', 'F', 'E', 'A', 'T'};
constexpr std::uint32_t cache_version = 1;

nlohmann::json paths_json(const std::vector<fs::path>& paths) {
  nlohmann::json json = nlohmann::json::array();
  for (const fs::path& path : paths) json.push_back(path.string());
  return json;
}

std::vector<fs::path> paths_from(const nlohmann::json& json) {
  std::vector<fs::path> paths;
  for (const auto& path : json) paths.emplace_back(path.get<std::string>());
  return paths;
}

void write_maps(ByteWriter& out, const std::vector<features::FeatureMapBuffer>& maps) {
  std::size_t floats = 0;
  for (const auto& map : maps) floats += map.data.size();
  out.u64(floats);
  for (const auto& map : maps) {
    for (const float value : map.data) out.f32(value);
  }
}

std::vector<features::FeatureMapBuffer> read_maps(ByteReader& in, std::size_t count,
                                                  std::size_t width, std::size_t height,
                                                  std::size_t depth, const char* what) {
  const std::size_t per_map = width * height * depth;
  const std::uint64_t floats = in.u64(what);
  if (floats != count * per_map) {
    in.fail(std::string(what) + ": " + std::to_string(floats) + " floats, expected " +
            std::to_string(count) + " maps of " + std::to_string(per_map));
  }
  if (floats > in.remaining() / 4) in.fail(std::string("truncated inside the ") + what);
  std::vector<features::FeatureMapBuffer> maps(count);
  for (auto& map : maps) {
    map.width = width;
    map.height = height;
    map.depth = depth;
    map.data.resize(per_map);
    for (float& value : map.data) value = in.f32(what);
  }
  return maps;
}

}  // namespace

void write_category_features(const fs::path& path, const CategoryFeatures& f) {
  AMQ_EXPECTS(!f.fit.empty() && !f.test.empty() && f.test.size() == f.samples.size() &&
                  f.regions.size() == f.samples.size() && f.fit.size() == f.fit_images.size() &&
                  f.held.size() == f.held_images.size(),
              "category features of " << f.fit.size() << " fit, " << f.held.size() << " held-out "
                                      << "and " << f.test.size() << " test maps do not match "
                                      << "their image lists");
  const features::FeatureMapBuffer& first = f.fit.front();
  nlohmann::json meta;
  meta["key"] = f.key;
  meta["fit_images"] = paths_json(f.fit_images);
  meta["held_images"] = paths_json(f.held_images);
  meta["test"] = nlohmann::json::array();
  for (std::size_t i = 0; i < f.samples.size(); ++i) {
    const TestRegion& r = f.regions[i];
    meta["test"].push_back(
        {{"image", f.samples[i].image.string()},
         {"defect", f.samples[i].defect},
         {"mask", f.samples[i].mask.string()},
         {"region", {r.image_width, r.image_height, r.x, r.y, r.width, r.height}}});
  }
  meta["shape"] = {first.width, first.height, first.depth};
  meta["timing_ms"] = {{"load", f.load_ms},
                       {"backbone", f.backbone_ms},
                       {"load_cpu", f.load_cpu_ms},
                       {"backbone_cpu", f.backbone_cpu_ms}};

  const std::string text = meta.dump();
  ByteWriter out;
  out.bytes(cache_magic, sizeof cache_magic);
  out.u32(cache_version);
  out.u64(text.size());
  out.bytes(text.data(), text.size());
  for (const auto* maps : {&f.fit, &f.held, &f.test}) {
    for (const auto& map : *maps) {
      AMQ_EXPECTS(map.width == first.width && map.height == first.height &&
                      map.depth == first.depth &&
                      map.data.size() == map.width * map.height * map.depth,
                  "feature maps of different shapes cannot share one cache");
    }
    write_maps(out, *maps);
  }
  out.checksum();
  write_file_atomically(path.string(), out.take());
}

CategoryFeatures read_category_features(const fs::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path.string());
  const std::string name = path.string();
  ByteReader in(bytes.data(), bytes.size(), name);
  constexpr std::size_t envelope = sizeof cache_magic + 4 + 8;
  if (bytes.size() < envelope) in.fail("truncated: too short for a feature cache");
  char magic[sizeof cache_magic];
  in.bytes(magic, sizeof magic, "magic");
  if (std::memcmp(magic, cache_magic, sizeof magic) != 0) in.fail("not an amq feature cache");
  const std::uint32_t version = in.u32("version");
  if (version != cache_version) {
    in.fail("feature cache version " + std::to_string(version) + ", this program reads " +
            std::to_string(cache_version));
  }
  const std::size_t body_end = bytes.size() - 8;
  ByteReader tail(bytes.data() + body_end, 8, name);
  if (tail.u64("checksum") != fnv1a64(bytes.data(), body_end)) {
    in.fail("checksum mismatch: the file is corrupted or truncated");
  }
  ByteReader body(bytes.data(), body_end, name);
  body.skip(sizeof cache_magic + 4);

  CategoryFeatures f;
  try {
    const std::uint64_t length = body.u64("metadata length");
    if (length > body.remaining()) body.fail("truncated inside the metadata");
    std::string text(length, '\0');
    body.bytes(text.data(), length, "metadata");
    const nlohmann::json meta = nlohmann::json::parse(text);
    f.key = meta.at("key");
    f.fit_images = paths_from(meta.at("fit_images"));
    f.held_images = paths_from(meta.at("held_images"));
    for (const auto& entry : meta.at("test")) {
      const std::vector<std::size_t> r = entry.at("region").get<std::vector<std::size_t>>();
      if (r.size() != 6) body.fail("a test region needs 6 numbers");
      f.samples.push_back({entry.at("image").get<std::string>(),
                           entry.at("defect").get<std::string>(),
                           entry.at("mask").get<std::string>()});
      f.regions.push_back({r[0], r[1], r[2], r[3], r[4], r[5]});
    }
    const std::vector<std::size_t> shape = meta.at("shape").get<std::vector<std::size_t>>();
    if (shape.size() != 3 || shape[0] == 0 || shape[1] == 0 || shape[2] == 0) {
      body.fail("the map shape must be 3 positive numbers");
    }
    const nlohmann::json& timing = meta.at("timing_ms");
    f.load_ms = timing.at("load").get<double>();
    f.backbone_ms = timing.at("backbone").get<double>();
    f.load_cpu_ms = timing.at("load_cpu").get<double>();
    f.backbone_cpu_ms = timing.at("backbone_cpu").get<double>();
    f.fit = read_maps(body, f.fit_images.size(), shape[0], shape[1], shape[2], "fit maps");
    f.held = read_maps(body, f.held_images.size(), shape[0], shape[1], shape[2], "held maps");
    f.test = read_maps(body, f.samples.size(), shape[0], shape[1], shape[2], "test maps");
  } catch (const nlohmann::json::exception& error) {
    body.fail(std::string("malformed metadata: ") + error.what());
  }
  if (body.remaining() != 0) {
    body.fail(std::to_string(body.remaining()) + " unexpected bytes before the checksum");
  }
  if (f.fit.empty() || f.test.empty()) body.fail("no fit or no test maps");
  return f;
}

}  // namespace amq::cli
