// The control protocol's commands (docs/protocol.md, "Commands"), one function each, mapped by name for the
// ControlServer. Handlers translate JSON to Session calls and Status codes to protocol error codes; the Session
// does the work.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "daemon/console.h"
#include "daemon/control/server.h"
#include "daemon/session.h"

namespace ckpt::daemon {

// `shutdown` is what the shutdown command (and SIGTERM) triggers: a final epoch, then the daemon exits.
std::map<std::string, control::ControlServer::Handler> make_handlers(Session& session, std::function<void()> shutdown);

// The `console` command against `console` (nullptr: the guest has none, not_found). Exposed so tests can drive it
// with a Console of their own.
control::Reply handle_console(Console* console, const control::Request& request);

}  // namespace ckpt::daemon
