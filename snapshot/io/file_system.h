// The seam between the store and the operating system. Everything the store does to files goes through a
// FileSystem, so tests can swap in a fault-injecting one and the writer can choose io_uring or plain pwrite.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_buffer.h"
#include "common/status.h"

namespace ckpt::snap {

// A file being written at explicit offsets. write() may return before the bytes reach the kernel; sync() waits for
// every queued write and then makes the data durable. Not thread-safe: one writer thread owns it.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Queues `buffer` (its size() bytes) for writing at `offset`; the file owns the buffer until the write completes.
  // An error from an earlier queued write may surface here or at sync().
  virtual Status write(uint64_t offset, ByteBuffer buffer) = 0;
  // Waits for every queued write, then fdatasync.
  virtual Status sync() = 0;
  // Waits for every queued write and closes. Does not sync.
  virtual Status close() = 0;
  virtual const std::string& path() const = 0;
};

// A file read at explicit offsets. Thread-safe (pread).
// Independent of the FileSystem that opened it: it stays readable after that is gone (a lazy restore holds its
// chain's files for as long as the guest needs them).
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads exactly `length` bytes or fails naming the file, the offset and the cause (short read = corruption).
  virtual Status read(uint64_t offset, size_t length, void* out) const = 0;
  virtual uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
};

// Held while a process is the store's only writer; released on destruction.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class WriteEngine : uint8_t {
  kAuto,     // io_uring when the kernel offers it, else pwrite (with a log line saying why)
  kIoUring,  // io_uring only; fail if unavailable
  kPwrite,   // plain pwrite(2)
};

std::string_view write_engine_name(WriteEngine engine);

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates (or truncates) a file for writing.
  virtual Result<std::unique_ptr<WritableFile>> create(const std::string& path) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> open(const std::string& path) = 0;
  // Atomically replaces `to` with `from`.
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status remove(const std::string& path) = 0;
  // Makes creations, renames and removals in `dir` durable.
  virtual Status sync_dir(const std::string& dir) = 0;
  // Creates `dir` if it does not exist.
  virtual Status make_dir(const std::string& dir) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Result<std::vector<std::string>> list_dir(const std::string& dir) = 0;
  // Takes an exclusive, non-blocking lock on `path` (created if missing); kBusy if another process holds it.
  virtual Result<std::unique_ptr<FileLock>> lock(const std::string& path) = 0;
  // The engine create() uses, after kAuto was resolved.
  virtual WriteEngine write_engine() const = 0;
};

// The real file system. With kAuto, probes io_uring once and falls back to pwrite, logging the reason.
// `queue_depth` bounds the io_uring writes in flight per file.
std::unique_ptr<FileSystem> make_posix_file_system(WriteEngine engine = WriteEngine::kAuto, unsigned queue_depth = 16);

// Whether io_uring can be set up here; `why` receives the reason when it cannot.
bool io_uring_available(std::string* why);

}  // namespace ckpt::snap
