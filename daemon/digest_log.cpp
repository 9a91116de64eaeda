#include "daemon/digest_log.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>

namespace ckpt::daemon {

Result<DigestLog> DigestLog::open(const std::string& path) {
  DigestLog log;
  if (path.empty()) return log;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "open digest log " + path);
  log.fd_.reset(fd);
  log.path_ = path;
  return log;
}

uint64_t DigestLog::digest(std::span<const uint8_t> memory) { return XXH3_64bits(memory.data(), memory.size()); }

Status DigestLog::record(std::string_view event, uint64_t epoch, uint64_t digest) {
  if (!enabled()) return Status::ok();
  char line[96];
  int n = std::snprintf(line, sizeof line, "%.*s %llu %016llx\n", static_cast<int>(event.size()), event.data(),
                        static_cast<unsigned long long>(epoch), static_cast<unsigned long long>(digest));
  // O_APPEND and one write per line: a reader never sees half a line from a live daemon.
  if (::write(fd_.get(), line, static_cast<size_t>(n)) != n) return Status::from_errno(errno, "write " + path_);
  return Status::ok();
}

}  // namespace ckpt::daemon
