// The control protocol's messages (protocol.h, docs/protocol.md): one JSON object per line. The server parses
// requests and encodes replies; the client (the ckpt CLI) encodes requests and parses replies. Nothing here throws.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ckpt::control {

struct Request {
  nlohmann::json id;  // any JSON, echoed in the reply; null when the request had none
  std::string cmd;
  nlohmann::json args = nlohmann::json::object();
};

struct Reply {
  bool ok = true;
  nlohmann::json result = nlohmann::json::object();  // meaningful when ok
  std::string error_code;                              // one of protocol.h's error_code; meaningful when !ok
  std::string message;                                 // what failed, for a human; meaningful when !ok

  static Reply success(nlohmann::json result = nlohmann::json::object());
  static Reply error(std::string_view code, std::string message);
};

// A parsed reply line together with the id it answers.
struct ReplyEnvelope {
  nlohmann::json id;
  Reply reply;
};

// Requests (bad_request) and replies nested deeper than this are refused before they are parsed: every JSON consumer
// after the parser (dump, handlers walking args) recurses, and a 64 KiB line could otherwise nest 32k levels.
inline constexpr int kMaxNestingDepth = 64;

// Parses and validates one request line (without or with its '\n'). Fails with kInvalidArgument for malformed
// JSON or a missing/wrongly typed field, kUnsupported for a version other than kProtocolVersion. If `id_out` is
// given it receives the request's id whenever the line was a JSON object carrying one, even when validation
// fails, so the error reply can still be matched by the client.
Result<Request> parse_request(std::string_view line, nlohmann::json* id_out = nullptr);

// The error reply for a parse_request failure: unsupported_version or bad_request, with the Status's message.
Reply reply_for_parse_error(const Status& status);

// One reply line, '\n' included. Invalid UTF-8 in strings is replaced (U+FFFD) rather than failing the encoding.
std::string encode_reply(const nlohmann::json& id, const Reply& reply);

// One request line, '\n' included.
std::string encode_request(const nlohmann::json& id, std::string_view cmd,
                           const nlohmann::json& args = nlohmann::json::object());

// Parses and validates one reply line. Fails with kInvalidArgument (malformed, a field missing or of the wrong
// type) or kUnsupported (another protocol version).
Result<ReplyEnvelope> parse_reply(std::string_view line);

}  // namespace ckpt::control
