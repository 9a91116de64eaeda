// Errors as values. A Status names what failed (the operation, the file, the offset) in its message; a Result<T>
// carries either a value or the Status that explains its absence. Neither throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ckpt {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something malformed
  kNotFound,         // a named thing (epoch, file) does not exist
  kCorruption,       // data on disk failed a checksum or a structural check
  kIoError,          // the OS reported an error (errno is kept)
  kNoSpace,          // ENOSPC / EDQUOT: retrying after space returns can succeed
  kUnsupported,      // the kernel or the format version lacks a feature
  kBusy,             // another writer holds the store
  kPermission,       // EACCES / EPERM
  kAborted,          // the operation was cancelled
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, int sys_errno = 0)
      : code_(code), errno_(sys_errno), message_(std::move(message)) {}

  static Status ok() { return {}; }
  // Maps errno to a code (ENOSPC -> kNoSpace, EACCES -> kPermission, ...) and appends strerror to `what`.
  static Status from_errno(int err, std::string_view what);

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  // "corruption: epoch 7 (/s/0000000007.epoch) offset 4096: block checksum mismatch"
  std::string to_string() const;
  // Prefixes context to the message, keeping code and errno: s.with_context("restore epoch 7").
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  int errno_ = 0;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The error; Status::ok() when a value is held.
  Status status() const { return is_ok() ? Status::ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ckpt

// Propagates a failed Status from an expression yielding Status.
#define CKPT_RETURN_IF_ERROR(expr)           \
  do {                                       \
    ::ckpt::Status ckpt_status_ = (expr);    \
    if (!ckpt_status_.is_ok()) return ckpt_status_; \
  } while (0)

#define CKPT_CONCAT_INNER(a, b) a##b
#define CKPT_CONCAT(a, b) CKPT_CONCAT_INNER(a, b)
// Declares `lhs` from a Result-yielding expression or returns its Status.
#define CKPT_ASSIGN_OR_RETURN(lhs, expr) CKPT_ASSIGN_OR_RETURN_IMPL(CKPT_CONCAT(ckpt_result_, __LINE__), lhs, expr)
#define CKPT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.is_ok()) return tmp.status();           \
  lhs = std::move(tmp).value()
