#include "daemon/disk_images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "snapshot/restore.h"

namespace ckpt::daemon {
namespace {

std::string temp_path_of(const std::string& final_path) { return final_path + ".tmp"; }

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open directory " + dir);
  if (::fsync(fd.get()) != 0) return Status::from_errno(errno, "fsync directory " + dir);
  return Status::ok();
}

// Copies [offset, offset + length) of `in` to the same place in `out`: copy_file_range first (the file system may
// share or copy extents without the data passing through here), read/write where it cannot.
Status copy_range(int in, int out, uint64_t offset, uint64_t length, const std::string& source,
                  const std::string& dest) {
  uint64_t end = offset + length;
  bool plain = false;
  std::vector<uint8_t> buffer;
  while (offset < end) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(end - offset, 1u << 30));
    ssize_t n;
    if (!plain) {
      loff_t in_off = static_cast<loff_t>(offset), out_off = static_cast<loff_t>(offset);
      n = ::copy_file_range(in, &in_off, out, &out_off, chunk, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        plain = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::from_errno(errno, "copy " + source + " to " + dest + " at offset " + std::to_string(offset));
    } else {
      buffer.resize(std::min<size_t>(chunk, 1u << 20));
      n = ::pread(in, buffer.data(), std::min(chunk, buffer.size()), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::from_errno(errno, "read " + source + " at offset " + std::to_string(offset));
      for (ssize_t done = 0; done < n;) {
        ssize_t w = ::pwrite(out, buffer.data() + done, static_cast<size_t>(n - done), static_cast<off_t>(offset) + done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return Status::from_errno(w < 0 ? errno : EIO, "write " + dest + " at offset " + std::to_string(offset + done));
        done += w;
      }
    }
    if (n == 0) {
      return Status(StatusCode::kIoError, source + " shrank while being copied: it ends before offset " + std::to_string(offset));
    }
    offset += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

}  // namespace

std::string working_image_path(const std::string& store_dir, size_t index) {
  return store_dir + "/disk" + std::to_string(index) + ".img";
}

Result<uint64_t> create_working_image(const std::string& source, const std::string& store_dir, size_t index) {
  CKPT_ASSIGN_OR_RETURN(uint64_t size, check_disk_source(source));
  const std::string final_path = working_image_path(store_dir, index), temp = temp_path_of(final_path);
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return Status::from_errno(errno, "open disk image " + source);
  UniqueFd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return Status::from_errno(errno, "create working image " + temp);
  struct Remove {
    std::string path;
    bool keep = false;
    ~Remove() {
      if (!keep) ::unlink(path.c_str());
    }
  } guard{temp};
  if (::ftruncate(out.get(), static_cast<off_t>(size)) != 0) return Status::from_errno(errno, "ftruncate " + temp);
  // Data segments only: a sparse image stays sparse (its holes read as zero in the copy too).
  for (uint64_t offset = 0; offset < size;) {
    off_t data = ::lseek(in.get(), static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) {  // no SEEK_DATA here: copy everything
      CKPT_RETURN_IF_ERROR(copy_range(in.get(), out.get(), offset, size - offset, source, temp));
      break;
    }
    off_t hole = ::lseek(in.get(), data, SEEK_HOLE);
    uint64_t end = hole < 0 ? size : std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    if (static_cast<uint64_t>(data) >= end) break;
    CKPT_RETURN_IF_ERROR(copy_range(in.get(), out.get(), static_cast<uint64_t>(data), end - static_cast<uint64_t>(data), source, temp));
    offset = end;
  }
  if (::fsync(out.get()) != 0) return Status::from_errno(errno, "fsync " + temp);
  if (::rename(temp.c_str(), final_path.c_str()) != 0) return Status::from_errno(errno, "rename " + temp + " to " + final_path);
  guard.keep = true;
  CKPT_RETURN_IF_ERROR(fsync_dir(store_dir));
  return size;
}

Result<OpenDisk> open_disk(std::string name, std::string path, bool read_only) {
  OpenDisk disk;
  disk.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!disk.fd.valid()) return Status::from_errno(errno, "open working image " + path);
  struct stat st {};
  if (::fstat(disk.fd.get(), &st) != 0) return Status::from_errno(errno, "stat working image " + path);
  disk.blocks = static_cast<uint64_t>(st.st_size) / kDiskBlockBytes;
  disk.name = std::move(name);
  disk.path = std::move(path);
  disk.read_only = read_only;
  return disk;
}

Status read_disk_blocks(const OpenDisk& disk, uint64_t first, uint64_t count, uint8_t* out) {
  uint64_t offset = first * kDiskBlockBytes, length = count * kDiskBlockBytes;
  for (uint64_t done = 0; done < length;) {
    ssize_t n = ::pread(disk.fd.get(), out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Status::from_errno(n < 0 ? errno : EIO, "read working image " + disk.path + " at offset " +
                                                         std::to_string(offset + done));
    }
    done += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

std::vector<std::pair<uint64_t, uint64_t>> disk_data_ranges(const OpenDisk& disk) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  const uint64_t size = disk.blocks * kDiskBlockBytes;
  for (uint64_t offset = 0; offset < size;) {
    off_t data = ::lseek(disk.fd.get(), static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;
    if (data < 0) return {{0, disk.blocks}};
    off_t hole = ::lseek(disk.fd.get(), data, SEEK_HOLE);
    uint64_t end = hole < 0 ? size : std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    uint64_t first = static_cast<uint64_t>(data) / kDiskBlockBytes;
    uint64_t last = (end + kDiskBlockBytes - 1) / kDiskBlockBytes;  // a partly filled block holds data
    if (!ranges.empty() && ranges.back().first + ranges.back().second >= first) {
      ranges.back().second = std::max(ranges.back().second, last - ranges.back().first);
    } else if (last > first) {
      ranges.emplace_back(first, last - first);
    }
    offset = std::max(end, offset + 1);
  }
  return ranges;
}

PendingImage::PendingImage(PendingImage&& other) noexcept
    : temp_path_(std::exchange(other.temp_path_, {})), final_path_(std::exchange(other.final_path_, {})) {}

PendingImage& PendingImage::operator=(PendingImage&& other) noexcept {
  if (this != &other) {
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_ = std::exchange(other.temp_path_, {});
    final_path_ = std::exchange(other.final_path_, {});
  }
  return *this;
}

PendingImage::~PendingImage() {
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

Status PendingImage::publish() {
  if (temp_path_.empty()) return invalid_argument("working image " + final_path_ + " was published already");
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    return Status::from_errno(errno, "rename " + temp_path_ + " to " + final_path_);
  }
  temp_path_.clear();
  size_t slash = final_path_.find_last_of('/');
  return fsync_dir(slash == std::string::npos ? "." : final_path_.substr(0, slash == 0 ? 1 : slash));
}

Result<PendingImage> rebuild_working_image(snap::FileSystem& fs, const snap::Catalog& catalog, uint64_t epoch,
                                           uint32_t disk_id, const std::string& store_dir, size_t index) {
  PendingImage image;
  image.final_path_ = working_image_path(store_dir, index);
  const std::string temp = temp_path_of(image.final_path_);
  UniqueFd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::from_errno(errno, "create working image " + temp);
  image.temp_path_ = temp;  // from here on, removed unless published
  auto restored = snap::restore_disk_to_fd(fs, catalog, epoch, disk_id, fd.get(), temp, snap::RestoreOptions{});
  if (!restored.is_ok()) return restored.status().with_context("rebuild working image " + image.final_path_);
  if (::fsync(fd.get()) != 0) return Status::from_errno(errno, "fsync " + temp);
  return image;
}

}  // namespace ckpt::daemon
