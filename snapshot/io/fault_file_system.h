// A FileSystem for tests that wraps the real one and injects faults, in the spirit of LevelDB's
// FaultInjectionTestEnv: fail the n-th mutating operation (once, or from then on, like a dead disk), and simulate a
// power loss by throwing away everything that was not made durable.
//
// What counts as durable, as on a real file system:
//   - file bytes: only after a successful WritableFile::sync() of that file;
//   - create, rename, remove: only after a successful sync_dir() of the directory (or, for a rename across
//     directories, of both directories).
//
// Because a power loss has to be undoable, rename and remove keep the old file under a hidden name in the same
// directory (".fault-<n>-<name>") until sync_dir makes the operation durable. list_dir never shows those names.
// Only regular files are tracked: renaming onto an existing directory fails, and make_dir is not undone.
//
// Thread safety: the bookkeeping is guarded by a mutex, so files may be written on one thread while another thread
// renames, syncs directories or lists them. drop_unsynced_data() must run while nothing else uses the file system
// and after every WritableFile from it was closed or destroyed: it models the moment after a crash.
// Lifetime: the FaultFileSystem must outlive every WritableFile it created.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "snapshot/io/file_system.h"

namespace ckpt::snap {

class FaultFileSystem final : public FileSystem {
 public:
  // Takes ownership of `base`, which must operate on real paths (make_posix_file_system): undoing a power loss
  // truncates and links files with POSIX calls on the same paths.
  explicit FaultFileSystem(std::unique_ptr<FileSystem> base);
  ~FaultFileSystem() override;

  // --- fault control ---
  // Operations (WritableFile::write and sync; create, rename, remove, sync_dir) counted since construction. Each
  // one counts, failed or not. close, open, list_dir, lock and make_dir do not count.
  uint64_t operations() const;
  // Operation number `n` (0-based, see operations()) fails with Status::from_errno(err, "<op> <path> (injected)")
  // and does nothing. If `sticky`, every operation after it fails the same way. Replaces any earlier fault; a
  // typical call is fail_at(fs.operations() + k, ENOSPC, false).
  void fail_at(uint64_t n, int err, bool sticky);
  void clear_faults();
  // A slow disk, so that writes overlap what the caller does next: every create and WritableFile::sync sleeps
  // this long before it counts (and maybe fails).
  void set_delay(std::chrono::milliseconds delay);
  std::chrono::milliseconds delay() const;

  // --- power loss ---
  // Reverts every directory operation not made durable (newest first), then truncates each file written through
  // this FS to its length at its last sync (0 if never synced) and zero-fills unsynced writes below that length.
  // Afterwards everything on disk counts as durable. Returns the first failure but attempts every step.
  Status drop_unsynced_data();

  // --- FileSystem ---
  Result<std::unique_ptr<WritableFile>> create(const std::string& path) override;
  Result<std::unique_ptr<ReadableFile>> open(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status sync_dir(const std::string& dir) override;
  Status make_dir(const std::string& dir) override;
  Result<std::vector<std::string>> list_dir(const std::string& dir) override;
  Result<std::unique_ptr<FileLock>> lock(const std::string& path) override;
  WriteEngine write_engine() const override;

 private:
  friend class FaultWritableFile;

  // What a file has lost if the power goes now. Shared between the path map and the open WritableFile, so writes
  // through a file that was renamed while open are charged to the file under its new name.
  struct FileState {
    uint64_t written_end = 0;  // the file's length: the furthest byte any write reached since create
    uint64_t synced_size = 0;  // written_end at the last successful sync
    std::vector<std::pair<uint64_t, uint64_t>> unsynced;  // (offset, size) of writes since that sync
  };
  using FileStatePtr = std::shared_ptr<FileState>;

  // One directory operation that a power loss would revert, with what is needed to revert it.
  struct DirOp {
    enum class Kind { kCreate, kRename, kRemove } kind;
    std::string path;               // kCreate/kRemove: the file; kRename: the source
    std::string to;                 // kRename: the target
    std::string aside;              // kRename: the replaced target, kRemove: the removed file; "" if none
    FileStatePtr saved;             // the FileState that `aside` had under its old name
    std::vector<std::string> dirs;  // directories whose sync_dir is still needed to make the operation durable
  };

  struct Fault {
    uint64_t at;
    int err;
    bool sticky;
  };

  Status take_op(std::string_view op, const std::string& path);         // locks mutex_
  Status take_op_locked(std::string_view op, const std::string& path);  // counts and maybe fails
  void record_write(FileState& state, uint64_t offset, uint64_t size);
  void record_length(FileState& state, uint64_t end);
  void record_sync(FileState& state);
  std::string aside_name_locked(const std::string& path);
  void move_state_locked(const std::string& from, const std::string& to);
  Status undo_locked(const DirOp& op);
  Status make_durable_locked(const DirOp& op);

  std::unique_ptr<FileSystem> base_;
  mutable std::mutex mutex_;
  uint64_t operations_ = 0;
  std::optional<Fault> fault_;
  std::chrono::milliseconds delay_{0};
  uint64_t next_aside_ = 0;
  std::map<std::string, FileStatePtr> files_;  // by normalized path
  std::vector<DirOp> pending_;                 // not yet durable, oldest first
};

}  // namespace ckpt::snap
