// Line framing over a stream fd (a Unix socket, a pipe): '\n'-terminated lines with a hard maximum length, so a
// peer that never sends a newline cannot make the reader buffer without bound. write_line is its counterpart.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ckpt::control {

class LineReader {
 public:
  enum class Outcome {
    kLine,     // `line` holds one line without its '\n'
    kEof,      // the peer closed; a partial line before the close is dropped
    kTooLong,  // more than max_line_bytes arrived without a '\n'; the stream cannot be resynchronised
    kError,    // read or poll failed; `sys_errno` says why
    kTimeout,  // no complete line within the timeout
  };
  struct ReadResult {
    Outcome outcome = Outcome::kEof;
    std::string line;
    int sys_errno = 0;
  };

  // Does not own `fd`. `max_line_bytes` counts the '\n'.
  LineReader(int fd, size_t max_line_bytes) : fd_(fd), max_line_bytes_(max_line_bytes) {}

  // Blocks for the next line. The timeout bounds the whole line, measured from this call; zero waits forever.
  // Bytes after the returned line (pipelined requests) stay buffered for the next call.
  ReadResult read_line(std::chrono::milliseconds timeout);

 private:
  // Moves one complete line out of buffer_ if there is one; scan_from_ skips bytes already searched.
  bool take_line(ReadResult& result);

  int fd_;
  size_t max_line_bytes_;
  std::string buffer_;
  size_t scan_from_ = 0;
};

// Writes all of `data` to a stream socket without raising SIGPIPE (a vanished peer yields EPIPE instead). The
// timeout bounds the whole write; zero waits forever. Fails with kIoError (ETIMEDOUT on timeout).
Status write_all(int fd, std::string_view data, std::chrono::milliseconds timeout);

}  // namespace ckpt::control
