#include "model_file.hpp"

#include <cstring>

#include "amq/error.hpp"
#include "amq/serialization.hpp"

namespace amq::cli {
namespace {

constexpr char magic[8] = {'A', 'M', 'Q', '-', 'C', 'L', 'I', '\0'};

}  // namespace

std::vector<std::uint8_t> encode_model_file(const ModelFile& model) {
  const std::string metadata = model.metadata.dump(2);
  ByteWriter writer;
  writer.bytes(magic, sizeof magic);
  writer.u32(model_file_version);
  writer.u64(metadata.size());
  writer.bytes(metadata.data(), metadata.size());
  writer.u64(model.scorer_bytes.size());
  writer.bytes(model.scorer_bytes.data(), model.scorer_bytes.size());
  writer.checksum();
  return writer.buffer();
}

ModelFile decode_model_file(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  AMQ_EXPECTS(bytes.size() >= sizeof magic && std::memcmp(bytes.data(), magic, sizeof magic) == 0,
              "'" << path << "' is not an amq model file (it does not start with the AMQ-CLI "
                     "magic; was it written by `amq train`?)");
  ByteReader reader(bytes.data(), bytes.size(), path);
  char found[sizeof magic];
  reader.bytes(found, sizeof found, "magic");
  const std::uint32_t version = reader.u32("version");
  if (version != model_file_version) {
    reader.fail("container version " + std::to_string(version) + ", this program reads version " +
                std::to_string(model_file_version));
  }

  // The checksum is verified before any field is trusted, so a flipped bit is reported as
  // corruption rather than as a strange value.
  if (bytes.size() < reader.position() + 8) reader.fail("truncated: no checksum");
  const std::size_t body = bytes.size() - 8;
  ByteReader tail(bytes.data() + body, 8, path);
  const std::uint64_t stored = tail.u64("checksum");
  if (stored != fnv1a64(bytes.data(), body)) {
    reader.fail("checksum mismatch: the file is corrupt or truncated");
  }

  ModelFile model;
  const std::uint64_t metadata_size = reader.u64("metadata length");
  if (metadata_size > body - reader.position()) reader.fail("truncated: metadata");
  std::string metadata(metadata_size, '\0');
  reader.bytes(metadata.data(), metadata.size(), "metadata");
  try {
    model.metadata = nlohmann::json::parse(metadata);
  } catch (const nlohmann::json::exception& e) {
    reader.fail(std::string("metadata is not valid JSON: ") + e.what());
  }

  const std::uint64_t scorer_size = reader.u64("scorer length");
  if (scorer_size != body - reader.position()) {
    reader.fail("scorer length " + std::to_string(scorer_size) + " does not match the " +
                std::to_string(body - reader.position()) + " bytes before the checksum");
  }
  model.scorer_bytes.resize(scorer_size);
  reader.bytes(model.scorer_bytes.data(), scorer_size, "scorer");
  return model;
}

void write_model_file(const std::filesystem::path& path, const ModelFile& model) {
  amq::write_file_atomically(path.string(), encode_model_file(model));
}

ModelFile read_model_file(const std::filesystem::path& path) {
  std::error_code error;
  AMQ_EXPECTS(std::filesystem::is_regular_file(path, error),
              "model file " << path << " does not exist or is not a file");
  return decode_model_file(amq::read_file_bytes(path.string()), path.string());
}

}  // namespace amq::cli
