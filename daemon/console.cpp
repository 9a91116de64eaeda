#include "daemon/console.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "common/log.h"
#include "common/thread_name.h"

namespace ckpt::daemon {

namespace {
std::string join(const std::string& dir, const char* name) { return dir.empty() ? "" : dir + "/" + name; }
}  // namespace

Console::Console(ConsoleOptions options)
    : options_(std::move(options)),
      path_(join(options_.log_dir, kLogName)),
      old_path_(join(options_.log_dir, kOldLogName)),
      ring_(std::max<size_t>(options_.ring_bytes, 1)) {
  file_status_.path = path_;
  flush_thread_ = std::thread([this] { flush_loop(); });
}

Console::~Console() {
  {
    std::lock_guard lock(mu_);
    stop_flush_ = true;
    stopping_ = true;
  }
  flush_cv_.notify_all();
  readers_cv_.notify_all();
  flush_thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

void Console::console_output(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  bool wake_flusher = false;
  {
    std::lock_guard lock(mu_);
    // Only the last ring_.size() bytes can survive; earlier ones of a huge write are just counted.
    std::span<const uint8_t> kept = bytes.last(std::min(bytes.size(), ring_.size()));
    uint64_t pos = (end_ + bytes.size() - kept.size()) % ring_.size();
    size_t first = std::min(kept.size(), ring_.size() - static_cast<size_t>(pos));
    std::copy_n(kept.begin(), first, ring_.begin() + static_cast<std::ptrdiff_t>(pos));
    std::copy(kept.begin() + static_cast<std::ptrdiff_t>(first), kept.end(), ring_.begin());
    end_ += bytes.size();
    if (!path_.empty()) {
      size_t room = options_.pending_max_bytes - std::min(options_.pending_max_bytes, pending_.size());
      size_t taken = std::min(room, bytes.size());
      pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(taken));
      pending_dropped_ += bytes.size() - taken;
      // Half full: write now rather than at the next tick, so a burst is not dropped for want of a tick.
      wake_flusher = pending_.size() >= options_.pending_max_bytes / 2;
    }
  }
  readers_cv_.notify_all();
  if (wake_flusher) flush_cv_.notify_one();
}

uint64_t Console::end_offset() const {
  std::lock_guard lock(mu_);
  return end_;
}

Result<ConsoleRead> Console::read(std::optional<uint64_t> from, size_t max_bytes, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  if (from && *from > end_) {
    return invalid_argument("console offset " + std::to_string(*from) + " is past the end of the output (" +
                            std::to_string(end_) + "); offsets count from this daemon's start");
  }
  if (from && *from == end_ && wait.count() > 0 && !stopping_) {
    uint64_t want = *from;
    readers_cv_.wait_for(lock, wait, [&] { return end_ > want || stopping_; });
  }
  uint64_t oldest = end_ - std::min<uint64_t>(end_, ring_.size());
  ConsoleRead r;
  r.stopping = stopping_;
  if (from) {
    r.start = std::max(*from, oldest);
    r.lost = r.start - *from;
  } else {
    r.start = end_ - std::min<uint64_t>(end_ - oldest, max_bytes);
  }
  size_t n = static_cast<size_t>(std::min<uint64_t>(end_ - r.start, max_bytes));
  r.data.resize(n);
  size_t pos = static_cast<size_t>(r.start % ring_.size());
  size_t first = std::min(n, ring_.size() - pos);
  std::copy_n(ring_.begin() + static_cast<std::ptrdiff_t>(pos), first, r.data.begin());
  std::copy_n(ring_.begin(), n - first, r.data.begin() + static_cast<std::ptrdiff_t>(first));
  r.next = r.start + n;
  return r;
}

void Console::set_input_target(std::function<size_t(std::span<const uint8_t>)> target) {
  std::lock_guard lock(input_mu_);  // waits out a write_input calling the old target
  input_target_ = std::move(target);
}

Result<size_t> Console::write_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(input_mu_);
  if (!input_target_) return not_found("this guest has no console");
  return input_target_(bytes);
}

void Console::stop_waiting() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  readers_cv_.notify_all();
}

void Console::flush() {
  std::unique_lock lock(mu_);
  uint64_t target = passes_started_ + 1;  // the next pass to start takes everything buffered now
  flush_requested_ = true;
  flush_cv_.notify_one();
  flushed_cv_.wait(lock, [&] { return passes_done_ >= target; });
}

ConsoleFileStatus Console::file_status() const {
  std::lock_guard lock(mu_);
  return file_status_;
}

void Console::flush_loop() {
  name_this_thread("ckpt-console");
  std::unique_lock lock(mu_);
  for (;;) {
    flush_cv_.wait_for(lock, options_.flush_interval, [&] {
      return stop_flush_ || flush_requested_ || pending_.size() >= options_.pending_max_bytes / 2;
    });
    flush_requested_ = false;
    bool last = stop_flush_;
    std::vector<uint8_t> bytes;
    bytes.swap(pending_);
    uint64_t dropped = std::exchange(pending_dropped_, 0);
    ++passes_started_;
    lock.unlock();
    if (!bytes.empty() || dropped > 0) write_to_file(std::move(bytes), dropped);
    lock.lock();
    ++passes_done_;
    flushed_cv_.notify_all();
    if (last) return;
  }
}

// Writes one pass's bytes. A failure is logged once per episode (the first failure after the file worked), the
// bytes it could not write are counted as missing, and the file is reopened at the next pass; once it works again,
// a marker line says how much is missing at that point of the file.
void Console::write_to_file(std::vector<uint8_t> bytes, uint64_t dropped) {
  missing_in_episode_ += dropped;
  size_t written = 0;
  Status s = fd_ >= 0 ? Status::ok() : open_log();
  if (s.is_ok() && missing_in_episode_ > 0) {
    std::string marker = "\n[ckptd: " + std::to_string(missing_in_episode_) +
                         " bytes of console output are missing here; the ring and 'ckpt console' had them]\n";
    size_t marker_written = 0;
    s = append({reinterpret_cast<const uint8_t*>(marker.data()), marker.size()}, &marker_written);
    if (s.is_ok()) missing_in_episode_ = 0;
  }
  if (s.is_ok()) s = append(bytes, &written);
  uint64_t unwritten = bytes.size() - written;
  if (!s.is_ok()) {
    missing_in_episode_ += unwritten;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::lock_guard lock(mu_);
  file_status_.bytes_written += written;
  file_status_.bytes_missing += unwritten + dropped;
  if (!s.is_ok()) {
    if (!file_status_.failing) {
      CKPT_LOG(kWarn) << "console: " << s.to_string()
                      << "; the console's output stays readable with 'ckpt console', the file misses it until "
                         "writes work again (retried every flush)";
    }
    file_status_.failing = true;
    file_status_.last_error = s;
  } else if (file_status_.failing) {
    CKPT_LOG(kInfo) << "console: " << path_ << " is written again";
    file_status_.failing = false;
  }
}

Status Console::open_log() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) return Status::from_errno(errno, "open " + path_);
  struct stat st{};
  if (::fstat(fd_, &st) != 0) return Status::from_errno(errno, "stat " + path_);
  file_bytes_ = static_cast<uint64_t>(st.st_size);
  return Status::ok();
}

// console.log becomes console.log.1 (the older one goes), and a new console.log starts.
Status Console::rotate() {
  ::close(fd_);
  fd_ = -1;
  if (::rename(path_.c_str(), old_path_.c_str()) != 0) {
    return Status::from_errno(errno, "rotate " + path_ + " to " + old_path_);
  }
  return open_log();
}

// Appends to console.log, rotating rather than letting it grow past log_max_bytes (a write is split there).
Status Console::append(std::span<const uint8_t> bytes, size_t* written) {
  uint64_t max = std::max<uint64_t>(options_.log_max_bytes, 1);
  *written = 0;
  while (*written < bytes.size()) {
    if (file_bytes_ >= max) CKPT_RETURN_IF_ERROR(rotate());
    size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size() - *written, max - file_bytes_));
    ssize_t w = ::write(fd_, bytes.data() + *written, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "write " + path_);
    }
    *written += static_cast<size_t>(w);
    file_bytes_ += static_cast<uint64_t>(w);
  }
  return Status::ok();
}

}  // namespace ckpt::daemon
