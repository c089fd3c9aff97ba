/// @file device_buffer.cuh
/// @brief Owners of device resources: memory, streams, events and the cuBLAS handle.
#pragma once

#include <atomic>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "amq/cuda/cuda_error.cuh"

namespace amq::cuda {

/// Bytes of device memory held by amq's buffers, now and at most since the last reset.
/// The CUDA context and cuBLAS's own workspace are not included.
struct MemoryStats {
  std::size_t current_bytes = 0;  ///< held now
  std::size_t peak_bytes = 0;     ///< highest value of current_bytes since the last reset
};

namespace detail {

inline std::atomic<std::size_t>& current_bytes() {
  static std::atomic<std::size_t> bytes{0};
  return bytes;
}

inline std::atomic<std::size_t>& peak_bytes() {
  static std::atomic<std::size_t> bytes{0};
  return bytes;
}

inline void record_allocation(std::size_t bytes) {
  const std::size_t now = current_bytes().fetch_add(bytes) + bytes;
  std::size_t peak = peak_bytes().load();
  while (now > peak && !peak_bytes().compare_exchange_weak(peak, now)) {
  }
}

inline void record_release(std::size_t bytes) { current_bytes().fetch_sub(bytes); }

}  // namespace detail

/// The device memory amq's buffers hold now, and their peak since reset_peak_memory().
inline MemoryStats memory_stats() {
  return {detail::current_bytes().load(), detail::peak_bytes().load()};
}

/// Starts a new peak measurement from the memory held now.
inline void reset_peak_memory() { detail::peak_bytes().store(detail::current_bytes().load()); }

/// An owned, uninitialised array of `size()` elements in device memory. Move-only; the memory
/// is freed when the buffer dies. Copies to and from the host have `_async` twins that take a
/// stream (the host memory must then stay alive until the stream reaches them).
template <class T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "device buffers hold trivially copyable types");

 public:
  /// An empty buffer; allocates nothing.
  DeviceBuffer() = default;

  /// Allocates `count` elements.
  explicit DeviceBuffer(std::size_t count) { allocate(count); }

  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  /// Takes the other buffer's memory; the other one becomes empty.
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

  /// Frees this buffer's memory and takes the other one's.
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }

  ~DeviceBuffer() { release(); }

  /// Device pointer to the first element (null when empty).
  T* data() noexcept { return data_; }
  /// Device pointer to the first element (null when empty).
  const T* data() const noexcept { return data_; }
  /// Number of elements.
  std::size_t size() const noexcept { return size_; }
  /// Number of bytes.
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }
  /// True when the buffer holds no element.
  bool empty() const noexcept { return size_ == 0; }

  /// Makes room for at least `count` elements; the old contents are lost when it grows.
  void reserve_discard(std::size_t count) {
    if (count > size_) {
      release();
      allocate(count);
    }
  }

  /// Copies `count` host elements into the start of the buffer and waits for the copy.
  void copy_from_host(const T* host, std::size_t count) {
    expect_fits(count);
    if (count > 0) {
      AMQ_CUDA_CHECK(cudaMemcpy(data_, host, count * sizeof(T), cudaMemcpyHostToDevice));
    }
  }

  /// Queues a copy of `count` host elements into the start of the buffer on `stream`.
  void copy_from_host_async(const T* host, std::size_t count, cudaStream_t stream) {
    expect_fits(count);
    if (count > 0) {
      AMQ_CUDA_CHECK(
          cudaMemcpyAsync(data_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
    }
  }

  /// Copies the first `count` elements to the host and waits for the copy.
  void copy_to_host(T* host, std::size_t count) const {
    expect_fits(count);
    if (count > 0) {
      AMQ_CUDA_CHECK(cudaMemcpy(host, data_, count * sizeof(T), cudaMemcpyDeviceToHost));
    }
  }

  /// Queues a copy of the first `count` elements to the host on `stream`.
  void copy_to_host_async(T* host, std::size_t count, cudaStream_t stream) const {
    expect_fits(count);
    if (count > 0) {
      AMQ_CUDA_CHECK(
          cudaMemcpyAsync(host, data_, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
    }
  }

  /// Sets every byte of the buffer to zero on `stream`.
  void zero_async(cudaStream_t stream) {
    if (size_ > 0) AMQ_CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes(), stream));
  }

 private:
  void allocate(std::size_t count) {
    if (count == 0) return;
    AMQ_EXPECTS(count <= static_cast<std::size_t>(-1) / sizeof(T),
                "device buffer of " << count << " elements overflows size_t");
    void* memory = nullptr;
    const cudaError_t status = cudaMalloc(&memory, count * sizeof(T));
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      AMQ_FAIL("cannot allocate " << count * sizeof(T)
                                  << " bytes of device memory: " << cudaGetErrorName(status) << " ("
                                  << cudaGetErrorString(status) << ')');
    }
    data_ = static_cast<T*>(memory);
    size_ = count;
    detail::record_allocation(bytes());
  }

  void release() noexcept {
    if (data_ != nullptr) {
      // A destructor cannot report a failure; cudaFree only fails when the context is gone.
      (void)cudaFree(data_);
      detail::record_release(bytes());
    }
    data_ = nullptr;
    size_ = 0;
  }

  void expect_fits(std::size_t count) const {
    AMQ_EXPECTS(count <= size_,
                "copy of " << count << " elements into a device buffer of " << size_);
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// An owned CUDA stream that does not synchronise with the legacy default stream.
class Stream {
 public:
  /// Creates the stream.
  Stream() { AMQ_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { (void)cudaStreamDestroy(stream_); }

  /// The raw handle, for `_async` calls.
  cudaStream_t get() const noexcept { return stream_; }
  /// Waits until everything queued on the stream has finished; throws on a device error.
  void synchronize() const { AMQ_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

/// An owned CUDA event, used to time work on a stream.
class Event {
 public:
  /// Creates the event.
  Event() { AMQ_CUDA_CHECK(cudaEventCreate(&event_)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { (void)cudaEventDestroy(event_); }

  /// Marks the current end of `stream`.
  void record(cudaStream_t stream) { AMQ_CUDA_CHECK(cudaEventRecord(event_, stream)); }
  /// Waits for the event.
  void synchronize() const { AMQ_CUDA_CHECK(cudaEventSynchronize(event_)); }
  /// Milliseconds from `start` to this event; both must have been reached.
  float ms_since(const Event& start) const {
    float ms = 0.0f;
    AMQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
    return ms;
  }

 private:
  cudaEvent_t event_ = nullptr;
};

/// An owned cuBLAS handle. Its math mode forbids reduced-precision (TF32) shortcuts so that
/// projections stay within single-precision rounding of the CPU's.
class CublasHandle {
 public:
  /// Creates the handle; throws amq::Error when cuBLAS cannot start (for example, no device).
  CublasHandle() {
    AMQ_CUBLAS_CHECK(cublasCreate(&handle_));
    const cublasStatus_t status = cublasSetMathMode(handle_, CUBLAS_PEDANTIC_MATH);
    if (status != CUBLAS_STATUS_SUCCESS) {
      (void)cublasDestroy(handle_);
      AMQ_CUBLAS_CHECK(status);
    }
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  /// Takes the other handle; the other one becomes empty.
  CublasHandle(CublasHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  /// Destroys this handle and takes the other one.
  CublasHandle& operator=(CublasHandle&& other) noexcept {
    if (this != &other) {
      if (handle_ != nullptr) (void)cublasDestroy(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~CublasHandle() {
    if (handle_ != nullptr) (void)cublasDestroy(handle_);
  }

  /// The raw handle.
  cublasHandle_t get() const noexcept { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace amq::cuda

namespace amq::cuda {

/// A word of error bits in device memory that kernels set with atomicOr instead of trapping;
/// the host reads it after the work and throws amq::Error for any bit set.
class DeviceStatus {
 public:
  /// Bit set when a code falls outside int32 (huge or non-finite projection).
  static constexpr unsigned kCodeOutOfRange = 1u;

  /// A cleared status word.
  DeviceStatus() : word_(1) { AMQ_CUDA_CHECK(cudaMemset(word_.data(), 0, sizeof(unsigned))); }

  /// The device word kernels set bits in.
  unsigned* get() noexcept { return word_.data(); }

  /// Waits for `stream`, then throws amq::Error naming `what` if a kernel set a bit since the
  /// last check. The word is cleared either way.
  void check(cudaStream_t stream, const char* what) {
    unsigned bits = 0;
    AMQ_CUDA_CHECK(
        cudaMemcpyAsync(&bits, word_.data(), sizeof bits, cudaMemcpyDeviceToHost, stream));
    AMQ_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (bits != 0) {
      AMQ_CUDA_CHECK(cudaMemsetAsync(word_.data(), 0, sizeof(unsigned), stream));
      AMQ_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    AMQ_EXPECTS((bits & kCodeOutOfRange) == 0,
                what << ": a code (w.x + b)/eps is outside int32 or not a number; the features "
                        "hold a non-finite value or are out of scale for the bucket width");
    AMQ_EXPECTS(bits == 0, what << ": the device reported error bits " << bits);
  }

 private:
  DeviceBuffer<unsigned> word_;
};

namespace detail {

/// Threads per block of the element-wise kernels.
inline constexpr unsigned kThreads = 256;

}  // namespace detail

/// Blocks for a grid-stride loop over `n` elements with `threads` per block: enough to fill
/// the device, never more than needed.
inline unsigned grid_size(std::size_t n, unsigned threads) {
  const std::size_t wanted = (n + threads - 1) / threads;
  return static_cast<unsigned>(wanted < 65536 ? (wanted == 0 ? 1 : wanted) : 65536);
}

}  // namespace amq::cuda
