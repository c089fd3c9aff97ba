/// @file resources.hpp
/// @brief What the command line measures and how it writes files: a stopwatch, the process's
/// resident memory, and atomic file writes (a temporary file renamed into place).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>

namespace amq::cli {

/// A wall-clock stopwatch that reads in milliseconds.
class Stopwatch {
 public:
  /// Starts the stopwatch.
  Stopwatch() : start_(Clock::now()) {}
  /// Milliseconds since construction or the last restart().
  double elapsed_ms() const {
    return std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  }
  /// Milliseconds since construction or the last restart(), then starts again.
  double lap_ms() {
    const double ms = elapsed_ms();
    start_ = Clock::now();
    return ms;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

/// A stopwatch of the CPU time of the whole process (all threads), in milliseconds: on a
/// machine shared with other jobs it measures the work done, not the waiting for a core.
class CpuStopwatch {
 public:
  /// Starts the stopwatch.
  CpuStopwatch() : start_(now_ms()) {}
  /// CPU milliseconds since construction or the last lap, then starts again.
  double lap_ms() {
    const double now = now_ms();
    const double ms = now - start_;
    start_ = now;
    return ms;
  }
  /// CPU milliseconds of the process so far (CLOCK_PROCESS_CPUTIME_ID).
  static double now_ms();

 private:
  double start_;
};

/// The largest resident set size this process has had so far, in bytes (VmHWM of
/// /proc/self/status, or getrusage's ru_maxrss where /proc is missing).
std::size_t peak_resident_bytes();

/// The resident set size of this process now, in bytes (VmRSS of /proc/self/status; 0 where
/// /proc is missing).
std::size_t resident_bytes();

/// Starts a new peak for peak_resident_bytes() at the current resident size (Linux 4.0 and
/// later: writes 5 to /proc/self/clear_refs), after handing freed heap memory back to the
/// system (glibc's malloc_trim), so that memory freed by earlier work neither counts in the new
/// baseline nor hides later allocations. Returns false where the peak cannot be reset.
bool reset_peak_resident_bytes();

/// Writes a file so that readers see either the old file or the complete new one: `write`
/// fills a temporary file in the same folder, which is flushed, closed and renamed over `path`.
/// If `write` throws or the stream fails, the temporary file is removed and amq::Error names
/// `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

/// Writes `bytes` to `path` atomically; see the callback overload.
void write_file_atomically(const std::filesystem::path& path, const std::string& bytes);

/// A byte count as text with a binary unit ("12.3 MiB").
std::string format_bytes(std::size_t bytes);

}  // namespace amq::cli
