#include "daemon/service/service_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace ckpt::daemon {
namespace {

// One STATUS= value: a newline would start a new field (and '\0' would end the message early), so both become
// spaces; the text is cut to kMaxStatusBytes without splitting a UTF-8 sequence.
std::string status_field(std::string_view text) {
  size_t keep = text.size();
  if (keep > ServiceNotifier::kMaxStatusBytes) {
    keep = ServiceNotifier::kMaxStatusBytes;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;  // text[keep] continues a char
  }
  std::string field = "STATUS=";
  field.reserve(field.size() + keep);
  for (char c : text.substr(0, keep)) field.push_back(c == '\n' || c == '\0' ? ' ' : c);
  return field;
}

uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000;
}

}  // namespace

void ServiceNotifier::ready(std::string_view status) {
  send("READY=1\n" + status_field(status) + "\nMAINPID=" + std::to_string(::getpid()));
}

void ServiceNotifier::status(std::string_view status) { send(status_field(status)); }

void ServiceNotifier::reloading() { send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec())); }

void ServiceNotifier::reloaded() { send("READY=1"); }

void ServiceNotifier::stopping(std::string_view status) { send("STOPPING=1\n" + status_field(status)); }

bool ServiceNotifier::enabled() const {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

void ServiceNotifier::send(const std::string& message) {
  if (!enabled()) return;
  int rc = ::sd_notify(0, message.c_str());
  // 0 means sd_notify found no NOTIFY_SOCKET after all (someone unset it since enabled()): nothing was lost.
  if (rc >= 0) return;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  std::string what = std::string("sd_notify to NOTIFY_SOCKET=") + (socket ? socket : "(unset)") + " failed: " +
                     std::strerror(-rc);
  if (!warned_.exchange(true)) {
    CKPT_LOG(kWarn) << what << " (systemd is not told this daemon's state; later failures are logged at debug)";
  } else {
    CKPT_LOG(kDebug) << what;
  }
}

}  // namespace ckpt::daemon
