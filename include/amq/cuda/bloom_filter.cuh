/// @file bloom_filter.cuh
/// @brief The Bloom filter on a CUDA device, bit-identical to amq::BloomFilter: the same
/// policies place the same bits (device_logic.hpp), inserted with atomicOr on 32-bit words.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "amq/bloom_filter.hpp"
#include "amq/cuda/cuda_error.cuh"
#include "amq/cuda/device_buffer.cuh"
#include "amq/cuda/device_logic.hpp"

namespace amq::cuda {

/// A non-owning view of a filter in device memory: what kernels receive by value.
template <class Policy>
struct FilterRef {
  const std::uint32_t* words = nullptr;  ///< Device words of the filter.
  BloomParams params;                    ///< Normalised parameters.

  /// True when `key` is probably present. The split-block probe reads its 32-byte block in
  /// two 16-byte loads (blocks are 32-byte aligned: cudaMalloc aligns to 256 bytes).
  __device__ bool contains(std::uint64_t key) const {
    const typename Policy::Location loc = Policy::locate(params, key);
    if constexpr (std::is_same_v<Policy, SplitBlockBloom>) {
      const auto* block = reinterpret_cast<const uint4*>(words + loc.block * 8);
      const uint4 low = __ldg(block), high = __ldg(block + 1);
      const std::uint32_t loaded[8] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
      return split_block_contains(loaded, loc.pattern);
    } else {
      return Policy::query(words, params, loc);
    }
  }
};

namespace detail {

template <class Policy, unsigned Threads>
__global__ void __launch_bounds__(Threads)
    add_keys_kernel(std::uint32_t* words, BloomParams params, const std::uint64_t* keys,
                    std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{Threads} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * Threads) {
    ProbeWords<Policy>::for_each(
        params, Policy::locate(params, keys[i]),
        [words](std::uint64_t word, std::uint32_t mask) { atomicOr(words + word, mask); });
  }
}

// found[i] = membership of keys[i] (when found is not null); *hits += number found.
template <class Policy, unsigned Threads>
__global__ void __launch_bounds__(Threads)
    contains_kernel(FilterRef<Policy> filter, const std::uint64_t* keys, std::size_t n,
                    std::uint8_t* found, unsigned long long* hits) {
  unsigned local = 0;
  for (std::size_t i = blockIdx.x * std::size_t{Threads} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * Threads) {
    const bool hit = filter.contains(keys[i]);
    if (found != nullptr) found[i] = hit ? 1 : 0;
    local += hit ? 1u : 0u;
  }
  if (hits != nullptr) {
    // Every lane leaves the loop before this point, so the whole warp takes part.
    const unsigned warp_total = __reduce_add_sync(0xffffffffu, local);
    if ((threadIdx.x & 31) == 0 && warp_total != 0) atomicAdd(hits, warp_total);
  }
}

template <unsigned Threads>
__global__ void __launch_bounds__(Threads)
    or_words_kernel(std::uint32_t* words, const std::uint32_t* other, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t{Threads} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * Threads) {
    words[i] |= other[i];
  }
}

}  // namespace detail

/// amq::BloomFilter on a CUDA device. Bulk calls take device arrays and have `_async` twins on
/// a caller's stream; the plain calls take host arrays and wait. Concurrent adds are safe
/// (atomicOr); a query concurrent with an add sees some of its bits.
template <class Policy = ClassicBloom>
class BloomFilter {
  static_assert(std::is_same_v<Policy, ClassicBloom> || std::is_same_v<Policy, SplitBlockBloom>,
                "amq::cuda::BloomFilter supports the ClassicBloom and SplitBlockBloom policies");

 public:
  /// An empty filter; parameters are validated and normalised as on the host.
  explicit BloomFilter(const BloomParams& params)
      : params_(checked(params)), words_(Policy::word_count(params_)) {
    words_.zero_async(nullptr);
    AMQ_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  }

  /// A copy of a host filter (its parameters and words).
  explicit BloomFilter(const amq::BloomFilter<Policy>& host)
      : params_(checked(host.params())), words_(host.words().size()) {
    words_.copy_from_host(host.words().data(), host.words().size());
  }

  /// The parameters in effect (after the policy's rounding).
  const BloomParams& params() const { return params_; }
  /// The filter's words in device memory.
  const std::uint32_t* words() const { return words_.data(); }
  /// The filter's words in device memory, for kernels that insert keys.
  std::uint32_t* words() { return words_.data(); }
  /// Number of 32-bit words.
  std::size_t word_count() const { return words_.size(); }
  /// Device memory held by the filter's bits.
  std::size_t size_bytes() const { return words_.bytes(); }
  /// A view for kernels.
  FilterRef<Policy> ref() const { return {words_.data(), params_}; }

  /// Inserts `n` device keys, queued on `stream`.
  void add_async(const std::uint64_t* keys, std::size_t n, cudaStream_t stream) {
    if (n == 0) return;
    detail::add_keys_kernel<Policy, detail::kThreads>
        <<<grid_size(n, detail::kThreads), detail::kThreads, 0, stream>>>(words_.data(), params_,
                                                                          keys, n);
    AMQ_CUDA_CHECK_LAUNCH();
  }

  /// found[i] = 1 when device key keys[i] is probably present, else 0; queued on `stream`.
  void contains_async(const std::uint64_t* keys, std::size_t n, std::uint8_t* found,
                      cudaStream_t stream) const {
    launch_contains(keys, n, found, nullptr, stream);
  }

  /// *hits (device) = how many of the `n` device keys are probably present; queued on `stream`.
  void count_async(const std::uint64_t* keys, std::size_t n, unsigned long long* hits,
                   cudaStream_t stream) const {
    AMQ_CUDA_CHECK(cudaMemsetAsync(hits, 0, sizeof *hits, stream));
    launch_contains(keys, n, nullptr, hits, stream);
  }

  /// Adds every key of `other` (bitwise OR), queued on `stream`. Throws amq::Error unless both
  /// filters have equal parameters.
  void merge_async(const BloomFilter& other, cudaStream_t stream) {
    AMQ_EXPECTS(params_ == other.params_, "cannot merge Bloom filters with different parameters: "
                                              << params_ << " and " << other.params_);
    detail::or_words_kernel<detail::kThreads>
        <<<grid_size(words_.size(), detail::kThreads), detail::kThreads, 0, stream>>>(
            words_.data(), other.words_.data(), words_.size());
    AMQ_CUDA_CHECK_LAUNCH();
  }

  /// Inserts `n` host keys and waits.
  void add(const std::uint64_t* keys, std::size_t n) {
    AMQ_EXPECTS(n == 0 || keys != nullptr, "add of " << n << " keys from a null array");
    DeviceBuffer<std::uint64_t> device_keys(n);
    device_keys.copy_from_host(keys, n);
    add_async(device_keys.data(), n, nullptr);
    AMQ_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  }

  /// found[i] = 1 when host key keys[i] is probably present, else 0.
  void contains(const std::uint64_t* keys, std::size_t n, std::uint8_t* found) const {
    AMQ_EXPECTS(n == 0 || (keys != nullptr && found != nullptr),
                "contains of " << n << " keys with a null key or result array");
    DeviceBuffer<std::uint64_t> device_keys(n);
    DeviceBuffer<std::uint8_t> device_found(n);
    device_keys.copy_from_host(keys, n);
    contains_async(device_keys.data(), n, device_found.data(), nullptr);
    device_found.copy_to_host(found, n);
  }

  /// How many of the `n` host keys are probably present.
  std::size_t count(const std::uint64_t* keys, std::size_t n) const {
    AMQ_EXPECTS(n == 0 || keys != nullptr, "count of " << n << " keys from a null array");
    DeviceBuffer<std::uint64_t> device_keys(n);
    DeviceBuffer<unsigned long long> hits(1);
    device_keys.copy_from_host(keys, n);
    count_async(device_keys.data(), n, hits.data(), nullptr);
    unsigned long long result = 0;
    hits.copy_to_host(&result, 1);
    return static_cast<std::size_t>(result);
  }

  /// The filter's words copied to the host.
  std::vector<std::uint32_t> host_words() const {
    std::vector<std::uint32_t> words(words_.size());
    words_.copy_to_host(words.data(), words.size());
    return words;
  }

  /// A host filter with this filter's parameters and bits.
  amq::BloomFilter<Policy> to_host() const {
    const std::vector<std::uint32_t> words = host_words();
    return amq::BloomFilter<Policy>::from_words(params_, words.data(), words.size());
  }

 private:
  // Runs before any device allocation, so that a machine without a GPU gets this message.
  static BloomParams checked(const BloomParams& params) {
    expect_device("amq::cuda::BloomFilter");
    return Policy::normalized(params);
  }

  void launch_contains(const std::uint64_t* keys, std::size_t n, std::uint8_t* found,
                       unsigned long long* hits, cudaStream_t stream) const {
    if (n == 0) return;
    detail::contains_kernel<Policy, detail::kThreads>
        <<<grid_size(n, detail::kThreads), detail::kThreads, 0, stream>>>(ref(), keys, n, found,
                                                                          hits);
    AMQ_CUDA_CHECK_LAUNCH();
  }

  BloomParams params_;
  DeviceBuffer<std::uint32_t> words_;
};

}  // namespace amq::cuda
