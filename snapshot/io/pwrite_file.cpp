// Writable file on plain pwrite(2): every write completes before write() returns.
#include <unistd.h>

#include <cerrno>

#include "snapshot/io/early_writeback.h"
#include "snapshot/io/posix_files.h"

namespace ckpt::snap {
namespace {

class PwriteFile final : public WritableFile {
 public:
  PwriteFile(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

  Status write(uint64_t offset, ByteBuffer buffer) override {
    const uint8_t* src = buffer.data();
    size_t done = 0;
    while (done < buffer.size()) {
      ssize_t n = ::pwrite(fd_.get(), src + done, buffer.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::from_errno(errno, "pwrite " + path_ + " offset " + std::to_string(offset + done));
      }
      if (n == 0) return Status::from_errno(EIO, "pwrite " + path_ + " offset " + std::to_string(offset + done) +
                                                     " wrote 0 bytes");
      done += static_cast<size_t>(n);  // a short write continues where it stopped
    }
    writeback_.wrote(fd_.get(), buffer.size());
    return Status::ok();
  }

  Status sync() override {
    if (::fdatasync(fd_.get()) != 0) return Status::from_errno(errno, "fdatasync " + path_);
    return Status::ok();
  }

  Status close() override {
    if (fd_.valid() && ::close(fd_.release()) != 0) return Status::from_errno(errno, "close " + path_);
    return Status::ok();
  }

  const std::string& path() const override { return path_; }

 private:
  UniqueFd fd_;
  std::string path_;
  EarlyWriteback writeback_;
};

}  // namespace

std::unique_ptr<WritableFile> make_pwrite_file(UniqueFd fd, std::string path) {
  return std::make_unique<PwriteFile>(std::move(fd), std::move(path));
}

}  // namespace ckpt::snap
