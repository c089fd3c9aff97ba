/// @file detail/aligned_allocator.hpp
/// @brief An allocator that aligns storage to a cache line, so a split-block Bloom filter's
/// 32-byte blocks never straddle two lines and AVX2 loads of a block are aligned. Large
/// allocations are aligned to 2 MiB and, on Linux, advised as transparent huge pages: a
/// memory-resident filter is probed at random addresses, and with 4 KiB pages nearly every
/// probe would also miss the TLB.
#pragma once

#include <cstddef>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace amq::detail {

/// std::allocator with `Alignment`-byte aligned storage (C++17 aligned operator new).
template <class T, std::size_t Alignment = 64>
struct AlignedAllocator {
  static_assert(Alignment >= alignof(T) && (Alignment & (Alignment - 1)) == 0,
                "alignment must be a power of two no smaller than the type's own");
  using value_type = T;

  /// Allocations from this size on are aligned to, and advised as, huge pages.
  static constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

  /// Rebinding, as std::allocator_traits expects.
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Alignment>;
  };

  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) noexcept {}  // NOLINT: implicit

  /// Storage for `n` objects, aligned to `Alignment` bytes (to 2 MiB when large).
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    void* p = ::operator new (bytes, std::align_val_t{alignment_for(bytes)});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Advice only: where huge pages are unavailable the memory stays in small pages.
    if (bytes >= huge_page_bytes) {
      madvise(p, bytes / huge_page_bytes * huge_page_bytes, MADV_HUGEPAGE);
    }
#endif
    return static_cast<T*>(p);
  }

  /// Releases storage from allocate().
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete (p, std::align_val_t{alignment_for(n * sizeof(T))});
  }

  template <class U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const AlignedAllocator<U, Alignment>&) const noexcept {
    return false;
  }

 private:
  static constexpr std::size_t alignment_for(std::size_t bytes) {
    return bytes >= huge_page_bytes ? huge_page_bytes : Alignment;
  }
};

}  // namespace amq::detail
