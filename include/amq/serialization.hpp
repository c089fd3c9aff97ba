/// @file serialization.hpp
/// @brief Byte-level tools behind model files: little-endian writer and bounds-checked reader,
/// the FNV-1a 64 checksum, and an atomic whole-file write.
///
/// The model format itself (field by field) is written by AmqScorer::save and documented in
/// docs/model-format.md. Everything here is independent of the scorer so that the format can be
/// checked and repaired by tests and tools.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "amq/error.hpp"

namespace amq {

/// FNV-1a 64-bit hash of `size` bytes, continuing from `state` (start with the offset basis).
/// Model files end with this checksum of every byte before it.
inline std::uint64_t fnv1a64(const std::uint8_t* bytes, std::size_t size,
                             std::uint64_t state = 0xcbf29ce484222325ULL) {
  constexpr std::uint64_t prime = 0x100000001b3ULL;
  for (std::size_t i = 0; i < size; ++i) {
    state ^= bytes[i];
    state *= prime;
  }
  return state;
}

/// Appends little-endian fields to a byte buffer, so files read the same on every machine.
class ByteWriter {
 public:
  /// Appends raw bytes.
  void bytes(const void* data, std::size_t size) {
    const auto* begin = static_cast<const std::uint8_t*>(data);
    buffer_.insert(buffer_.end(), begin, begin + size);
  }
  /// Appends an unsigned 32-bit integer, least significant byte first.
  void u32(std::uint32_t value) {
    for (int i = 0; i < 4; ++i) buffer_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  /// Appends an unsigned 64-bit integer, least significant byte first.
  void u64(std::uint64_t value) {
    for (int i = 0; i < 8; ++i) buffer_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  /// Appends an IEEE-754 binary32 by its bit pattern.
  void f32(float value) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    u32(bits);
  }
  /// Appends an IEEE-754 binary64 by its bit pattern.
  void f64(double value) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    u64(bits);
  }
  /// Appends a count (u64) followed by that many binary32 values.
  void f32_array(const std::vector<float>& values) {
    u64(values.size());
    buffer_.reserve(buffer_.size() + 4 * values.size());
    for (float v : values) f32(v);
  }
  /// Appends a count (u64) followed by that many u32 values.
  template <class Vector>
  void u32_array(const Vector& values) {
    u64(values.size());
    buffer_.reserve(buffer_.size() + 4 * values.size());
    for (std::uint32_t v : values) u32(v);
  }
  /// Appends the FNV-1a 64 checksum of everything written so far.
  void checksum() { u64(fnv1a64(buffer_.data(), buffer_.size())); }

  /// The bytes written so far.
  const std::vector<std::uint8_t>& buffer() const { return buffer_; }
  /// Moves the bytes written out of the writer, leaving it empty.
  std::vector<std::uint8_t> take() { return std::move(buffer_); }

 private:
  std::vector<std::uint8_t> buffer_;
};

/// Reads little-endian fields from a byte buffer. Every read checks the bytes that remain and
/// throws amq::Error naming the file and the field, so a corrupt count can never make the
/// reader allocate more than the file holds.
class ByteReader {
 public:
  /// Reads `size` bytes of `data`, which belong to the file `path` (used in messages).
  ByteReader(const std::uint8_t* data, std::size_t size, std::string path)
      : data_(data), size_(size), path_(std::move(path)) {}

  /// Bytes not read yet.
  std::size_t remaining() const { return size_ - position_; }
  /// Offset of the next byte to read.
  std::size_t position() const { return position_; }
  /// The file name used in messages.
  const std::string& path() const { return path_; }

  /// Moves past `size` bytes already checked elsewhere.
  void skip(std::size_t size) {
    need(size, "skipped bytes");
    position_ += size;
  }
  /// Copies `size` raw bytes.
  void bytes(void* out, std::size_t size, const char* field) {
    need(size, field);
    std::memcpy(out, data_ + position_, size);
    position_ += size;
  }
  /// Reads an unsigned 32-bit little-endian integer.
  std::uint32_t u32(const char* field) {
    need(4, field);
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) value |= std::uint32_t{data_[position_ + i]} << (8 * i);
    position_ += 4;
    return value;
  }
  /// Reads an unsigned 64-bit little-endian integer.
  std::uint64_t u64(const char* field) {
    need(8, field);
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= std::uint64_t{data_[position_ + i]} << (8 * i);
    position_ += 8;
    return value;
  }
  /// Reads a binary32.
  float f32(const char* field) {
    const std::uint32_t bits = u32(field);
    float value = 0.0f;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
  /// Reads a binary64.
  double f64(const char* field) {
    const std::uint64_t bits = u64(field);
    double value = 0.0;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
  /// Reads a count that must equal `expected`, then that many binary32 values.
  std::vector<float> f32_array(std::uint64_t expected, const char* field) {
    const std::uint64_t count = array_count(expected, 4, field);
    std::vector<float> values(count);
    for (auto& v : values) v = f32(field);
    return values;
  }
  /// Reads a count that must equal `expected`, then that many u32 values.
  std::vector<std::uint32_t> u32_array(std::uint64_t expected, const char* field) {
    const std::uint64_t count = array_count(expected, 4, field);
    std::vector<std::uint32_t> values(count);
    for (auto& v : values) v = u32(field);
    return values;
  }

  /// Throws amq::Error naming the file: `what` is wrong with it.
  [[noreturn]] void fail(const std::string& what) const {
    AMQ_FAIL("model file '" << path_ << "': " << what);
  }

 private:
  void need(std::uint64_t size, const char* field) const {
    if (size > remaining()) {
      fail(std::string("truncated: field '") + field + "' needs " + std::to_string(size) +
           " bytes at offset " + std::to_string(position_) + " but only " +
           std::to_string(remaining()) + " remain");
    }
  }

  // The count is checked against the parameters and against the bytes left before anything
  // is allocated.
  std::uint64_t array_count(std::uint64_t expected, std::uint64_t element_size, const char* field) {
    const std::uint64_t count = u64(field);
    if (count != expected) {
      fail(std::string("field '") + field + "' holds " + std::to_string(count) +
           " elements, the parameters require " + std::to_string(expected));
    }
    if (count > remaining() / element_size) {
      fail(std::string("truncated: field '") + field + "' declares " + std::to_string(count) +
           " elements of " + std::to_string(element_size) + " bytes but only " +
           std::to_string(remaining()) + " bytes remain");
    }
    return count;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
  std::string path_;
};

/// Reads a whole file into memory. Throws amq::Error naming the file when it cannot be read.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  AMQ_EXPECTS(file != nullptr, "cannot open model file '" << path << "' for reading");
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof chunk, file)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  AMQ_EXPECTS(!failed, "error while reading model file '" << path << "'");
  return bytes;
}

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, flushed to
/// disk, then renamed over `path`. Readers see the old file or the whole new one, never a
/// partial one; on failure the temporary file is removed and amq::Error names the path.
inline void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  static std::atomic<std::uint64_t> counter{0};
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  const std::string temporary =
      path + ".tmp-" + std::to_string(stamp) + "-" + std::to_string(counter.fetch_add(1));

  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  AMQ_EXPECTS(file != nullptr, "cannot create temporary file '"
                                   << temporary << "' to write model file '" << path << "'");
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  ok = std::fflush(file) == 0 && ok;
#if defined(__unix__) || defined(__APPLE__)
  ok = ::fsync(::fileno(file)) == 0 && ok;
#endif
  ok = std::fclose(file) == 0 && ok;

  std::error_code error;
  if (ok) std::filesystem::rename(temporary, path, error);
  if (!ok || error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    AMQ_FAIL("cannot write model file '" << path << "'"
                                         << (error ? ": " + error.message() : std::string()));
  }
}

}  // namespace amq
