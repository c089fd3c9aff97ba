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

/// The largest resident set size this process has had so far, in bytes (VmHWM of
/// /proc/self/status, or getrusage's ru_maxrss where /proc is missing).
std::size_t peak_resident_bytes();

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
