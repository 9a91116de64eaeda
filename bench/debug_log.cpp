#include "bench/debug_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "common/log.h"

namespace ckpt::bench {

Result<std::unique_ptr<StderrToFile>> StderrToFile::start(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "create " + path);
  std::fflush(stderr);
  int saved = ::dup(2);
  if (saved < 0 || ::dup2(fd, 2) < 0) {
    int err = errno;
    ::close(fd);
    if (saved >= 0) ::close(saved);
    return Status::from_errno(err, "redirect stderr to " + path);
  }
  ::close(fd);
  int old = static_cast<int>(log_level());
  set_log_level(LogLevel::kDebug);
  return std::unique_ptr<StderrToFile>(new StderrToFile(saved, old));
}

void StderrToFile::stop() {
  if (saved_fd_ < 0) return;
  set_log_level(static_cast<LogLevel>(old_level_));
  std::fflush(stderr);
  ::dup2(saved_fd_, 2);
  ::close(saved_fd_);
  saved_fd_ = -1;
}

StderrToFile::~StderrToFile() { stop(); }

uint64_t file_position(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

DebugLaps parse_debug_laps(const std::string& path, uint64_t begin, uint64_t end) {
  DebugLaps laps;
  std::ifstream in(path);
  in.seekg(static_cast<std::streamoff>(begin));
  if (begin > 0) in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');  // begin may fall inside a line
  std::string line;
  while (static_cast<uint64_t>(in.tellg()) < end && std::getline(in, line)) {
    // "N pages, M disk blocks, pause ...": the disk block count (issue 15) sits between the pages and the laps.
    if (size_t at = line.find("epoch capture: "); at != std::string::npos) {
      CaptureLap c;
      unsigned long long pages = 0;
      size_t laps_at = line.find("pause ", at);
      if (std::sscanf(line.c_str() + at, "epoch capture: %llu pages", &pages) == 1 && laps_at != std::string::npos &&
          std::sscanf(line.c_str() + laps_at, "pause %lf, harvest %lf, copy %lf, rearm %lf, state %lf, resume %lf ms",
                      &c.pause, &c.harvest, &c.copy, &c.rearm, &c.state, &c.resume) == 6) {
        c.pages = pages;
        laps.captures.push_back(c);
      }
    } else if (size_t at2 = line.find("epoch write: "); at2 != std::string::npos) {
      WriteLap w;
      unsigned long long pages = 0;
      size_t ms_at = line.find(" in ", at2);
      if (std::sscanf(line.c_str() + at2, "epoch write: %llu pages", &pages) == 1 && ms_at != std::string::npos &&
          std::sscanf(line.c_str() + ms_at, " in %lf ms", &w.ms) == 1) {
        w.pages = pages;
        laps.writes.push_back(w);
      }
    }
  }
  return laps;
}

}  // namespace ckpt::bench
