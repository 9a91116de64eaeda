// The guest's serial console as the daemon keeps it: what the guest wrote, in an in-memory ring that clients read
// (the `console` command, `ckpt console`) and in console.log in the store directory; and the way back, bytes typed
// at the console forwarded to the current machine. Owned by the Session and outliving any one Machine: a live
// restore swaps the machine, and the console log continues across it.
//
// Offsets: every byte the guest wrote has an absolute offset, counting from 0 at the daemon's start. A resumed
// (restarted) daemon starts again at 0; its console.log is appended to.
//
// Threads: console_output() runs on vCPU threads and never waits on disk (nor on readers): it copies into the ring
// and into a bounded buffer that a thread of the Console's own writes to console.log at least every
// flush_interval. read() may long-poll on control-socket threads. write_input() calls the input target under a
// mutex of its own, never under the output lock: the target (the UART) may be emitting output at that moment.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "vmm/machine.h"

namespace ckpt::daemon {

struct ConsoleOptions {
  // console.log (and console.log.1) are written here; empty: no file, the ring only.
  std::string log_dir;
  size_t ring_bytes = 256 * 1024;
  // console.log is renamed to console.log.1 (replacing the older one) rather than grow past this: the two files
  // take at most twice this on disk.
  uint64_t log_max_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds flush_interval{200};
  // Output waiting for the file, at most. A guest that writes faster than the disk takes it loses bytes from the
  // file (never from the ring); the file then says how many are missing.
  size_t pending_max_bytes = 1024 * 1024;
};

// One read: the bytes at [start, next), and how many bytes between the requested offset and `start` the ring no
// longer holds.
struct ConsoleRead {
  uint64_t start = 0;
  std::vector<uint8_t> data;
  uint64_t next = 0;
  uint64_t lost = 0;
  bool stopping = false;  // stop_waiting() was called: the daemon is stopping, reads no longer wait
};

// console.log's health, for status.
struct ConsoleFileStatus {
  std::string path;          // empty: no file
  uint64_t bytes_written = 0;
  uint64_t bytes_missing = 0;  // output the file does not have (write failures, a full buffer)
  bool failing = false;      // the last write failed
  Status last_error;         // the newest failure, kept after the file works again
};

class Console final : public vmm::ConsoleSink {
 public:
  static constexpr const char* kLogName = "console.log";
  static constexpr const char* kOldLogName = "console.log.1";

  // Starts the flush thread. The file is opened at the first flush; failing to open it is a write failure like
  // any other (logged, reported by file_status(), retried at every flush), not a reason to refuse a console.
  explicit Console(ConsoleOptions options);
  ~Console() override;  // writes what is left, then joins the flush thread
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // vmm::ConsoleSink: any thread, several at once.
  void console_output(std::span<const uint8_t> bytes) override;

  // Up to `max_bytes` of output. With `from`: the bytes at offsets from `*from` on (the `next` of the previous
  // read); if the ring no longer holds `*from`, it starts at the oldest byte it holds and counts the gap as lost;
  // if nothing is there yet, it waits up to `wait` for output (or stop_waiting()). Without `from`: the newest
  // `max_bytes` the ring holds, at once. A `from` past the end is kInvalidArgument (offsets of an earlier daemon).
  Result<ConsoleRead> read(std::optional<uint64_t> from, size_t max_bytes, std::chrono::milliseconds wait);
  uint64_t end_offset() const;  // the offset the next byte will get

  // Where write_input sends bytes: the current machine's console_input, set by the Session whenever it adopts a
  // machine. Empty: the guest has no console. Once this returns, the previous target is not being called and will
  // not be called again, so its machine may be destroyed.
  void set_input_target(std::function<size_t(std::span<const uint8_t>)> target);
  // Returns how many bytes the guest's input queue accepted (the rest should be offered again later); kNotFound
  // "this guest has no console" without a target.
  Result<size_t> write_input(std::span<const uint8_t> bytes);

  // The daemon is stopping: wakes every waiting reader, and later reads return at once (with stopping set).
  // Output is still kept and written.
  void stop_waiting();

  // Waits until everything output before the call has been written to the file (or failed). Tests use it; the
  // daemon relies on the flush thread's interval.
  void flush();
  ConsoleFileStatus file_status() const;

 private:
  void flush_loop();
  void write_to_file(std::vector<uint8_t> bytes, uint64_t dropped);  // flush thread only
  Status append(std::span<const uint8_t> bytes, size_t* written);     // flush thread only
  Status open_log();                                                  // flush thread only
  Status rotate();                                                    // flush thread only

  const ConsoleOptions options_;
  const std::string path_, old_path_;  // empty without a log_dir

  mutable std::mutex mu_;
  std::condition_variable readers_cv_;  // new output, or stop_waiting()
  std::vector<uint8_t> ring_;
  uint64_t end_ = 0;
  bool stopping_ = false;
  // For the flush thread, under mu_.
  std::condition_variable flush_cv_;   // wakes the flush thread early (a full buffer, flush(), shutdown)
  std::condition_variable flushed_cv_;  // a pass ended
  std::vector<uint8_t> pending_;
  uint64_t pending_dropped_ = 0;
  bool flush_requested_ = false;
  bool stop_flush_ = false;
  uint64_t passes_started_ = 0, passes_done_ = 0;
  ConsoleFileStatus file_status_;

  // The file; the flush thread alone touches these.
  int fd_ = -1;
  uint64_t file_bytes_ = 0;
  uint64_t missing_in_episode_ = 0;  // bytes the file lacks since it last worked

  std::mutex input_mu_;
  std::function<size_t(std::span<const uint8_t>)> input_target_;  // under input_mu_

  std::thread flush_thread_;  // last: started once everything above exists
};

}  // namespace ckpt::daemon
