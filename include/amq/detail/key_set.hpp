/// @file key_set.hpp
/// @brief The set of distinct filter keys that training collects before the filter is sized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amq::detail {

/// An open-addressing hash set of 64-bit keys (linear probing, load between 1/4 and 1/2). It
/// costs 16 to 32 bytes per distinct key, which is what lets training count distinct keys over
/// thousands of feature maps without keeping the maps or every inserted key.
class KeySet {
 public:
  /// Inserts `key`; does nothing when it is already present.
  void insert(std::uint64_t key) {
    if (key == empty_) {
      has_empty_key_ = true;
      return;
    }
    if (2 * (stored_ + 1) > slots_.size()) grow();
    insert_slot(key);
  }

  /// Number of distinct keys inserted.
  std::size_t size() const { return stored_ + (has_empty_key_ ? 1 : 0); }

  /// Calls `visit(key)` once for every distinct key, in no particular order.
  template <class Visit>
  void for_each(Visit&& visit) const {
    if (has_empty_key_) visit(empty_);
    for (std::uint64_t key : slots_) {
      if (key != empty_) visit(key);
    }
  }

  /// Frees the memory held by the set.
  void clear() {
    std::vector<std::uint64_t>().swap(slots_);
    stored_ = 0;
    has_empty_key_ = false;
  }

 private:
  // The all-ones key marks an empty slot; if it is ever a real key it is remembered apart.
  static constexpr std::uint64_t empty_ = ~std::uint64_t{0};

  // A multiply-xorshift mixer: keys differ mostly in their low bits (the code), so they must
  // be spread before taking the slot index.
  static std::uint64_t mix(std::uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ULL;
    key ^= key >> 33;
    return key;
  }

  void insert_slot(std::uint64_t key) {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = mix(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == key) return;
      if (slots_[i] == empty_) {
        slots_[i] = key;
        ++stored_;
        return;
      }
    }
  }

  void grow() {
    std::vector<std::uint64_t> old(slots_.empty() ? 1024 : 2 * slots_.size(), empty_);
    old.swap(slots_);
    stored_ = 0;
    for (std::uint64_t key : old) {
      if (key != empty_) insert_slot(key);
    }
  }

  std::vector<std::uint64_t> slots_;
  std::size_t stored_ = 0;
  bool has_empty_key_ = false;
};

}  // namespace amq::detail
