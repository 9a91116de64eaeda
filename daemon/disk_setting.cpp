#include "daemon/disk_setting.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace ckpt::daemon {

Result<DiskSetting> parse_disk_setting(const std::string& text) {
  DiskSetting disk;
  disk.path = text;
  if (text.ends_with(",ro") || text.ends_with(",rw")) {
    disk.path = text.substr(0, text.size() - 3);
    disk.read_only = text.ends_with(",ro");
  }
  if (disk.path.empty()) return invalid_argument("'" + text + "' names no image file (PATH, PATH,ro or PATH,rw)");
  return disk;
}

Result<uint64_t> check_disk_source(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open disk image " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno(errno, "stat disk image " + path);
  if (!S_ISREG(st.st_mode)) return invalid_argument("disk image " + path + " is not a regular file (a raw image file)");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0 || size % kDiskBlockBytes != 0) {
    return invalid_argument("disk image " + path + " is " + std::to_string(size) +
                            " bytes: a disk must be a positive multiple of 4096 bytes (truncate -s to round it up)");
  }
  return size;
}

}  // namespace ckpt::daemon
