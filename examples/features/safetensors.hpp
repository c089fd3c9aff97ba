/// @file safetensors.hpp
/// @brief A strict reader and a small writer of the safetensors weight format: a little-endian
/// u64 header length N, N bytes of JSON describing each tensor, then the raw tensor bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace amq::features {

/// One tensor's entry in a safetensors header.
struct SafetensorsEntry {
  std::string dtype;                ///< "F32", "F16", "I64", ...
  std::vector<std::int64_t> shape;  ///< Extent of each dimension (empty for a scalar).
  std::size_t begin = 0;            ///< First data byte, relative to the data section.
  std::size_t end = 0;              ///< One past the last data byte.
};

/// A safetensors file read whole into memory. The constructor checks everything the format
/// promises (header length against the file size, JSON layout, known dtypes, shapes against
/// byte ranges, ranges inside the data section, element-aligned, covering it without gaps or
/// overlaps) and throws amq::Error naming the file and the problem.
class SafetensorsFile {
 public:
  /// Reads and validates the file at `path`.
  explicit SafetensorsFile(const std::string& path);

  /// The file this was read from.
  const std::string& path() const { return path_; }
  /// True when the file holds a tensor called `name`.
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  /// Names of all tensors, sorted.
  std::vector<std::string> names() const;
  /// The header entry of tensor `name`; throws amq::Error when it is absent.
  const SafetensorsEntry& entry(const std::string& name) const;
  /// The `__metadata__` strings of the header (empty when it has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The float32 values of tensor `name` after checking that its dtype is F32 and its shape
  /// is `expected_shape`; throws amq::Error naming the tensor otherwise. Valid while this
  /// object lives.
  const float* f32_data(const std::string& name,
                        const std::vector<std::int64_t>& expected_shape) const;

 private:
  void parse_header(const std::string& header, std::size_t data_size);

  std::string path_;
  std::vector<std::uint64_t> data_;  // the data section; u64 storage keeps it 8-byte aligned
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

/// A float32 tensor to write: `values` holds the product of `shape` elements, row-major.
struct F32Tensor {
  std::vector<std::int64_t> shape;  ///< Extent of each dimension.
  std::vector<float> values;        ///< Row-major elements.
};

/// Writes `tensors` as a safetensors file at `path`, the header padded with spaces so that the
/// data section starts on a multiple of 8. Writes a temporary file first and renames it, so a
/// failure leaves no partial file; throws amq::Error on a bad shape or a failed write.
void write_safetensors(const std::string& path, const std::map<std::string, F32Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// A shape as "[a, b, c]", for messages.
std::string shape_text(const std::vector<std::int64_t>& shape);

}  // namespace amq::features
