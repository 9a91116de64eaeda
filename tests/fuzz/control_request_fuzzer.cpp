// One request line as the daemon's control server handles it (server.cpp, answer()): parse_request, the error
// reply for a line it refuses, the reply line echoing the id. A request that parses must survive the client's
// encoding unchanged: encode_request(parse_request(line)) parses back to the same request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/control/message.h"

using ckpt::control::Reply;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  nlohmann::json id;
  auto request = ckpt::control::parse_request(line, &id);
  if (!request) {
    (void)ckpt::control::encode_reply(id, ckpt::control::reply_for_parse_error(request.status()));
    return 0;
  }
  (void)ckpt::control::encode_reply(id, Reply::error("unknown_command", "unknown command \"" + request->cmd + "\""));

  std::string again = ckpt::control::encode_request(request->id, request->cmd, request->args);
  auto reparsed = ckpt::control::parse_request(again);
  if (!reparsed || reparsed->id != request->id || reparsed->cmd != request->cmd || reparsed->args != request->args) {
    std::abort();  // the client's encoding of a valid request lost or changed something
  }
  return 0;
}
