#include "resources.hpp"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "amq/error.hpp"

namespace amq::cli {

namespace {

/// A "Vm...:" field of /proc/self/status in bytes, or 0 when it is not there.
std::size_t status_bytes(const char* field) {
  std::ifstream status("/proc/self/status");
  const std::string prefix = std::string(field) + ":";
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(prefix, 0) == 0) {
      std::istringstream fields(line.substr(prefix.size()));
      std::size_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

}  // namespace

double CpuStopwatch::now_ms() {
  timespec time{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time);
  return static_cast<double>(time.tv_sec) * 1e3 + static_cast<double>(time.tv_nsec) * 1e-6;
}

std::size_t peak_resident_bytes() {
  const std::size_t peak = status_bytes("VmHWM");
  if (peak > 0) return peak;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

std::size_t resident_bytes() { return status_bytes("VmRSS"); }

bool reset_peak_resident_bytes() {
  malloc_trim(0);
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write) {
  // The temporary file lies beside the target so that the rename stays on one file system,
  // which is what makes it atomic; the process id keeps two writers apart.
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  try {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    AMQ_EXPECTS(out.is_open(), "cannot create " << temporary << " to write " << path);
    write(out);
    out.flush();
    AMQ_EXPECTS(out.good(), "writing " << path << " failed (disk full or no permission?)");
    out.close();
    AMQ_EXPECTS(!out.fail(), "closing " << temporary << " failed");
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    AMQ_EXPECTS(!error, "cannot rename " << temporary << " to " << path << ": "
                                         << error.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
}

void write_file_atomically(const std::filesystem::path& path, const std::string& bytes) {
  write_file_atomically(path, [&bytes](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

std::string format_bytes(std::size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

}  // namespace amq::cli
