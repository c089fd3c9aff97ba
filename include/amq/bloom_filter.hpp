/// @file bloom_filter.hpp
/// @brief The Bloom filter that stores the keys (k, h_k(x)) of normal images: a set that
/// answers "probably present" or "certainly absent". It never gives a false negative; its
/// false-positive rate depends on the fill, reported by fill() and estimated_fpr().
///
/// The layout is a policy (bloom_policies.hpp): ClassicBloom reproduces the paper,
/// SplitBlockBloom trades a little memory for one cache line per key. Bulk add and
/// contains are the fast path: keys are hashed and their memory prefetched in batches.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <vector>

#include "amq/bloom_policies.hpp"
#include "amq/config.hpp"
#include "amq/detail/aligned_allocator.hpp"
#include "amq/detail/split_block_avx2.hpp"
#include "amq/error.hpp"

namespace amq {

/// A Bloom filter over 64-bit keys, its bits laid out by `Policy`. Const members (contains,
/// count, fill, estimates) are safe from several threads at once; add and merge are not.
template <class Policy = ClassicBloom>
class BloomFilter {
 public:
  /// The filter's raw 32-bit words, aligned to a cache line.
  using Words = std::vector<std::uint32_t, detail::AlignedAllocator<std::uint32_t, 64>>;

  /// An empty filter. Throws amq::Error on bad parameters; the split-block policy rounds
  /// M up to a multiple of 256 and sets B = 8 (see params()).
  explicit BloomFilter(const BloomParams& params)
      : params_(Policy::normalized(params)),
        words_(allocate_words(params_)),
        prefetch_(size_bytes() > kPrefetchBytes) {}

  /// The parameters in effect (after the policy's rounding).
  const BloomParams& params() const { return params_; }

  /// Inserts one key.
  void add(std::uint64_t key) {
    Policy::insert(words_.data(), params_, Policy::locate(params_, key));
  }

  /// True when `key` is probably present; false means it was never added.
  bool contains(std::uint64_t key) const {
    return Policy::query(words_.data(), params_, Policy::locate(params_, key));
  }

  /// Inserts `n` keys.
  void add(const std::uint64_t* keys, std::size_t n) {
    AMQ_EXPECTS(n == 0 || keys != nullptr, "add of " << n << " keys from a null array");
#if AMQ_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<Policy, SplitBlockBloom>) {
      if (detail::has_avx2()) {
        return detail::split_block_add_avx2(words_.data(), params_, keys, n, prefetch_);
      }
    }
#endif
    typename Policy::Location loc[detail::kProbeBatch];
    for (std::size_t first = 0; first < n; first += detail::kProbeBatch) {
      const std::size_t m = std::min(detail::kProbeBatch, n - first);
      for (std::size_t i = 0; i < m; ++i) {
        loc[i] = Policy::locate(params_, keys[first + i]);
        if (prefetch_) Policy::prefetch(words_.data(), params_, loc[i]);
      }
      for (std::size_t i = 0; i < m; ++i) Policy::insert(words_.data(), params_, loc[i]);
    }
  }

  /// found[i] = 1 when keys[i] is probably present, else 0. OpenMP-parallel for large n
  /// (serial when called inside a parallel region).
  void contains(const std::uint64_t* keys, std::size_t n, std::uint8_t* found) const {
    AMQ_EXPECTS(n == 0 || (keys != nullptr && found != nullptr),
                "contains of " << n << " keys with a null key or result array");
    probe_parallel(keys, n, found);
  }

  /// How many of the `n` keys are probably present.
  std::size_t count(const std::uint64_t* keys, std::size_t n) const {
    AMQ_EXPECTS(n == 0 || keys != nullptr, "count of " << n << " keys from a null array");
    return probe_parallel(keys, n, nullptr);
  }

  /// Adds every key of `other` (bitwise OR): the result is the filter of the union of both
  /// key sets. Throws amq::Error unless both filters have equal parameters.
  void merge(const BloomFilter& other) {
    AMQ_EXPECTS(params_ == other.params_, "cannot merge Bloom filters with different parameters: "
                                              << params_ << " and " << other.params_);
    const std::size_t n = words_.size();
    for (std::size_t i = 0; i < n; ++i) words_[i] |= other.words_[i];
  }

  /// Fraction of the M bits that are set.
  double fill() const {
    return static_cast<double>(set_bits()) / static_cast<double>(params_.bits);
  }

  /// False-positive rate of a random absent key, estimated from the bits actually set.
  double estimated_fpr() const { return Policy::estimated_fpr(words_.data(), params_, set_bits()); }

  /// Memory held by the filter's bits.
  std::size_t size_bytes() const { return words_.size() * sizeof(std::uint32_t); }

  /// The raw words, for serialization and for copying to a device.
  const Words& words() const { return words_; }

  /// A filter with parameters `params` and raw words `words`, e.g. read from a file. Throws
  /// amq::Error if the count does not match the parameters or a bit past M is set.
  static BloomFilter from_words(const BloomParams& params, const std::uint32_t* words,
                                std::size_t count) {
    BloomFilter filter(params);
    AMQ_EXPECTS(count == filter.words_.size(), "Bloom filter with " << filter.params_ << " needs "
                                                                    << filter.words_.size()
                                                                    << " words, got " << count);
    AMQ_EXPECTS(count == 0 || words != nullptr, "from_words with a null word array");
    std::copy(words, words + count, filter.words_.begin());
    const std::uint64_t tail_bits = filter.params_.bits % 32;
    AMQ_EXPECTS(tail_bits == 0 || (filter.words_.back() >> tail_bits) == 0,
                "Bloom filter words set bits past M = " << filter.params_.bits);
    return filter;
  }

  /// from_words for any vector of 32-bit words.
  template <class Allocator>
  static BloomFilter from_words(const BloomParams& params,
                                const std::vector<std::uint32_t, Allocator>& words) {
    return from_words(params, words.data(), words.size());
  }

 private:
  /// Keys per parallel chunk: enough work to amortise a thread, small enough to balance.
  static constexpr std::size_t kChunk = 4096;
  /// Filters up to this size stay in a core's L2 cache, where prefetching only costs time.
  static constexpr std::size_t kPrefetchBytes = std::size_t{1} << 20;

  // A filter larger than the machine's memory is refused with its size rather than ending the
  // process in the allocator (or, with overcommit, at the first probe).
  static Words allocate_words(const BloomParams& params) {
    detail::expect_filter_fits(params.bits);
    try {
      return Words(Policy::word_count(params), 0);
    } catch (const std::bad_alloc&) {
      AMQ_FAIL("cannot allocate a Bloom filter of " << params.bits << " bits (" << params.bits / 8
                                                    << " bytes)");
    }
  }

  std::uint64_t set_bits() const {
    std::uint64_t total = 0;
    for (const std::uint32_t w : words_) total += static_cast<std::uint64_t>(detail::popcount32(w));
    return total;
  }

  std::size_t probe_parallel(const std::uint64_t* keys, std::size_t n, std::uint8_t* found) const {
    const auto chunks = static_cast<std::int64_t>((n + kChunk - 1) / kChunk);
    std::size_t hits = 0;
#pragma omp parallel for schedule(static) reduction(+ : hits) if (chunks > 16)
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::size_t first = static_cast<std::size_t>(c) * kChunk;
      const std::size_t m = std::min(kChunk, n - first);
      hits += probe_range(keys + first, m, found == nullptr ? nullptr : found + first);
    }
    return hits;
  }

  /// Serial bulk query of one range, batched so that prefetches overlap the cache misses.
  std::size_t probe_range(const std::uint64_t* keys, std::size_t n, std::uint8_t* found) const {
#if AMQ_HAVE_AVX2_PATH
    if constexpr (std::is_same_v<Policy, SplitBlockBloom>) {
      if (detail::has_avx2()) {
        return detail::split_block_contains_avx2(words_.data(), params_, keys, n, found, prefetch_);
      }
    }
#endif
    typename Policy::Location loc[detail::kProbeBatch];
    std::size_t hits = 0;
    for (std::size_t first = 0; first < n; first += detail::kProbeBatch) {
      const std::size_t m = std::min(detail::kProbeBatch, n - first);
      for (std::size_t i = 0; i < m; ++i) {
        loc[i] = Policy::locate(params_, keys[first + i]);
        if (prefetch_) Policy::prefetch(words_.data(), params_, loc[i]);
      }
      for (std::size_t i = 0; i < m; ++i) {
        const bool hit = Policy::query(words_.data(), params_, loc[i]);
        hits += hit;
        if (found != nullptr) found[first + i] = hit;
      }
    }
    return hits;
  }

  BloomParams params_;
  Words words_;
  bool prefetch_;
};

}  // namespace amq
