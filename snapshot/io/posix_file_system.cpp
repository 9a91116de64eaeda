// The real file system: pread/pwrite files, io_uring writable files (uring_file.cpp), flock, directory fsync.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"
#include "common/unique_fd.h"
#include "snapshot/io/file_system.h"
#include "snapshot/io/posix_files.h"

namespace ckpt::snap {
namespace {

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(UniqueFd fd, std::string path, uint64_t size)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size) {}

  Status read(uint64_t offset, size_t length, void* out) const override {
    auto* dst = static_cast<uint8_t*>(out);
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pread(fd_.get(), dst + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::from_errno(errno, "pread " + path_ + " offset " + std::to_string(offset + done));
      }
      if (n == 0) {
        return corruption("short read of " + path_ + " at offset " + std::to_string(offset + done) + ": wanted " +
                          std::to_string(length) + " bytes from offset " + std::to_string(offset) + ", file ends at " +
                          std::to_string(offset + done));
      }
      done += static_cast<size_t>(n);
    }
    return Status::ok();
  }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  UniqueFd fd_;
  std::string path_;
  uint64_t size_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;  // flock is released when the descriptor closes
};

class PosixFileSystem final : public FileSystem {
 public:
  PosixFileSystem(WriteEngine engine, unsigned queue_depth)
      : engine_(engine), rings_(engine == WriteEngine::kIoUring ? make_uring_pool(queue_depth) : nullptr) {}

  Result<std::unique_ptr<WritableFile>> create(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return Status::from_errno(errno, "create " + path);
    if (engine_ == WriteEngine::kIoUring) return make_uring_file(std::move(fd), path, rings_);
    return make_pwrite_file(std::move(fd), path);
  }

  Result<std::unique_ptr<ReadableFile>> open(const std::string& path) override {
    // A store holds only regular files the writer made. O_NOFOLLOW keeps a planted symlink from pointing a reader
    // outside the store; O_NONBLOCK keeps a planted FIFO from blocking the open forever.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) {
      if (errno == ELOOP) return Status(StatusCode::kCorruption, path + " is a symbolic link, not a store file");
      return Status::from_errno(errno, "open " + path);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Status::from_errno(errno, "fstat " + path);
    if (!S_ISREG(st.st_mode)) return Status(StatusCode::kCorruption, path + " is not a regular file");
    return std::unique_ptr<ReadableFile>(
        new PosixReadableFile(std::move(fd), path, static_cast<uint64_t>(st.st_size)));
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Status::from_errno(errno, "rename " + from + " -> " + to);
    return Status::ok();
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Status::from_errno(errno, "unlink " + path);
    return Status::ok();
  }

  Status sync_dir(const std::string& dir) override {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return Status::from_errno(errno, "open directory " + dir);
    if (::fsync(fd.get()) != 0) return Status::from_errno(errno, "fsync directory " + dir);
    return Status::ok();
  }

  Status make_dir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) return Status::from_errno(errno, "mkdir " + dir);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return Status::from_errno(errno, "stat " + dir);
    if (!S_ISDIR(st.st_mode)) return invalid_argument(dir + " exists and is not a directory");
    return Status::ok();
  }

  Result<std::vector<std::string>> list_dir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::from_errno(errno, "opendir " + dir);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (name != "." && name != "..") names.emplace_back(name);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return Status::from_errno(err, "readdir " + dir);
    return names;
  }

  Result<std::unique_ptr<FileLock>> lock(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
    if (!fd.valid()) return Status::from_errno(errno, "open lock file " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Status(StatusCode::kBusy, "another process holds the store's writer lock " + path, EWOULDBLOCK);
      }
      return Status::from_errno(errno, "flock " + path);
    }
    // Record the holder for operators; the lock itself is the flock, not the contents.
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) == 0) (void)!::pwrite(fd.get(), pid.data(), pid.size(), 0);
    return std::unique_ptr<FileLock>(new PosixFileLock(std::move(fd)));
  }

  WriteEngine write_engine() const override { return engine_; }

 private:
  WriteEngine engine_;
  std::shared_ptr<UringPool> rings_;  // io_uring only
};

}  // namespace

std::string_view write_engine_name(WriteEngine engine) {
  switch (engine) {
    case WriteEngine::kAuto: return "auto";
    case WriteEngine::kIoUring: return "io_uring";
    case WriteEngine::kPwrite: return "pwrite";
  }
  return "unknown";
}

std::unique_ptr<FileSystem> make_posix_file_system(WriteEngine engine, unsigned queue_depth) {
  if (queue_depth == 0) queue_depth = 1;
  if (engine == WriteEngine::kAuto) {
    std::string why;
    if (io_uring_available(&why)) {
      engine = WriteEngine::kIoUring;
    } else {
      CKPT_LOG(kWarn) << "io_uring unavailable (" << why << "); writing with pwrite";
      engine = WriteEngine::kPwrite;
    }
  }
  return std::make_unique<PosixFileSystem>(engine, queue_depth);
}

}  // namespace ckpt::snap
