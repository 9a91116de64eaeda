// One reply line as the ckpt CLI handles it (client.cpp, read_reply; cli/output.cpp): parse_reply, the id check,
// the result printed as JSON. A reply that parses must survive the server's encoding unchanged:
// encode_reply(parse_reply(line)) parses back to the same envelope.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/control/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto envelope = ckpt::control::parse_reply(line);
  if (!envelope) return 0;
  const ckpt::control::Reply& reply = envelope->reply;
  if (envelope->id != nlohmann::json(1)) (void)envelope->id.dump();  // read_reply names an unexpected id
  (void)reply.result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);  // print_json, ckpt ... --json

  std::string again = ckpt::control::encode_reply(envelope->id, reply);
  auto reparsed = ckpt::control::parse_reply(again);
  if (!reparsed || reparsed->id != envelope->id || reparsed->reply.ok != reply.ok) std::abort();
  const ckpt::control::Reply& r = reparsed->reply;
  // An empty error code goes out as "failed" (message.cpp: a handler that forgot the code).
  std::string code = reply.error_code.empty() ? "failed" : reply.error_code;
  bool same = reply.ok ? r.result == reply.result : r.error_code == code && r.message == reply.message;
  if (!same) std::abort();  // the server's encoding of a valid reply lost or changed something
  return 0;
}
