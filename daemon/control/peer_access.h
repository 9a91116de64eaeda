// Who may talk to the control socket. The socket file's mode (0660) and group are the first gate; this is the
// second, so a too-permissive mode (or a socket passed around by fd) does not open the daemon to everyone:
// SO_PEERCRED names the connecting process, and the policy admits root, the daemon's own uid, and members of the
// socket's group.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckpt::control {

// The peer as the kernel recorded it at connect() time (effective uid and gid).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<PeerCredentials> peer_credentials(int fd);

struct AccessPolicy {
  uid_t owner_uid = 0;          // the daemon's euid
  std::optional<gid_t> group;   // the socket's group, if one was configured

  // Root, owner_uid, a primary gid equal to `group`, or `group` among the peer's supplementary groups.
  bool allows(const PeerCredentials& peer) const;
  // The rule in words, for refusal messages: "root, uid 0 and members of group 1".
  std::string describe() const;
};

// A group by name (getgrnam_r) or as a decimal gid. Fails with kNotFound for an unknown name.
Result<gid_t> lookup_group(const std::string& name);

// The peer's supplementary groups. SO_PEERCRED carries only the primary gid, so they come from the "Groups:" line
// of /proc/<pid>/status (trusted only while that process still has the peer's uid, which guards against a
// recycled pid), else from the user database (getpwuid_r + getgrouplist).
Result<std::vector<gid_t>> supplementary_groups(const PeerCredentials& peer);

}  // namespace ckpt::control
