// The sockaddr_un of a control socket path, shared by the server and the client.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "common/status.h"

namespace ckpt::control {

inline Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return invalid_argument("socket path \"" + path + "\" must be 1 to " + std::to_string(sizeof addr.sun_path - 1) +
                            " bytes long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace ckpt::control
