/// @file cuda_error.cuh
/// @brief Checks every CUDA runtime and cuBLAS call; a failure becomes amq::Error on the host.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "amq/error.hpp"

namespace amq::cuda {
namespace detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  std::ostringstream text;
  text << "CUDA call `" << call << "` failed: " << cudaGetErrorName(status) << " ("
       << cudaGetErrorString(status) << ')';
  ::amq::detail::throw_error(file, line, text.str());
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  std::ostringstream text;
  text << "cuBLAS call `" << call << "` failed: " << cublasGetStatusName(status) << " ("
       << cublasGetStatusString(status) << ')';
  ::amq::detail::throw_error(file, line, text.str());
}

}  // namespace detail

/// True when the CUDA runtime sees at least one usable device. Never throws: a machine without
/// a driver or a GPU simply has none. Clears the runtime's sticky "last error" it leaves.
inline bool device_available() noexcept {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

/// Throws amq::Error unless a CUDA device can be used; `what` names the caller.
inline void expect_device(const char* what) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    const bool no_driver = status == cudaErrorInsufficientDriver || status == cudaErrorNoDevice;
    AMQ_FAIL(what << " needs a CUDA device, but the runtime reports " << cudaGetErrorName(status)
                  << " (" << cudaGetErrorString(status) << ')'
                  << (no_driver ? ": no usable NVIDIA GPU and driver on this machine, or a "
                                  "driver older than this program's CUDA runtime"
                                : ""));
  }
  AMQ_EXPECTS(count > 0, what << " needs a CUDA device, but none is present");
}

}  // namespace amq::cuda

/// Throws amq::Error naming the call, the CUDA error and the source location unless the
/// runtime call returns cudaSuccess.
#define AMQ_CUDA_CHECK(call)                                                         \
  do {                                                                               \
    const cudaError_t amq_status_ = (call);                                          \
    if (amq_status_ != cudaSuccess) {                                                \
      (void)cudaGetLastError();                                                      \
      ::amq::cuda::detail::throw_cuda_error(amq_status_, #call, __FILE__, __LINE__); \
    }                                                                                \
  } while (false)

/// Checks that the kernel launched just before it was accepted (bad configuration, no device).
#define AMQ_CUDA_CHECK_LAUNCH() AMQ_CUDA_CHECK(cudaGetLastError())

/// Throws amq::Error unless the cuBLAS call returns CUBLAS_STATUS_SUCCESS.
#define AMQ_CUBLAS_CHECK(call)                                                         \
  do {                                                                                 \
    const cublasStatus_t amq_status_ = (call);                                         \
    if (amq_status_ != CUBLAS_STATUS_SUCCESS) {                                        \
      ::amq::cuda::detail::throw_cublas_error(amq_status_, #call, __FILE__, __LINE__); \
    }                                                                                  \
  } while (false)
