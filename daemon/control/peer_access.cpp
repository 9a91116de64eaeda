#include "daemon/control/peer_access.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <sstream>
#include <string_view>

#include "common/log.h"
#include "common/unique_fd.h"

namespace ckpt::control {
namespace {

// Calls fn(buffer) (a *_r lookup returning an errno) with a buffer grown until it stops saying ERANGE.
template <typename Fn>
int with_growing_buffer(Fn fn) {
  std::vector<char> buffer(4096);
  for (;;) {
    int rc = fn(buffer);
    if (rc != ERANGE || buffer.size() >= (size_t{1} << 24)) return rc;
    buffer.resize(buffer.size() * 2);
  }
}

Result<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path);
  std::string text;
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n == 0) return text;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "read " + path);
    text.append(chunk, static_cast<size_t>(n));
  }
}

// The value of a "Key:\t..." line of /proc/<pid>/status as whitespace-separated numbers.
std::optional<std::vector<unsigned long>> status_field(const std::string& status, std::string_view key) {
  std::istringstream lines(status);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(key)) continue;
    std::istringstream values(line.substr(key.size()));
    std::vector<unsigned long> ids;
    for (unsigned long id; values >> id;) ids.push_back(id);
    return ids;
  }
  return std::nullopt;
}

Result<std::vector<gid_t>> groups_from_proc(const PeerCredentials& peer) {
  std::string path = "/proc/" + std::to_string(peer.pid) + "/status";
  CKPT_ASSIGN_OR_RETURN(std::string status, read_small_file(path));
  // Uid: real effective saved fs. SO_PEERCRED recorded the effective uid; if the pid now runs as someone else it
  // was recycled, and its groups say nothing about the peer.
  auto uids = status_field(status, "Uid:");
  if (!uids || uids->size() < 2 || (*uids)[1] != peer.uid) {
    return not_found(path + " no longer belongs to uid " + std::to_string(peer.uid));
  }
  auto groups = status_field(status, "Groups:");
  if (!groups) return corruption(path + " has no Groups: line");
  return std::vector<gid_t>(groups->begin(), groups->end());
}

Result<std::vector<gid_t>> groups_from_user_db(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::string name;
  int rc = with_growing_buffer([&](std::vector<char>& buf) {
    int r = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (r == 0 && found != nullptr) name = pw.pw_name;  // copy out before the buffer goes away
    return r;
  });
  if (rc != 0) return Status::from_errno(rc, "getpwuid_r(" + std::to_string(uid) + ")");
  if (found == nullptr) return not_found("uid " + std::to_string(uid) + " has no passwd entry");
  std::vector<gid_t> groups(32);
  for (;;) {
    int count = static_cast<int>(groups.size());
    if (::getgrouplist(name.c_str(), pw.pw_gid, groups.data(), &count) != -1) {
      groups.resize(static_cast<size_t>(count));
      return groups;
    }
    groups.resize(std::max(static_cast<size_t>(count), groups.size() * 2));
  }
}

bool parse_gid(const std::string& text, gid_t* out) {
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  // (gid_t)-1 means "no change" to chown, so it is not a usable group.
  if (ec != std::errc() || end != text.data() + text.size() || value >= static_cast<gid_t>(-1)) return false;
  *out = static_cast<gid_t>(value);
  return true;
}

}  // namespace

Result<PeerCredentials> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::from_errno(errno, "getsockopt(SO_PEERCRED)");
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

Result<std::vector<gid_t>> supplementary_groups(const PeerCredentials& peer) {
  auto from_proc = groups_from_proc(peer);
  if (from_proc) return from_proc;
  CKPT_LOG(kDebug) << "control: " << from_proc.status().to_string() << "; asking the user database instead";
  return groups_from_user_db(peer.uid);
}

bool AccessPolicy::allows(const PeerCredentials& peer) const {
  if (peer.uid == 0 || peer.uid == owner_uid) return true;
  if (!group) return false;
  if (peer.gid == *group) return true;
  auto groups = supplementary_groups(peer);
  if (!groups) {
    CKPT_LOG(kWarn) << "control: cannot learn the groups of pid " << peer.pid << " (uid " << peer.uid
                    << "): " << groups.status().to_string();
    return false;
  }
  return std::find(groups->begin(), groups->end(), *group) != groups->end();
}

std::string AccessPolicy::describe() const {
  std::string rule = "root, uid " + std::to_string(owner_uid);
  if (group) rule += " and members of group " + std::to_string(*group);
  return rule;
}

Result<gid_t> lookup_group(const std::string& name) {
  if (name.empty()) return invalid_argument("empty group name");
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    gid_t gid = 0;
    if (!parse_gid(name, &gid)) return invalid_argument("group id " + name + " is out of range");
    return gid;
  }
  group gr{};
  group* found = nullptr;
  int rc = with_growing_buffer(
      [&](std::vector<char>& buf) { return ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found); });
  // glibc reports "no such group" as success with a null result; other NSS modules use ENOENT.
  if (rc == ENOENT || (rc == 0 && found == nullptr)) return not_found("no group named \"" + name + "\"");
  if (rc != 0) return Status::from_errno(rc, "getgrnam_r(" + name + ")");
  return gr.gr_gid;
}

}  // namespace ckpt::control
