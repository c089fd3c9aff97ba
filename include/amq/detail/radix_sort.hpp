/// @file radix_sort.hpp
/// @brief Order-preserving integer keys of float scores and an LSD radix sort on them, so that
/// the metrics sort tens of millions of pixel scores in a few passes instead of n log n
/// comparisons.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace amq::detail {

/// Maps a non-NaN float to an unsigned key with the same order: a < b exactly when
/// key(a) < key(b), and equal floats (including -0 and +0) get equal keys.
inline std::uint32_t score_key(float score) {
  score += 0.0f;  // -0 + 0 is +0, so both zeros share one key
  std::uint32_t bits = 0;
  std::memcpy(&bits, &score, sizeof bits);
  // Negative floats order backwards by their bits; positive ones forwards above them.
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

/// The float whose score_key() is `key`.
inline float key_score(std::uint32_t key) {
  const std::uint32_t bits = (key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key;
  float score = 0.0f;
  std::memcpy(&score, &bits, sizeof score);
  return score;
}

/// Sorts `items` ascending by the 32-bit key held in bits [shift, shift + 32) of each item
/// (stable, least significant byte first). A byte that all items share needs no pass, which
/// is common for scores in [0, 1]. Uses a second buffer of the same size.
template <class Item>
void radix_sort(std::vector<Item>& items, unsigned shift) {
  if (items.empty()) return;
  std::array<std::array<std::size_t, 256>, 4> counts{};
  for (const Item& item : items) {
    for (unsigned byte = 0; byte < 4; ++byte) ++counts[byte][(item >> (shift + 8 * byte)) & 0xff];
  }

  std::vector<Item> buffer;
  for (unsigned byte = 0; byte < 4; ++byte) {
    std::array<std::size_t, 256>& start = counts[byte];
    const std::size_t any = (items.front() >> (shift + 8 * byte)) & 0xff;
    if (start[any] == items.size()) continue;

    std::size_t offset = 0;
    for (std::size_t& c : start) {
      const std::size_t count = c;
      c = offset;
      offset += count;
    }
    buffer.resize(items.size());
    for (const Item& item : items) buffer[start[(item >> (shift + 8 * byte)) & 0xff]++] = item;
    items.swap(buffer);
  }
}

}  // namespace amq::detail
