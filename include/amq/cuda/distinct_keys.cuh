/// @file distinct_keys.cuh
/// @brief The set of distinct filter keys on a CUDA device (CUB sort, merge and unique): the
/// count that sizes a filter for a target false-positive rate, as amq's KeySet gives on the
/// host.
#pragma once

#include <cub/device/device_merge.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_select.cuh>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "amq/cuda/cuda_error.cuh"
#include "amq/cuda/device_buffer.cuh"

namespace amq::cuda {

/// A growing set of 64-bit keys kept sorted and distinct in device memory. Each insert sorts
/// the new keys, merges them with the set and drops repeats: O(set + new) work per call, so
/// insert large batches (a whole feature map or more at a time).
class DistinctKeys {
 public:
  /// An empty set; throws amq::Error when no CUDA device is present.
  DistinctKeys() : count_((expect_device("amq::cuda::DistinctKeys"), 1)) {}

  /// Adds `n` device keys (repeats allowed), queued on `stream`, then waits for it: the new
  /// size is needed on the host to size the next step.
  void insert(const std::uint64_t* keys, std::size_t n, cudaStream_t stream) {
    if (n == 0) return;
    const std::size_t merged = size_ + n;
    sorted_.reserve_discard(n);
    merged_.reserve_discard(merged);
    next_.reserve_discard(merged);
    const auto n64 = static_cast<std::int64_t>(n);
    const auto size64 = static_cast<std::int64_t>(size_);
    const auto merged64 = static_cast<std::int64_t>(merged);

    // Ask each algorithm for its scratch size first (null storage), then run all three.
    std::size_t sort_bytes = 0, merge_bytes = 0, unique_bytes = 0;
    AMQ_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, sort_bytes, keys, sorted_.data(), n, 0,
                                                  64, stream));
    AMQ_CUDA_CHECK(cub::DeviceMerge::MergeKeys(nullptr, merge_bytes, keys_.data(), size64,
                                               sorted_.data(), n64, merged_.data(),
                                               ::cuda::std::less<>{}, stream));
    AMQ_CUDA_CHECK(cub::DeviceSelect::Unique(nullptr, unique_bytes, merged_.data(), next_.data(),
                                             count_.data(), merged64, stream));
    std::size_t scratch_bytes = std::max({sort_bytes, merge_bytes, unique_bytes, std::size_t{1}});
    scratch_.reserve_discard(scratch_bytes);

    scratch_bytes = scratch_.size();
    AMQ_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(scratch_.data(), scratch_bytes, keys,
                                                  sorted_.data(), n, 0, 64, stream));
    scratch_bytes = scratch_.size();
    AMQ_CUDA_CHECK(cub::DeviceMerge::MergeKeys(scratch_.data(), scratch_bytes, keys_.data(), size64,
                                               sorted_.data(), n64, merged_.data(),
                                               ::cuda::std::less<>{}, stream));
    scratch_bytes = scratch_.size();
    AMQ_CUDA_CHECK(cub::DeviceSelect::Unique(scratch_.data(), scratch_bytes, merged_.data(),
                                             next_.data(), count_.data(), merged64, stream));

    std::int64_t distinct = 0;
    AMQ_CUDA_CHECK(
        cudaMemcpyAsync(&distinct, count_.data(), sizeof distinct, cudaMemcpyDeviceToHost, stream));
    AMQ_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::swap(keys_, next_);
    size_ = static_cast<std::size_t>(distinct);
  }

  /// Adds `n` host keys and waits.
  void insert(const std::vector<std::uint64_t>& keys) {
    DeviceBuffer<std::uint64_t> device_keys(keys.size());
    device_keys.copy_from_host(keys.data(), keys.size());
    insert(device_keys.data(), keys.size(), nullptr);
  }

  /// Number of distinct keys inserted.
  std::size_t size() const { return size_; }
  /// The distinct keys in ascending order, in device memory (size() of them).
  const std::uint64_t* data() const { return keys_.data(); }

  /// The distinct keys in ascending order, copied to the host.
  std::vector<std::uint64_t> host_keys() const {
    std::vector<std::uint64_t> keys(size_);
    keys_.copy_to_host(keys.data(), size_);
    return keys;
  }

  /// Frees the set's device memory.
  void clear() { *this = DistinctKeys(); }

 private:
  DeviceBuffer<std::int64_t> count_;
  DeviceBuffer<std::uint64_t> keys_;    // the set: size_ sorted distinct keys
  DeviceBuffer<std::uint64_t> sorted_;  // the new keys, sorted
  DeviceBuffer<std::uint64_t> merged_;  // set and new keys merged, repeats included
  DeviceBuffer<std::uint64_t> next_;    // the next set
  DeviceBuffer<unsigned char> scratch_;
  std::size_t size_ = 0;
};

}  // namespace amq::cuda
