#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace ckpt {

std::string_view status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kIoError: return "io error";
    case StatusCode::kNoSpace: return "no space";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kBusy: return "busy";
    case StatusCode::kPermission: return "permission denied";
    case StatusCode::kAborted: return "aborted";
  }
  return "unknown";
}

Status Status::from_errno(int err, std::string_view what) {
  StatusCode code = StatusCode::kIoError;
  switch (err) {
    case ENOSPC:
    case EDQUOT: code = StatusCode::kNoSpace; break;
    case EACCES:
    case EPERM: code = StatusCode::kPermission; break;
    case ENOENT: code = StatusCode::kNotFound; break;
    case EWOULDBLOCK: code = StatusCode::kBusy; break;
    case ENOSYS:
    case EOPNOTSUPP: code = StatusCode::kUnsupported; break;
    default: break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return {code, std::move(msg), err};
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string s(status_code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::with_context(std::string_view context) const {
  if (is_ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return {code_, std::move(msg), errno_};
}

}  // namespace ckpt
