#include "daemon/control/message.h"

#include <utility>

#include "daemon/control/protocol.h"

namespace ckpt::control {
namespace {

using nlohmann::json;

// Counts brackets outside strings; the line need not be valid JSON (the parser judges that afterwards).
bool nested_too_deep(std::string_view line) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNestingDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// dump() throws on invalid UTF-8 in a string (a handler may put a raw path into a message); replace it instead.
std::string dump(const json& j) {
  if (j.is_discarded()) return "null";
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Parsing throws only here, and is caught here: the parser's own message says where the line went wrong.
Result<json> parse_object(std::string_view line, std::string_view what) {
  json j;
  try {
    j = json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    std::string detail = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag: the rest names the line and column.
    if (auto tag_end = detail.find("] "); detail.starts_with("[json.exception") && tag_end != std::string::npos) {
      detail.erase(0, tag_end + 2);
    }
    return invalid_argument(std::string(what) + " is not valid JSON: " + detail);
  }
  if (!j.is_object()) return invalid_argument(std::string(what) + " is not a JSON object");
  return j;
}

// A missing or non-integer "v" is malformed; another integer is a version this side does not speak.
Status check_version(const json& obj) {
  auto it = obj.find("v");
  if (it == obj.end()) return invalid_argument("missing field \"v\" (the protocol version)");
  if (!it->is_number_integer()) return invalid_argument("field \"v\" must be an integer");
  if (*it != kProtocolVersion) {
    return unsupported("protocol version " + dump(*it) + " is not supported; this side speaks version " +
                       std::to_string(kProtocolVersion));
  }
  return Status::ok();
}

Status read_command(json& obj, Request& req) {
  auto cmd = obj.find("cmd");
  if (cmd == obj.end()) return invalid_argument("missing field \"cmd\"");
  if (!cmd->is_string() || cmd->get_ref<const std::string&>().empty()) {
    return invalid_argument("field \"cmd\" must be a non-empty string");
  }
  req.cmd = cmd->get<std::string>();
  if (auto args = obj.find("args"); args != obj.end()) {
    if (!args->is_object()) return invalid_argument("field \"args\" must be an object");
    req.args = std::move(*args);
  }
  return Status::ok();
}

Result<Reply> read_error(const json& obj) {
  auto error = obj.find("error");
  if (error == obj.end() || !error->is_object()) return invalid_argument("reply field \"error\" must be an object");
  auto code = error->find("code");
  if (code == error->end() || !code->is_string()) return invalid_argument("reply field \"error.code\" must be a string");
  std::string message;
  if (auto m = error->find("message"); m != error->end()) {
    if (!m->is_string()) return invalid_argument("reply field \"error.message\" must be a string");
    message = m->get<std::string>();
  }
  return Reply::error(code->get<std::string>(), std::move(message));
}

}  // namespace

Reply Reply::success(json result) {
  Reply reply;
  reply.result = std::move(result);
  return reply;
}

Reply Reply::error(std::string_view code, std::string message) {
  Reply reply;
  reply.ok = false;
  reply.result = nullptr;
  reply.error_code = std::string(code);
  reply.message = std::move(message);
  return reply;
}

Result<Request> parse_request(std::string_view line, json* id_out) {
  if (id_out != nullptr) *id_out = nullptr;
  if (nested_too_deep(line)) {
    return invalid_argument("request nests deeper than " + std::to_string(kMaxNestingDepth) + " levels");
  }
  CKPT_ASSIGN_OR_RETURN(json obj, parse_object(line, "request"));
  Request req;
  if (auto it = obj.find("id"); it != obj.end()) req.id = *it;
  if (id_out != nullptr) *id_out = req.id;
  CKPT_RETURN_IF_ERROR(check_version(obj));
  CKPT_RETURN_IF_ERROR(read_command(obj, req));
  return req;
}

Reply reply_for_parse_error(const Status& status) {
  bool version = status.code() == StatusCode::kUnsupported;
  return Reply::error(version ? error_code::kUnsupportedVersion : error_code::kBadRequest, status.message());
}

std::string encode_reply(const json& id, const Reply& reply) {
  std::string line = "{\"v\":" + std::to_string(kProtocolVersion) + ",\"id\":" + dump(id);
  if (reply.ok) {
    line += ",\"ok\":true,\"result\":" + dump(reply.result);
  } else {
    // A handler that forgot the code still produces a valid reply.
    std::string code = reply.error_code.empty() ? std::string(error_code::kFailed) : reply.error_code;
    json error = json::object();
    error["code"] = std::move(code);
    error["message"] = reply.message;
    line += ",\"ok\":false,\"error\":" + dump(error);
  }
  line += "}\n";
  return line;
}

std::string encode_request(const json& id, std::string_view cmd, const json& args) {
  return "{\"v\":" + std::to_string(kProtocolVersion) + ",\"id\":" + dump(id) + ",\"cmd\":" +
         dump(json(std::string(cmd))) + ",\"args\":" + dump(args) + "}\n";
}

Result<ReplyEnvelope> parse_reply(std::string_view line) {
  // The client recurses over replies too (the id check's dump, `ckpt ... --json`): a 4 MiB line could nest 2M levels.
  if (nested_too_deep(line)) {
    return invalid_argument("reply nests deeper than " + std::to_string(kMaxNestingDepth) + " levels");
  }
  CKPT_ASSIGN_OR_RETURN(json obj, parse_object(line, "reply"));
  CKPT_RETURN_IF_ERROR(check_version(obj));
  ReplyEnvelope envelope;
  auto id = obj.find("id");
  if (id == obj.end()) return invalid_argument("reply has no field \"id\"");
  envelope.id = std::move(*id);
  auto ok = obj.find("ok");
  if (ok == obj.end() || !ok->is_boolean()) return invalid_argument("reply field \"ok\" must be a boolean");
  if (ok->get<bool>()) {
    auto result = obj.find("result");
    envelope.reply = Reply::success(result == obj.end() ? json(nullptr) : std::move(*result));
    return envelope;
  }
  CKPT_ASSIGN_OR_RETURN(envelope.reply, read_error(obj));
  return envelope;
}

}  // namespace ckpt::control
