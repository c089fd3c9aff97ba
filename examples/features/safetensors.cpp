#include "safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "amq/error.hpp"

namespace amq::features {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian and is read in place");

// A header larger than this is not a weights file but a corrupt length field.
constexpr std::uint64_t max_header_length = std::uint64_t{100} << 20;

std::size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  const auto found = sizes.find(dtype);
  return found == sizes.end() ? 0 : found->second;
}

std::uint64_t read_u64_le(const unsigned char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Element count of a shape, or nothing when it overflows size_t.
bool element_count(const std::vector<std::int64_t>& shape, std::size_t& count) {
  count = 1;
  for (const std::int64_t extent : shape) {
    if (extent < 0) return false;
    const auto e = static_cast<std::size_t>(extent);
    if (e != 0 && count > std::numeric_limits<std::size_t>::max() / e) return false;
    count *= e;
  }
  return true;
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& name,
                             const nlohmann::json& value) {
  AMQ_EXPECTS(value.is_object(), file << ": header entry '" << name << "' is not an object");
  for (const auto& field : value.items()) {
    AMQ_EXPECTS(
        field.key() == "dtype" || field.key() == "shape" || field.key() == "data_offsets",
        file << ": tensor '" << name << "' has an unknown header field '" << field.key() << "'");
  }
  AMQ_EXPECTS(value.contains("dtype") && value["dtype"].is_string(),
              file << ": tensor '" << name << "' has no string 'dtype'");
  AMQ_EXPECTS(value.contains("shape") && value["shape"].is_array(),
              file << ": tensor '" << name << "' has no array 'shape'");
  AMQ_EXPECTS(value.contains("data_offsets") && value["data_offsets"].is_array() &&
                  value["data_offsets"].size() == 2,
              file << ": tensor '" << name << "' has no 'data_offsets' pair");

  SafetensorsEntry entry;
  entry.dtype = value["dtype"].get<std::string>();
  for (const auto& extent : value["shape"]) {
    AMQ_EXPECTS(extent.is_number_unsigned(), file << ": tensor '" << name
                                                  << "' has a shape extent that is not a "
                                                  << "non-negative integer: " << extent.dump());
    entry.shape.push_back(extent.get<std::int64_t>());
  }
  for (const auto& offset : value["data_offsets"]) {
    AMQ_EXPECTS(offset.is_number_unsigned(), file << ": tensor '" << name
                                                  << "' has a data offset that is not a "
                                                  << "non-negative integer: " << offset.dump());
  }
  entry.begin = value["data_offsets"][0].get<std::size_t>();
  entry.end = value["data_offsets"][1].get<std::size_t>();
  return entry;
}

void check_entry(const std::string& file, const std::string& name, const SafetensorsEntry& entry,
                 std::size_t data_size) {
  const std::size_t size = dtype_size(entry.dtype);
  AMQ_EXPECTS(size != 0,
              file << ": tensor '" << name << "' has unknown dtype '" << entry.dtype << "'");
  AMQ_EXPECTS(entry.begin <= entry.end, file << ": tensor '" << name << "' has data_offsets ["
                                             << entry.begin << ", " << entry.end
                                             << ") that run backwards");
  AMQ_EXPECTS(entry.end <= data_size, file << ": tensor '" << name << "' ends at data byte "
                                           << entry.end << " but the data section holds only "
                                           << data_size << " bytes (truncated file?)");
  AMQ_EXPECTS(entry.begin % size == 0, file << ": tensor '" << name << "' starts at data byte "
                                            << entry.begin << ", not a multiple of its "
                                            << entry.dtype << " element size " << size);
  std::size_t count = 0;
  AMQ_EXPECTS(
      element_count(entry.shape, count) && count <= std::numeric_limits<std::size_t>::max() / size,
      file << ": tensor '" << name << "' has an impossible shape " << shape_text(entry.shape));
  AMQ_EXPECTS(count * size == entry.end - entry.begin,
              file << ": tensor '" << name << "' of shape " << shape_text(entry.shape) << " and "
                   << entry.dtype << " needs " << count * size << " bytes, its data_offsets ["
                   << entry.begin << ", " << entry.end << ") span " << entry.end - entry.begin);
}

}  // namespace

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream text;
  text << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) text << (i ? ", " : "") << shape[i];
  text << ']';
  return text.str();
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  AMQ_EXPECTS(in, "cannot open safetensors file '" << path << "'");
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  AMQ_EXPECTS(file_size >= 8,
              path << ": " << file_size << " bytes, too short for a safetensors header length");

  unsigned char length_bytes[8];
  in.seekg(0);
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  const std::uint64_t header_length = read_u64_le(length_bytes);
  AMQ_EXPECTS(header_length >= 2 && header_length <= max_header_length,
              path << ": header length " << header_length << " is not plausible (not a "
                   << "safetensors file?)");
  AMQ_EXPECTS(header_length <= file_size - 8,
              path << ": header length " << header_length << " exceeds the " << file_size - 8
                   << " bytes after the length field (truncated file?)");

  std::string header(static_cast<std::size_t>(header_length), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  const auto data_size = static_cast<std::size_t>(file_size - 8 - header_length);
  data_.resize((data_size + 7) / 8);
  in.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_size));
  AMQ_EXPECTS(in, path << ": read failed");

  parse_header(header, data_size);
}

void SafetensorsFile::parse_header(const std::string& header, std::size_t data_size) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    AMQ_FAIL(path_ << ": header is not valid JSON (" << e.what() << ")");
  }
  AMQ_EXPECTS(json.is_object(), path_ << ": header is not a JSON object");

  for (const auto& item : json.items()) {
    if (item.key() == "__metadata__") {
      AMQ_EXPECTS(item.value().is_object(), path_ << ": __metadata__ is not an object");
      for (const auto& meta : item.value().items()) {
        AMQ_EXPECTS(meta.value().is_string(),
                    path_ << ": __metadata__ value '" << meta.key() << "' is not a string");
        metadata_[meta.key()] = meta.value().get<std::string>();
      }
      continue;
    }
    SafetensorsEntry entry = parse_entry(path_, item.key(), item.value());
    check_entry(path_, item.key(), entry, data_size);
    entries_.emplace(item.key(), std::move(entry));
  }

  // The format packs tensors back to back: sorted by offset, they must tile the data section.
  std::vector<std::pair<std::size_t, std::string>> starts;
  for (const auto& [name, entry] : entries_) starts.emplace_back(entry.begin, name);
  std::sort(starts.begin(), starts.end(), [this](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first
                              : entries_.at(a.second).end < entries_.at(b.second).end;
  });
  std::size_t covered = 0;
  for (const auto& [begin, name] : starts) {
    AMQ_EXPECTS(begin == covered, path_ << ": tensor '" << name << "' starts at data byte " << begin
                                        << " but the previous tensor ends at " << covered
                                        << " (overlap or gap)");
    covered = entries_.at(name).end;
  }
  AMQ_EXPECTS(covered == data_size, path_ << ": tensors cover " << covered
                                          << " bytes of a data section of " << data_size
                                          << " (trailing bytes)");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> result;
  for (const auto& item : entries_) result.push_back(item.first);
  return result;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto found = entries_.find(name);
  AMQ_EXPECTS(found != entries_.end(), path_ << ": tensor '" << name << "' is missing");
  return found->second;
}

const float* SafetensorsFile::f32_data(const std::string& name,
                                       const std::vector<std::int64_t>& expected_shape) const {
  const SafetensorsEntry& e = entry(name);
  AMQ_EXPECTS(e.dtype == "F32",
              path_ << ": tensor '" << name << "' has dtype " << e.dtype << ", expected F32");
  AMQ_EXPECTS(e.shape == expected_shape, path_ << ": tensor '" << name << "' has shape "
                                               << shape_text(e.shape) << ", expected "
                                               << shape_text(expected_shape));
  return reinterpret_cast<const float*>(reinterpret_cast<const char*>(data_.data()) + e.begin);
}

void write_safetensors(const std::string& path, const std::map<std::string, F32Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    std::size_t count = 0;
    AMQ_EXPECTS(element_count(tensor.shape, count) && count == tensor.values.size(),
                "write_safetensors: tensor '" << name << "' has shape " << shape_text(tensor.shape)
                                              << " but " << tensor.values.size() << " values");
    const std::size_t bytes = count * sizeof(float);
    nlohmann::json& item = header[name];
    item["dtype"] = "F32";
    item["shape"] = tensor.shape;
    item["data_offsets"] = nlohmann::json::array({offset, offset + bytes});
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  const std::string temporary = path + ".partial";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    AMQ_EXPECTS(out, "write_safetensors: cannot create '" << temporary << "'");
    unsigned char length[8];
    std::uint64_t n = text.size();
    for (unsigned char& byte : length) {
      byte = static_cast<unsigned char>(n & 0xff);
      n >>= 8;
    }
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& item : tensors) {
      out.write(reinterpret_cast<const char*>(item.second.values.data()),
                static_cast<std::streamsize>(item.second.values.size() * sizeof(float)));
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(temporary.c_str());
      AMQ_FAIL("write_safetensors: writing '" << temporary << "' failed");
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    AMQ_FAIL("write_safetensors: cannot rename '" << temporary << "' to '" << path << "'");
  }
}

}  // namespace amq::features
