/// @file config.hpp
/// @brief Version and portability macros shared by every amq header.
#pragma once

#define AMQ_VERSION_MAJOR 0
#define AMQ_VERSION_MINOR 1
#define AMQ_VERSION_PATCH 0

/// Marks per-element functions that the CPU and CUDA backends share, so that CI tests the
/// device logic on the host.
#if defined(__CUDACC__)
#define AMQ_HOST_DEVICE __host__ __device__
#else
#define AMQ_HOST_DEVICE
#endif

/// Compiles a function for AVX2 + FMA without requiring -mavx2 for the whole program; callers
/// choose it at run time with amq::detail::has_avx2().
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__CUDACC__)
#define AMQ_HAVE_AVX2_PATH 1
#define AMQ_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define AMQ_HAVE_AVX2_PATH 0
#define AMQ_TARGET_AVX2
#endif

namespace amq::detail {

/// True when the processor running the program can execute the AVX2 + FMA paths.
inline bool has_avx2() noexcept {
#if AMQ_HAVE_AVX2_PATH
  static const bool available = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return available;
#else
  return false;
#endif
}

}  // namespace amq::detail
