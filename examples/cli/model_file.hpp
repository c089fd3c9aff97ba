/// @file model_file.hpp
/// @brief The command line's model file: one container that holds what `amq test` and
/// `amq score` need besides the scorer (backbone, preprocessing, feature geometry, threshold)
/// as JSON, then the scorer's own serialized bytes.
///
/// Layout, all integers little-endian:
///
///     8 bytes   magic "AMQ-CLI" followed by a zero byte
///     u32       container version (1)
///     u64       length of the metadata, then that many bytes of UTF-8 JSON
///     u64       length of the scorer, then that many bytes as AmqScorer writes them
///     u64       FNV-1a 64 checksum of every byte before it
///
/// The file is written to a temporary file and renamed, so a reader never sees half of it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace amq::cli {

/// The contents of a model file.
struct ModelFile {
  nlohmann::json metadata;                ///< Backbone, features, method parameters, threshold.
  std::vector<std::uint8_t> scorer_bytes;  ///< The serialized scorer.
};

/// The container version this program writes and reads.
inline constexpr std::uint32_t model_file_version = 1;

/// The container as bytes (see the file comment for the layout).
std::vector<std::uint8_t> encode_model_file(const ModelFile& model);

/// Parses container bytes that came from `path` (named in messages). Throws amq::Error when the
/// bytes are not an amq command-line model (magic), are from another version, are truncated,
/// fail the checksum or hold malformed JSON.
ModelFile decode_model_file(const std::vector<std::uint8_t>& bytes, const std::string& path);

/// Writes a model file atomically.
void write_model_file(const std::filesystem::path& path, const ModelFile& model);

/// Reads and checks a model file; throws amq::Error naming the file (see decode_model_file).
ModelFile read_model_file(const std::filesystem::path& path);

}  // namespace amq::cli
