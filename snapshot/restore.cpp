#include "snapshot/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "common/thread_pool.h"
#include "common/unique_fd.h"
#include "snapshot/block_codec.h"
#include "snapshot/epoch_file.h"
#include "snapshot/epoch_file_cache.h"
#include "snapshot/restore_plan.h"
#include "snapshot/restore_space.h"

namespace ckpt::snap {
namespace f = format;

namespace {

class MemorySink final : public PageSink {
 public:
  explicit MemorySink(std::span<uint8_t> memory) : memory_(memory) {}
  Status put(uint64_t gfn, uint32_t count, const uint8_t* data) override {
    std::memcpy(memory_.data() + gfn * f::kPageSize, data, size_t{count} * f::kPageSize);
    return Status::ok();
  }
  Status zero(uint64_t gfn, uint64_t count) override {
    std::memset(memory_.data() + gfn * f::kPageSize, 0, count * f::kPageSize);
    return Status::ok();
  }

 private:
  std::span<uint8_t> memory_;
};

}  // namespace

Status FdSink::write_all(const uint8_t* data, size_t length, uint64_t offset) {
  for (size_t done = 0; done < length;) {
    ssize_t n = ::pwrite(fd_, data + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Status::from_errno(n < 0 ? errno : EIO, "pwrite " + path_ + " offset " + std::to_string(offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Status FdSink::put(uint64_t first, uint32_t count, const uint8_t* data) {
  return write_all(data, size_t{count} * f::kPageSize, first * f::kPageSize);
}

// A store whose epochs differ in size cannot make a restore write past the destination: the sizes are compared
// here, and plan_restore checks every link against the newest.
Result<RestoreStats> restore_space(FileSystem& fs, const Catalog& catalog, uint64_t epoch, uint32_t space,
                                   PageSink& sink, uint64_t sink_pages, const RestoreOptions& options) {
  CKPT_ASSIGN_OR_RETURN(auto chain, catalog.chain(epoch));
  uint64_t space_pages = chain.front()->space_size(space);  // 0 for a disk the epoch lacks: plan_restore says so
  if (space_pages != 0 && space_pages != sink_pages) {
    return invalid_argument(space == f::kMemorySpace
                                ? "epoch " + std::to_string(epoch) + " holds a guest of " +
                                      std::to_string(space_pages) + " pages; the restore destination holds " +
                                      std::to_string(sink_pages)
                                : "disk " + std::to_string(space) + " of epoch " + std::to_string(epoch) + " has " +
                                      std::to_string(space_pages) + " blocks; the restore destination holds " +
                                      std::to_string(sink_pages));
  }
  CKPT_ASSIGN_OR_RETURN(RestorePlan plan, plan_restore(chain, space));
  const uint64_t total = plan.pages;
  CKPT_RETURN_IF_ERROR(sink.prepare(total));

  // Opened on demand, a few at a time: a chain may be far longer than the process may hold files open.
  std::vector<std::string> paths;
  for (const auto& link : chain) paths.push_back(catalog.path_of(link->header.epoch));
  EpochFileCache files(fs);
  for (const auto& [first, count] : plan.zero_runs) CKPT_RETURN_IF_ERROR(sink.zero(first, count));

  ThreadPool pool(options.threads, "ckpt-restore");
  struct WorkerState {
    BlockDecompressor decompressor;
    ByteBuffer scratch{max_stored_block_size()};
    ByteBuffer raw{size_t{f::kMaxDataPagesPerBlock} * f::kPageSize};
  };
  std::vector<std::unique_ptr<WorkerState>> workers;
  for (unsigned i = 0; i < pool.size(); ++i) workers.push_back(std::make_unique<WorkerState>());

  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards `error`, `stats` updates and progress calls
  Status error;
  RestoreStats stats{chain.size(), plan.data_pages, plan.zero_pages, 0, 0};
  uint64_t pages_done = plan.zero_pages;
  pool.parallel_for(plan.tasks.size(), [&](size_t index, unsigned worker) {
    if (failed.load(std::memory_order_relaxed)) return;
    const BlockTask& task = plan.tasks[index];
    const EpochMeta& meta = *chain[task.link];
    const BlockRef& block = meta.blocks[task.block];
    WorkerState& w = *workers[worker];
    Result<std::shared_ptr<const ReadableFile>> file = files.get(paths[task.link], meta);
    Status s = file.status();
    if (s.is_ok()) s = read_block(**file, meta, task.block, w.decompressor, w.scratch, w.raw.data());
    if (s.is_ok()) {
      s = for_each_wanted_run(block, task.wanted, w.raw.data(), [&](uint64_t gfn, uint32_t count, const uint8_t* pages) {
        return sink.put(gfn, count, pages);
      });
    }
    std::lock_guard lock(mutex);
    if (!s.is_ok()) {
      if (error.is_ok()) error = s;
      failed = true;
      return;
    }
    ++stats.blocks_read;
    stats.bytes_read += block.stored_len;
    pages_done += static_cast<uint64_t>(__builtin_popcountll(task.wanted));
    if (options.progress && (stats.blocks_read % 64 == 0 || pages_done == total)) options.progress(pages_done, total);
  });
  if (!error.is_ok()) {
    std::string what = space == f::kMemorySpace ? "" : " disk " + std::to_string(space);
    return error.with_context("restore epoch " + std::to_string(epoch) + what);
  }
  if (options.progress) options.progress(total, total);
  return stats;
}

Result<RestoreStats> restore_to_memory(FileSystem& fs, const Catalog& catalog, uint64_t epoch,
                                       std::span<uint8_t> memory, const RestoreOptions& options) {
  if (memory.size() % f::kPageSize != 0) {
    return invalid_argument("restore buffer of " + std::to_string(memory.size()) + " bytes is not whole pages");
  }
  MemorySink sink(memory);
  return restore_space(fs, catalog, epoch, f::kMemorySpace, sink, memory.size() / f::kPageSize, options);
}

Result<RestoreStats> restore_to_zeroed_fd(FileSystem& fs, const Catalog& catalog, uint64_t epoch, int fd,
                                         uint64_t bytes, const std::string& name, const RestoreOptions& options) {
  if (bytes % f::kPageSize != 0) {
    return invalid_argument("restore destination of " + std::to_string(bytes) + " bytes is not whole pages");
  }
  FdSink sink(fd, name);
  return restore_space(fs, catalog, epoch, f::kMemorySpace, sink, bytes / f::kPageSize, options);
}

Result<uint64_t> guest_pages_of(const Catalog& catalog, uint64_t epoch) {
  CKPT_ASSIGN_OR_RETURN(auto chain, catalog.chain(epoch));
  return chain.front()->header.guest_pages;
}

namespace {

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The image goes beside the target, never into a store: an image written over an epoch file (or anywhere in the
// store's directory tree) could destroy the very chain being restored, and a stray file in a store is at best junk
// (named like an epoch, it stops that store's resume). Directories are compared by device and inode, so another path
// to the store (a symlink, a bind mount) is caught; any other store is known by its LOCK file beside epoch files.

// Whether `dir` is a ckptd store: its LOCK file and an epoch file, or (a store with no epoch yet) the LOCK file when
// the image would be named like an epoch file. Other programs name their lock files LOCK too.
bool is_a_store(const std::string& dir, bool image_named_like_an_epoch) {
  struct stat st{};
  std::string prefix = dir == "/" ? "" : dir;
  if (::lstat((prefix + "/" + std::string(f::kLockName)).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (image_named_like_an_epoch) return true;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool epochs = false;
  uint64_t epoch = 0;
  while (dirent* e = ::readdir(d)) {
    if (parse_epoch_file_name(e->d_name, &epoch)) {
      epochs = true;
      break;
    }
  }
  ::closedir(d);
  return epochs;
}

Status check_restore_target(const std::string& store_dir, const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return invalid_argument(path + " exists and is not a regular file; restore writes a raw image file");
  }
  struct stat store{};
  if (::stat(store_dir.c_str(), &store) != 0) return Status::from_errno(errno, "stat " + store_dir);
  char resolved[PATH_MAX];
  std::string dir = parent_dir(path);
  uint64_t epoch = 0;
  bool named_like_an_epoch = parse_epoch_file_name(path.substr(path.find_last_of('/') + 1), &epoch);
  if (!::realpath(dir.c_str(), resolved)) return Status::from_errno(errno, "resolve the directory of " + path);
  for (std::string up = resolved;; up = parent_dir(up)) {
    struct stat here{};
    if (::stat(up.c_str(), &here) == 0 && here.st_dev == store.st_dev && here.st_ino == store.st_ino) {
      return invalid_argument(path + " is inside the store " + store_dir +
                              "; write the image somewhere else (restore never writes into a store)");
    }
    if (is_a_store(up, false)) {
      return invalid_argument(path + " is inside " + up + ", another ckptd store (it holds ckptd's " +
                              std::string(f::kLockName) + " file and epoch files); write the image somewhere else");
    }
    if (named_like_an_epoch && up == resolved && is_a_store(up, true)) {
      return invalid_argument(path + " is named like an epoch file, in " + up + ", another ckptd store (it holds "
                              "ckptd's " + std::string(f::kLockName) + " file); write the image somewhere else");
    }
    if (up == "/") return Status::ok();
  }
}

}  // namespace

Result<RestoreStats> write_image_file(const std::string& store_dir, const std::string& path, uint64_t bytes,
                                      const std::function<Result<RestoreStats>(int fd, const std::string& temp)>& fill) {
  CKPT_RETURN_IF_ERROR(check_restore_target(store_dir, path));
  // Written under a temporary name beside the target and renamed over it only once every block passed its
  // checksums and the data is durable: a restore that fails half way leaves an existing file as it was.
  std::string temp = path + ".ckpt-restore-XXXXXX";
  UniqueFd fd(::mkstemp(temp.data()));
  if (!fd.valid()) return Status::from_errno(errno, "create a temporary file beside " + path);
  struct TempFile {
    std::string path;
    bool keep = false;
    ~TempFile() {
      if (!keep) ::unlink(path.c_str());
    }
  } guard{temp};
  // A replaced image keeps its mode (and, where allowed, its owner); a new one is 0640.
  struct stat existing{};
  bool replaces = ::stat(path.c_str(), &existing) == 0;
  if (::fchmod(fd.get(), replaces ? existing.st_mode & 07777 : 0640) != 0) {
    return Status::from_errno(errno, "chmod " + temp);
  }
  if (replaces) (void)::fchown(fd.get(), existing.st_uid, existing.st_gid);
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return Status::from_errno(errno, "ftruncate " + temp);
  CKPT_ASSIGN_OR_RETURN(RestoreStats stats, fill(fd.get(), temp));
  const auto sync_start = std::chrono::steady_clock::now();
  if (::fsync(fd.get()) != 0) return Status::from_errno(errno, "fsync " + temp);
  stats.sync_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sync_start).count();
  if (::rename(temp.c_str(), path.c_str()) != 0) return Status::from_errno(errno, "rename " + temp + " to " + path);
  guard.keep = true;
  UniqueFd dir(::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());  // the rename's durability; the image itself is already on disk
  return stats;
}

Result<RestoreStats> restore_to_file(FileSystem& fs, const Catalog& catalog, uint64_t epoch, const std::string& path,
                                     const RestoreOptions& options) {
  CKPT_ASSIGN_OR_RETURN(uint64_t guest_pages, guest_pages_of(catalog, epoch));
  // A fresh, sized file reads as zero: zero pages are left to the file system's zero fill.
  return write_image_file(catalog.dir(), path, guest_pages * f::kPageSize, [&](int fd, const std::string& temp) {
    FdSink sink(fd, temp);
    return restore_space(fs, catalog, epoch, f::kMemorySpace, sink, guest_pages, options);
  });
}

}  // namespace ckpt::snap
