// The control server's read loop (server.cpp, serve_next): LineReader framing over a socket, each line it yields
// handed to parse_request. The bytes arrive in packets whose size the input chooses, so lines straddle reads
// anywhere; the framing is checked against the input itself: every line is the next '\n'-terminated piece, an
// over-long line ends the stream with kTooLong, and the end of the bytes is kEof.
//
// Input: byte 0 = packet size (0: all at once), byte 1 = the line limit (0: kMaxMessageBytes, else 1..255 bytes,
// so short inputs reach kTooLong), then the stream.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/unique_fd.h"
#include "daemon/control/line_reader.h"
#include "daemon/control/message.h"
#include "daemon/control/protocol.h"

using ckpt::control::LineReader;

namespace {

// SOCK_SEQPACKET keeps each send a read of its own; the packet count stays small so the socket buffer holds them.
constexpr size_t kMaxPackets = 8;

// Sends `stream` in packets of `packet` bytes and shuts the sending side; returns how many bytes went out (all,
// unless the socket buffer filled).
size_t send_all(int fd, std::string_view stream, size_t packet) {
  size_t sent = 0;
  while (sent < stream.size()) {
    size_t n = std::min(packet, stream.size() - sent);
    if (::send(fd, stream.data() + sent, n, MSG_DONTWAIT | MSG_NOSIGNAL) != static_cast<ssize_t>(n)) break;
    sent += n;
  }
  ::shutdown(fd, SHUT_WR);
  return sent;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t max_line = data[1] == 0 ? ckpt::control::kMaxMessageBytes : data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t packet = data[0] == 0 ? stream.size() : data[0];
  packet = std::max({packet, (stream.size() + kMaxPackets - 1) / kMaxPackets, size_t{1}});

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  ckpt::UniqueFd reader_fd(fds[0]), writer_fd(fds[1]);
  stream = stream.substr(0, send_all(writer_fd.get(), stream, packet));

  LineReader reader(reader_fd.get(), max_line);
  size_t pos = 0;
  for (;;) {
    // What the framing must yield next, worked out from the bytes directly.
    size_t newline = stream.find('\n', pos);
    LineReader::Outcome expect = LineReader::Outcome::kLine;
    if (newline == std::string_view::npos) {
      expect = stream.size() - pos >= max_line ? LineReader::Outcome::kTooLong : LineReader::Outcome::kEof;
    } else if (newline + 1 - pos > max_line) {
      expect = LineReader::Outcome::kTooLong;
    }
    LineReader::ReadResult read = reader.read_line(std::chrono::milliseconds(10000));
    if (read.outcome != expect) std::abort();
    if (expect != LineReader::Outcome::kLine) break;
    if (read.line != stream.substr(pos, newline - pos)) std::abort();
    pos = newline + 1;

    nlohmann::json id;
    auto request = ckpt::control::parse_request(read.line, &id);
    (void)ckpt::control::encode_reply(
        id, request ? ckpt::control::Reply::success() : ckpt::control::reply_for_parse_error(request.status()));
  }
  return 0;
}
