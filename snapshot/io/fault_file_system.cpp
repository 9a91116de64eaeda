// Fault injection and power-loss simulation over a real FileSystem. See fault_file_system.h for the model.
#include "snapshot/io/fault_file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <thread>

#include "common/unique_fd.h"

namespace ckpt::snap {
namespace {

constexpr std::string_view kAsidePrefix = ".fault-";

// The bookkeeping is keyed by path, so "d/f", "d//f" and "./d/f" must be one key.
std::string normalize(const std::string& path) {
  std::string s = std::filesystem::path(path).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s.empty() ? "." : s;
}

// The directory whose sync_dir makes an entry for `path` durable. `path` is normalized.
std::string dir_of(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Status zero_fill(int fd, const std::string& path, uint64_t offset, uint64_t size) {
  static const std::array<uint8_t, 64 * 1024> zeros{};
  while (size > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, zeros.size()));
    ssize_t n = ::pwrite(fd, zeros.data(), chunk, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Status::from_errno(n < 0 ? errno : EIO,
                                "drop unsynced data: zero-fill " + path + " offset " + std::to_string(offset));
    }
    offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
  return Status::ok();
}

// Cuts `path` back to `synced_size` and zeroes the parts of it that were overwritten since that sync.
Status drop_file_data(const std::string& path, uint64_t synced_size,
                      const std::vector<std::pair<uint64_t, uint64_t>>& unsynced) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::ok();  // deleted behind this FS's back: nothing left to lose
    return Status::from_errno(errno, "drop unsynced data: open " + path);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(synced_size)) != 0) {
    return Status::from_errno(errno, "drop unsynced data: truncate " + path + " to " + std::to_string(synced_size));
  }
  for (const auto& [offset, size] : unsynced) {
    if (offset >= synced_size) continue;
    CKPT_RETURN_IF_ERROR(zero_fill(fd.get(), path, offset, std::min(size, synced_size - offset)));
  }
  return Status::ok();
}

void keep_first_error(Status& first, Status s) {
  if (first.is_ok() && !s.is_ok()) first = std::move(s);
}

}  // namespace

// Counts and fails write/sync like the FS operations, and reports what was written to the FS's bookkeeping.
// Owned by one writer thread (like every WritableFile); the shared FileState is only touched under the FS mutex.
class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultFileSystem* fs, std::unique_ptr<WritableFile> base,
                    std::shared_ptr<FaultFileSystem::FileState> state)
      : fs_(fs), base_(std::move(base)), state_(std::move(state)) {}

  Status write(uint64_t offset, ByteBuffer buffer) override {
    CKPT_RETURN_IF_ERROR(fs_->take_op("write", path()));
    const uint64_t size = buffer.size();
    if (size == 0) return base_->write(offset, std::move(buffer));
    // Recorded before forwarding: a write that fails after partly reaching the file is still unsynced data.
    fs_->record_write(*state_, offset, size);
    CKPT_RETURN_IF_ERROR(base_->write(offset, std::move(buffer)));
    fs_->record_length(*state_, offset + size);
    return Status::ok();
  }

  Status sync() override {
    std::this_thread::sleep_for(fs_->delay());
    CKPT_RETURN_IF_ERROR(fs_->take_op("sync", path()));
    CKPT_RETURN_IF_ERROR(base_->sync());
    fs_->record_sync(*state_);
    return Status::ok();
  }

  Status close() override { return base_->close(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultFileSystem* fs_;
  std::unique_ptr<WritableFile> base_;
  std::shared_ptr<FaultFileSystem::FileState> state_;
};

FaultFileSystem::FaultFileSystem(std::unique_ptr<FileSystem> base) : base_(std::move(base)) {}
FaultFileSystem::~FaultFileSystem() = default;

// --- fault control ---

uint64_t FaultFileSystem::operations() const {
  std::lock_guard lock(mutex_);
  return operations_;
}

void FaultFileSystem::fail_at(uint64_t n, int err, bool sticky) {
  std::lock_guard lock(mutex_);
  fault_ = Fault{n, err, sticky};
}

void FaultFileSystem::clear_faults() {
  std::lock_guard lock(mutex_);
  fault_.reset();
}

void FaultFileSystem::set_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  delay_ = delay;
}

std::chrono::milliseconds FaultFileSystem::delay() const {
  std::lock_guard lock(mutex_);
  return delay_;
}

Status FaultFileSystem::take_op(std::string_view op, const std::string& path) {
  std::lock_guard lock(mutex_);
  return take_op_locked(op, path);
}

Status FaultFileSystem::take_op_locked(std::string_view op, const std::string& path) {
  const uint64_t n = operations_++;
  if (!fault_ || !(n == fault_->at || (fault_->sticky && n > fault_->at))) return Status::ok();
  return Status::from_errno(fault_->err, std::string(op) + " " + path + " (injected)");
}

// --- file data bookkeeping ---

void FaultFileSystem::record_write(FileState& state, uint64_t offset, uint64_t size) {
  std::lock_guard lock(mutex_);
  state.unsynced.emplace_back(offset, size);
}

void FaultFileSystem::record_length(FileState& state, uint64_t end) {
  std::lock_guard lock(mutex_);
  state.written_end = std::max(state.written_end, end);
}

void FaultFileSystem::record_sync(FileState& state) {
  std::lock_guard lock(mutex_);
  state.synced_size = state.written_end;
  state.unsynced.clear();
}

// --- directory operations ---

Result<std::unique_ptr<WritableFile>> FaultFileSystem::create(const std::string& path) {
  std::this_thread::sleep_for(delay());
  std::lock_guard lock(mutex_);
  CKPT_RETURN_IF_ERROR(take_op_locked("create", path));
  const std::string key = normalize(path);
  // Re-creating an existing file changes its data, not the directory, so only a new name is a directory op.
  const bool existed = exists(key);
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, base_->create(path));
  auto state = std::make_shared<FileState>();
  files_[key] = state;
  if (!existed) pending_.push_back(DirOp{DirOp::Kind::kCreate, key, "", "", nullptr, {dir_of(key)}});
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, std::move(file), std::move(state)));
}

Status FaultFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mutex_);
  CKPT_RETURN_IF_ERROR(take_op_locked("rename", from + " -> " + to));
  const std::string src = normalize(from);
  const std::string dst = normalize(to);
  if (src == dst) return base_->rename(from, to);  // a no-op for the OS; nothing to undo
  // The replaced file stays reachable under a hidden hard link so a power loss can bring it back. A link rather
  // than a second rename keeps the replacement of `to` atomic for anyone reading it concurrently.
  std::string aside;
  if (exists(dst)) {
    aside = aside_name_locked(dst);
    if (::link(dst.c_str(), aside.c_str()) != 0) {
      return Status::from_errno(errno, "rename " + from + " -> " + to + ": keep replaced file as " + aside);
    }
  }
  if (Status s = base_->rename(from, to); !s.is_ok()) {
    if (!aside.empty()) (void)::unlink(aside.c_str());
    return s;
  }
  DirOp op{DirOp::Kind::kRename, src, dst, aside, nullptr, {dir_of(src)}};
  if (dir_of(dst) != dir_of(src)) op.dirs.push_back(dir_of(dst));
  if (auto it = files_.find(dst); it != files_.end()) {
    op.saved = std::move(it->second);
    files_.erase(it);
  }
  move_state_locked(src, dst);
  pending_.push_back(std::move(op));
  return Status::ok();
}

Status FaultFileSystem::remove(const std::string& path) {
  std::lock_guard lock(mutex_);
  CKPT_RETURN_IF_ERROR(take_op_locked("remove", path));
  const std::string key = normalize(path);
  // Fail as unlink(2) would: a hidden rename would happily "remove" a directory or report a different error.
  struct stat st {};
  if (::lstat(key.c_str(), &st) != 0) return Status::from_errno(errno, "unlink " + path);
  if (S_ISDIR(st.st_mode)) return Status::from_errno(EISDIR, "unlink " + path);
  // Removed files are kept under a hidden name until sync_dir makes the removal durable.
  const std::string aside = aside_name_locked(key);
  CKPT_RETURN_IF_ERROR(base_->rename(key, aside).with_context("unlink " + path));
  DirOp op{DirOp::Kind::kRemove, key, "", aside, nullptr, {dir_of(key)}};
  if (auto it = files_.find(key); it != files_.end()) {
    op.saved = std::move(it->second);
    files_.erase(it);
  }
  pending_.push_back(std::move(op));
  return Status::ok();
}

Status FaultFileSystem::sync_dir(const std::string& dir) {
  std::lock_guard lock(mutex_);
  CKPT_RETURN_IF_ERROR(take_op_locked("sync_dir", dir));
  CKPT_RETURN_IF_ERROR(base_->sync_dir(dir));
  const std::string key = normalize(dir);
  Status first;
  for (auto it = pending_.begin(); it != pending_.end();) {
    std::erase(it->dirs, key);
    if (!it->dirs.empty()) {
      ++it;
      continue;
    }
    keep_first_error(first, make_durable_locked(*it));
    it = pending_.erase(it);
  }
  return first;
}

Status FaultFileSystem::make_durable_locked(const DirOp& op) {
  if (op.aside.empty()) return Status::ok();
  return base_->remove(op.aside).with_context("sync_dir: delete the file a durable rename/remove replaced");
}

// --- power loss ---

Status FaultFileSystem::drop_unsynced_data() {
  std::lock_guard lock(mutex_);
  Status first;
  // Newest first, so each undo finds the names as its operation left them.
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) keep_first_error(first, undo_locked(*it));
  // After the undo every FileState sits under the name its file has again.
  for (const auto& [path, state] : files_) {
    keep_first_error(first, drop_file_data(path, state->synced_size, state->unsynced));
  }
  pending_.clear();
  files_.clear();
  return first;
}

Status FaultFileSystem::undo_locked(const DirOp& op) {
  switch (op.kind) {
    case DirOp::Kind::kCreate:
      files_.erase(op.path);
      return base_->remove(op.path).with_context("drop unsynced data: undo create");
    case DirOp::Kind::kRename:
      CKPT_RETURN_IF_ERROR(base_->rename(op.to, op.path).with_context("drop unsynced data: undo rename"));
      move_state_locked(op.to, op.path);
      if (op.aside.empty()) return Status::ok();
      if (op.saved) files_[op.to] = op.saved;
      return base_->rename(op.aside, op.to).with_context("drop unsynced data: undo rename");
    case DirOp::Kind::kRemove:
      if (op.saved) files_[op.path] = op.saved;
      return base_->rename(op.aside, op.path).with_context("drop unsynced data: undo remove");
  }
  return Status::ok();
}

// --- helpers ---

std::string FaultFileSystem::aside_name_locked(const std::string& path) {
  const std::string prefix = dir_of(path) + "/" + std::string(kAsidePrefix);
  std::string aside;
  do {
    aside = prefix + std::to_string(next_aside_++) + "-" + base_name(path);
  } while (exists(aside));  // left over by an earlier FaultFileSystem on the same directory
  return aside;
}

void FaultFileSystem::move_state_locked(const std::string& from, const std::string& to) {
  auto it = files_.find(from);
  if (it == files_.end()) return;  // a file not written through this FS: its data is all durable
  files_[to] = std::move(it->second);
  files_.erase(from);
}

// --- forwarded, not counted ---

Result<std::unique_ptr<ReadableFile>> FaultFileSystem::open(const std::string& path) { return base_->open(path); }

Status FaultFileSystem::make_dir(const std::string& dir) { return base_->make_dir(dir); }

Result<std::vector<std::string>> FaultFileSystem::list_dir(const std::string& dir) {
  CKPT_ASSIGN_OR_RETURN(std::vector<std::string> names, base_->list_dir(dir));
  std::erase_if(names, [](const std::string& name) { return name.starts_with(kAsidePrefix); });
  return names;
}

Result<std::unique_ptr<FileLock>> FaultFileSystem::lock(const std::string& path) { return base_->lock(path); }

WriteEngine FaultFileSystem::write_engine() const { return base_->write_engine(); }

}  // namespace ckpt::snap
