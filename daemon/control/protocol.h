// The control protocol's constants (docs/protocol.md): JSON lines over a Unix stream socket. A request is one line
//   {"v":1,"id":<any JSON>,"cmd":"status","args":{...}}
// and gets exactly one reply line, in order:
//   {"v":1,"id":<same>,"ok":true,"result":{...}}   or   {"v":1,"id":<same>,"ok":false,"error":{"code":..,"message":..}}
// Shared by the daemon (server) and the ckpt CLI (client).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ckpt::control {

inline constexpr int kProtocolVersion = 1;
// The longest line either side accepts, newline included. Longer requests get a message_too_large reply and the
// connection is closed (the stream cannot be resynchronised cheaply); replies are bounded by the server.
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
inline constexpr size_t kMaxReplyBytes = 4 * 1024 * 1024;
// Epochs per `list` reply, at most: a page of epoch summaries (each well under 1 KiB, a 256-byte tag included)
// stays far below kMaxReplyBytes however long the store; clients page with `after`.
inline constexpr size_t kListPageMax = 1000;
// The `console` command: bytes of output per reply, at most (base64 makes 1.4 MB of them, far below
// kMaxReplyBytes), the default, and the longest a read may wait for new output. The wait stays short so a
// long-polling client never holds its connection near the idle timeout and a stopping daemon is not held up.
inline constexpr size_t kConsoleReadMax = 1024 * 1024;
inline constexpr size_t kConsoleReadDefault = 64 * 1024;
inline constexpr uint64_t kConsoleWaitMaxMs = 2000;
inline constexpr const char* kDefaultSocketPath = "/run/ckptd/ckptd.sock";

// Error codes carried in error.code. Stable: scripts match on them.
namespace error_code {
inline constexpr std::string_view kBadRequest = "bad_request";            // malformed JSON, missing or wrong field
inline constexpr std::string_view kUnsupportedVersion = "unsupported_version";
inline constexpr std::string_view kMessageTooLarge = "message_too_large";
inline constexpr std::string_view kUnknownCommand = "unknown_command";
inline constexpr std::string_view kPermissionDenied = "permission_denied";  // SO_PEERCRED check refused the peer
inline constexpr std::string_view kNotFound = "not_found";                  // e.g. no such epoch
inline constexpr std::string_view kBusy = "busy";                           // e.g. shutting down
inline constexpr std::string_view kCorruption = "corruption";
inline constexpr std::string_view kFailed = "failed";                       // anything else; the message says what
}  // namespace error_code

}  // namespace ckpt::control
