// Disk restores (restore.h, "guest disks"): the restore engine of restore_space.h over one disk's address space,
// into a file the caller holds open (the daemon's working image) or into a new image file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "snapshot/restore.h"
#include "snapshot/restore_space.h"

namespace ckpt::snap {
namespace f = format;

namespace {

// Into a file that may hold anything: sized first, and zero blocks made to read as zero rather than assumed to.
class OverwriteSink final : public FdSink {
 public:
  using FdSink::FdSink;

  Status prepare(uint64_t pages) override {
    struct stat st{};
    if (::fstat(fd(), &st) != 0) return Status::from_errno(errno, "fstat " + path());
    if (!S_ISREG(st.st_mode)) return invalid_argument(path() + " is not a regular file; a disk restores into one");
    if (::ftruncate(fd(), static_cast<off_t>(pages * f::kPageSize)) != 0) {
      return Status::from_errno(errno, "ftruncate " + path());
    }
    return Status::ok();
  }

  // A hole reads as zero and frees the space; a file system without hole punching (EOPNOTSUPP, or EINVAL from
  // some) gets zeros written instead, and is not asked again.
  Status zero(uint64_t first, uint64_t count) override {
    uint64_t offset = first * f::kPageSize, length = count * f::kPageSize;
    if (punch_) {
      if (::fallocate(fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                      static_cast<off_t>(length)) == 0) {
        return Status::ok();
      }
      if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
        return Status::from_errno(errno, "punch a hole into " + path() + " at offset " + std::to_string(offset));
      }
      punch_ = false;
    }
    static const std::vector<uint8_t> zeros(size_t{f::kMaxDataPagesPerBlock} * f::kPageSize, 0);
    for (uint64_t done = 0; done < length;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), length - done));
      CKPT_RETURN_IF_ERROR(write_all(zeros.data(), n, offset + done));
      done += n;
    }
    return Status::ok();
  }

 private:
  bool punch_ = true;  // zero() runs on the calling thread only
};

Result<DiskSpace> find_disk(const Catalog& catalog, uint64_t epoch, uint32_t disk) {
  CKPT_ASSIGN_OR_RETURN(std::vector<DiskSpace> disks, disks_of(catalog, epoch));
  if (disk == 0 || disk > disks.size()) {
    return not_found("epoch " + std::to_string(epoch) + " of store " + catalog.dir() + " has no disk " +
                     std::to_string(disk) + " (it has " + std::to_string(disks.size()) + " disks)");
  }
  return disks[disk - 1];
}

}  // namespace

Result<std::vector<DiskSpace>> disks_of(const Catalog& catalog, uint64_t epoch) {
  CKPT_ASSIGN_OR_RETURN(auto chain, catalog.chain(epoch));  // checks that every link has these disks
  return chain.front()->disks;
}

Result<RestoreStats> restore_disk_to_fd(FileSystem& fs, const Catalog& catalog, uint64_t epoch, uint32_t disk, int fd,
                                        const std::string& path_for_errors, const RestoreOptions& options) {
  CKPT_ASSIGN_OR_RETURN(DiskSpace d, find_disk(catalog, epoch, disk));
  OverwriteSink sink(fd, path_for_errors);
  return restore_space(fs, catalog, epoch, disk, sink, d.blocks, options);
}

Result<RestoreStats> restore_disk_to_file(FileSystem& fs, const Catalog& catalog, uint64_t epoch, uint32_t disk,
                                          const std::string& path, const RestoreOptions& options) {
  CKPT_ASSIGN_OR_RETURN(DiskSpace d, find_disk(catalog, epoch, disk));
  // A fresh, sized file reads as zero: zero blocks are left to the file system's zero fill.
  return write_image_file(catalog.dir(), path, d.blocks * f::kPageSize, [&](int fd, const std::string& temp) {
    FdSink sink(fd, temp);
    return restore_space(fs, catalog, epoch, disk, sink, d.blocks, options);
  });
}

}  // namespace ckpt::snap
