// The control socket over real Unix sockets in a temp dir: framing, errors, ordering, the connection cap, the
// socket file's lifecycle, and the SO_PEERCRED check with forked children that drop to other users (the suite runs
// as root; the tests needing it skip otherwise).
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "daemon/control/client.h"
#include "daemon/control/line_reader.h"
#include "daemon/control/message.h"
#include "daemon/control/peer_access.h"
#include "daemon/control/protocol.h"
#include "daemon/control/server.h"

namespace ckpt::control {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// A handler parks here until the test opens the gate.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  void pass() {
    entered_.fetch_add(1);
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return open_; });
    left_.fetch_add(1);
  }
  bool wait_entered(int n, std::chrono::milliseconds timeout = 5s) const { return wait_for(entered_, n, timeout); }
  bool wait_left(int n, std::chrono::milliseconds timeout = 5s) const { return wait_for(left_, n, timeout); }

 private:
  static bool wait_for(const std::atomic<int>& counter, int n, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (counter.load() < n) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
  std::atomic<int> entered_{0};
  std::atomic<int> left_{0};
};

UniqueFd raw_connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  return fd;
}

// A hand-driven client: sends arbitrary bytes, reads reply lines.
struct RawPeer {
  explicit RawPeer(const std::string& path) : fd(raw_connect(path)), reader(fd.get(), kMaxReplyBytes) {}

  void send(std::string_view data) {
    Status s = write_all(fd.get(), data, 5s);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  LineReader::ReadResult read(std::chrono::milliseconds timeout = 5s) { return reader.read_line(timeout); }
  json reply() {
    LineReader::ReadResult r = read();
    if (r.outcome != LineReader::Outcome::kLine) {
      ADD_FAILURE() << "expected a reply line, got outcome " << static_cast<int>(r.outcome);
      return nullptr;
    }
    return json::parse(r.line, nullptr, false);
  }

  UniqueFd fd;
  LineReader reader;
};

std::string error_code_of(const json& reply) {
  if (!reply.is_object() || !reply.contains("error")) return "";
  return reply["error"].value("code", "");
}

// A child process that runs `fn` with other credentials. It is forked when constructed, which must be before the
// server starts: a child forked from a process with running threads can inherit a lock (the allocator's, the log's)
// that no thread of the child will ever release, and hang. The child waits for run(), then drops privileges and
// calls fn; run() returns its exit code (-1 if it died of a signal, e.g. the alarm of a hung child). Children _exit:
// gtest's state belongs to the parent.
class PeerAs {
 public:
  PeerAs(uid_t uid, gid_t gid, std::vector<gid_t> groups, std::function<int()> fn) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[1]);
      char go = 0;
      if (::read(fds[0], &go, 1) != 1) ::_exit(101);  // the parent never said go
      ::alarm(20);                                      // a hung child must not hang the suite
      if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(100);
      ::_exit(fn());
    }
    ::close(fds[0]);
    go_ = UniqueFd(fds[1]);
  }
  PeerAs(const PeerAs&) = delete;
  PeerAs& operator=(const PeerAs&) = delete;
  ~PeerAs() {
    go_.reset();  // a child never told to go exits on EOF
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }

  int run() {
    if (pid_ <= 0 || ::write(go_.get(), "g", 1) != 1) return -2;
    int status = 0;
    pid_t waited = ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (waited < 0) return -2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd go_;
};

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/ckctl.XXXXXX";  // short: sun_path holds 107 bytes
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);  // so children running as nobody can reach the socket
    path_ = dir_ + "/ckptd.sock";
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  ServerOptions options() {
    ServerOptions o;
    o.path = path_;
    o.handlers["echo"] = [](const Request& r, const PeerCredentials&) { return Reply::success(r.args); };
    o.handlers["status"] = [](const Request&, const PeerCredentials&) { return Reply::success({{"state", "up"}}); };
    o.handlers["whoami"] = [](const Request&, const PeerCredentials& p) {
      return Reply::success({{"uid", p.uid}, {"gid", p.gid}, {"pid", p.pid}});
    };
    o.handlers["block"] = [this](const Request&, const PeerCredentials&) {
      gate_.pass();
      return Reply::success({{"unblocked", true}});
    };
    return o;
  }
  void start(ServerOptions o) {
    auto server = ControlServer::start(std::move(o));
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(server).value();
  }
  void start() { start(options()); }
  ControlClient client() {
    auto c = ControlClient::connect(path_, 5s);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return std::move(c).value();
  }

  std::string dir_;
  std::string path_;
  Gate gate_;
  std::unique_ptr<ControlServer> server_;
};

bool is_root() { return ::geteuid() == 0; }

// ---- messages and framing, no server ----

TEST(ControlMessage, RequestRoundTrip) {
  std::string line = encode_request("abc", "echo", {{"x", 1}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto request = parse_request(line);
  ASSERT_TRUE(request.is_ok()) << request.status().to_string();
  EXPECT_EQ(request->id, "abc");
  EXPECT_EQ(request->cmd, "echo");
  EXPECT_EQ(request->args, json({{"x", 1}}));
}

TEST(ControlMessage, ArgsDefaultToEmptyObjectAndIdToNull) {
  auto request = parse_request(R"({"v":1,"cmd":"status"})");
  ASSERT_TRUE(request.is_ok()) << request.status().to_string();
  EXPECT_TRUE(request->id.is_null());
  EXPECT_EQ(request->args, json::object());
}

TEST(ControlMessage, ValidationFailuresKeepTheId) {
  struct Case {
    const char* line;
    StatusCode code;
    json id;
  };
  const Case cases[] = {
      {R"({"v":2,"id":7,"cmd":"x"})", StatusCode::kUnsupported, 7},
      {R"({"id":7,"cmd":"x"})", StatusCode::kInvalidArgument, 7},
      {R"({"v":"1","id":7,"cmd":"x"})", StatusCode::kInvalidArgument, 7},
      {R"({"v":1,"id":"a"})", StatusCode::kInvalidArgument, "a"},
      {R"({"v":1,"id":"a","cmd":""})", StatusCode::kInvalidArgument, "a"},
      {R"({"v":1,"id":"a","cmd":3})", StatusCode::kInvalidArgument, "a"},
      {R"({"v":1,"id":[1],"cmd":"x","args":[]})", StatusCode::kInvalidArgument, json::array({1})},
      {R"([1,2])", StatusCode::kInvalidArgument, nullptr},
      {R"({"v":1,"id":5,)", StatusCode::kInvalidArgument, nullptr},
      {"", StatusCode::kInvalidArgument, nullptr},
  };
  for (const Case& c : cases) {
    json id = "sentinel";
    auto request = parse_request(c.line, &id);
    ASSERT_FALSE(request.is_ok()) << c.line;
    EXPECT_EQ(request.status().code(), c.code) << c.line << ": " << request.status().to_string();
    EXPECT_EQ(id, c.id) << c.line;
  }
  EXPECT_EQ(reply_for_parse_error(unsupported("x")).error_code, error_code::kUnsupportedVersion);
  EXPECT_EQ(reply_for_parse_error(invalid_argument("x")).error_code, error_code::kBadRequest);
}

TEST(ControlMessage, DeepNestingIsRefusedBeforeParsing) {
  std::string deep = R"({"v":1,"id":1,"cmd":"x","args":{"a":)" + std::string(100, '[') + std::string(100, ']') + "}}";
  auto request = parse_request(deep);
  ASSERT_FALSE(request.is_ok());
  EXPECT_NE(request.status().message().find("nests deeper"), std::string::npos);
  // Brackets inside strings do not count.
  auto fine = parse_request(R"({"v":1,"cmd":"x","args":{"s":")" + std::string(100, '[') + R"("}})");
  EXPECT_TRUE(fine.is_ok()) << fine.status().to_string();
}

TEST(ControlMessage, ReplyRoundTrip) {
  auto ok = parse_reply(encode_reply(json::array({1, "x"}), Reply::success({{"n", 3}})));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->id, json::array({1, "x"}));
  EXPECT_TRUE(ok->reply.ok);
  EXPECT_EQ(ok->reply.result, json({{"n", 3}}));

  auto err = parse_reply(encode_reply(nullptr, Reply::error(error_code::kNotFound, "no epoch 9")));
  ASSERT_TRUE(err.is_ok()) << err.status().to_string();
  EXPECT_TRUE(err->id.is_null());
  EXPECT_FALSE(err->reply.ok);
  EXPECT_EQ(err->reply.error_code, "not_found");
  EXPECT_EQ(err->reply.message, "no epoch 9");

  EXPECT_EQ(parse_reply(R"({"v":2,"id":1,"ok":true,"result":{}})").status().code(), StatusCode::kUnsupported);
  EXPECT_FALSE(parse_reply(R"({"v":1,"id":1,"ok":false})").is_ok());
  EXPECT_FALSE(parse_reply(R"({"v":1,"ok":true})").is_ok());
}

TEST(ControlMessage, InvalidUtf8IsReplacedNotThrown) {
  std::string line = encode_reply(1, Reply::error(error_code::kFailed, std::string("bad \xff path")));
  auto parsed = parse_reply(line);
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->reply.message, "bad \xEF\xBF\xBD path");
}

TEST(ControlMessage, ErrorWithoutCodeBecomesFailed) {
  Reply reply;
  reply.ok = false;
  auto parsed = parse_reply(encode_reply(1, reply));
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_EQ(parsed->reply.error_code, error_code::kFailed);
}

class LineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a_.reset(fds[0]);
    b_.reset(fds[1]);
  }
  UniqueFd a_, b_;
};

TEST_F(LineReaderTest, SplitsPipelinedLinesAndKeepsTheRest) {
  LineReader reader(a_.get(), 16);
  ASSERT_TRUE(write_all(b_.get(), "one\ntwo\nthr", 1s).is_ok());
  EXPECT_EQ(reader.read_line(1s).line, "one");
  EXPECT_EQ(reader.read_line(1s).line, "two");
  EXPECT_EQ(reader.read_line(50ms).outcome, LineReader::Outcome::kTimeout);
  ASSERT_TRUE(write_all(b_.get(), "ee\n", 1s).is_ok());
  EXPECT_EQ(reader.read_line(1s).line, "three");
  b_.reset();
  EXPECT_EQ(reader.read_line(1s).outcome, LineReader::Outcome::kEof);
}

TEST_F(LineReaderTest, MaximumCountsTheNewline) {
  LineReader reader(a_.get(), 8);
  ASSERT_TRUE(write_all(b_.get(), "1234567\n", 1s).is_ok());  // 8 bytes with the newline: fits
  auto fits = reader.read_line(1s);
  EXPECT_EQ(fits.outcome, LineReader::Outcome::kLine);
  EXPECT_EQ(fits.line, "1234567");
  ASSERT_TRUE(write_all(b_.get(), "12345678\n", 1s).is_ok());  // 9: too long, even with the newline present
  EXPECT_EQ(reader.read_line(1s).outcome, LineReader::Outcome::kTooLong);

  LineReader endless(b_.get(), 8);
  ASSERT_TRUE(write_all(a_.get(), "123456789", 1s).is_ok());  // no newline at all
  EXPECT_EQ(endless.read_line(1s).outcome, LineReader::Outcome::kTooLong);
}

TEST_F(LineReaderTest, ReadErrorCarriesErrno) {
  UniqueFd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));  // always "readable", and read() says EISDIR
  ASSERT_TRUE(dir.valid());
  LineReader reader(dir.get(), 8);
  auto result = reader.read_line(1s);
  EXPECT_EQ(result.outcome, LineReader::Outcome::kError);
  EXPECT_EQ(result.sys_errno, EISDIR);
}

TEST(ControlAccess, PolicyRules) {
  AccessPolicy policy{1000, gid_t{1}};
  EXPECT_TRUE(policy.allows({1, 0, 0}));         // root
  EXPECT_TRUE(policy.allows({1, 1000, 1000}));   // the owner
  EXPECT_TRUE(policy.allows({1, 4242, 1}));      // primary group
  AccessPolicy no_group{1000, std::nullopt};
  EXPECT_FALSE(no_group.allows({1, 4242, 1}));
  EXPECT_NE(policy.describe().find("group 1"), std::string::npos);
}

TEST(ControlAccess, SupplementaryGroupsFallBackToTheUserDatabase) {
  // Our own pid, but claimed for uid nobody: /proc says the pid belongs to root, so it is not trusted and the
  // groups come from the user database, where nobody's login group is nogroup.
  PeerCredentials peer{::getpid(), kNobody, 1};
  if (::geteuid() == kNobody) GTEST_SKIP() << "running as nobody";
  auto groups = supplementary_groups(peer);
  ASSERT_TRUE(groups.is_ok()) << groups.status().to_string();
  EXPECT_NE(std::find(groups->begin(), groups->end(), kNogroup), groups->end());
  EXPECT_TRUE((AccessPolicy{0, kNogroup}.allows(peer)));
  EXPECT_FALSE((AccessPolicy{0, gid_t{4242}}.allows(peer)));
}

TEST(ControlAccess, LookupGroup) {
  auto numeric = lookup_group("1");
  ASSERT_TRUE(numeric.is_ok());
  EXPECT_EQ(*numeric, 1u);
  auto root = lookup_group("root");
  ASSERT_TRUE(root.is_ok()) << root.status().to_string();
  EXPECT_EQ(*root, 0u);
  EXPECT_EQ(lookup_group("no-such-group-ckpt").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(lookup_group("99999999999").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(lookup_group("").status().code(), StatusCode::kInvalidArgument);
}

// ---- the server over a real socket ----

TEST_F(ControlTest, ClientRoundTrip) {
  start();
  ControlClient c = client();
  for (int i = 0; i < 3; ++i) {
    auto reply = c.call("echo", {{"i", i}, {"s", "x"}}, 5s);
    ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
    EXPECT_TRUE(reply->ok);
    EXPECT_EQ(reply->result, json({{"i", i}, {"s", "x"}}));
  }
  auto who = c.call("whoami");
  ASSERT_TRUE(who.is_ok());
  EXPECT_EQ(who->result["uid"], ::geteuid());
  EXPECT_EQ(who->result["pid"], ::getpid());
}

TEST_F(ControlTest, IdsAreEchoedWhateverTheirType) {
  start();
  RawPeer peer(path_);
  const json ids[] = {42, -7, 1.5, "abc", nullptr, json::array({1, 2}), json({{"k", "v"}})};
  for (const json& id : ids) {
    peer.send(encode_request(id, "echo", {{"a", 1}}));
    json reply = peer.reply();
    EXPECT_EQ(reply["id"], id);
    EXPECT_EQ(reply["v"], kProtocolVersion);
    EXPECT_EQ(reply["ok"], true);
    EXPECT_EQ(reply["result"], json({{"a", 1}}));
  }
  peer.send(R"({"v":1,"cmd":"echo"})" "\n");  // no id at all: null comes back
  json reply = peer.reply();
  EXPECT_TRUE(reply.contains("id"));
  EXPECT_TRUE(reply["id"].is_null());
}

TEST_F(ControlTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawPeer peer(path_);
  std::string batch;
  for (int i = 1; i <= 20; ++i) batch += encode_request(i, "echo", {{"n", i}});
  peer.send(batch);
  for (int i = 1; i <= 20; ++i) {
    json reply = peer.reply();
    EXPECT_EQ(reply["id"], i);
    EXPECT_EQ(reply["result"]["n"], i);
  }
}

TEST_F(ControlTest, MalformedJsonGetsBadRequestAndTheConnectionStays) {
  start();
  RawPeer peer(path_);
  peer.send("{not json\n");
  json reply = peer.reply();
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(error_code_of(reply), error_code::kBadRequest);
  EXPECT_TRUE(reply["id"].is_null());
  EXPECT_NE(reply["error"]["message"].get<std::string>().find("not valid JSON"), std::string::npos);

  peer.send("\n");  // a blank line is a malformed request too: it still gets its one reply
  EXPECT_EQ(error_code_of(peer.reply()), error_code::kBadRequest);

  peer.send(encode_request(9, "status"));
  reply = peer.reply();
  EXPECT_EQ(reply["id"], 9);
  EXPECT_EQ(reply["ok"], true);
}

TEST_F(ControlTest, WrongVersion) {
  start();
  RawPeer peer(path_);
  peer.send(R"({"v":2,"id":"x","cmd":"status"})" "\n");
  json reply = peer.reply();
  EXPECT_EQ(error_code_of(reply), error_code::kUnsupportedVersion);
  EXPECT_EQ(reply["id"], "x");
  peer.send(R"({"id":"y","cmd":"status"})" "\n");
  reply = peer.reply();
  EXPECT_EQ(error_code_of(reply), error_code::kBadRequest);
  EXPECT_EQ(reply["id"], "y");
}

TEST_F(ControlTest, MissingOrBadFields) {
  start();
  RawPeer peer(path_);
  for (const char* line : {R"({"v":1,"id":3})", R"({"v":1,"id":3,"cmd":""})", R"({"v":1,"id":3,"cmd":"echo","args":1})"}) {
    peer.send(std::string(line) + "\n");
    json reply = peer.reply();
    EXPECT_EQ(error_code_of(reply), error_code::kBadRequest) << line;
    EXPECT_EQ(reply["id"], 3) << line;
  }
}

TEST_F(ControlTest, UnknownCommand) {
  start();
  ControlClient c = client();
  auto reply = c.call("frobnicate", json::object(), 5s);
  ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
  EXPECT_FALSE(reply->ok);
  EXPECT_EQ(reply->error_code, error_code::kUnknownCommand);
  EXPECT_NE(reply->message.find("frobnicate"), std::string::npos);
  EXPECT_TRUE(c.call("status").is_ok());  // still connected
}

TEST_F(ControlTest, LineOfExactlyTheMaximumIsAccepted) {
  start();
  RawPeer peer(path_);
  std::string line = encode_request(1, "status");
  line.pop_back();
  line.append(kMaxMessageBytes - 1 - line.size(), ' ');  // JSON allows trailing whitespace
  line += '\n';
  ASSERT_EQ(line.size(), kMaxMessageBytes);
  peer.send(line);
  EXPECT_EQ(peer.reply()["ok"], true);
}

TEST_F(ControlTest, OversizedLineGetsMessageTooLargeThenEof) {
  start();
  RawPeer peer(path_);
  peer.send(std::string(kMaxMessageBytes + 1, 'x') + "\n");
  json reply = peer.reply();
  EXPECT_EQ(error_code_of(reply), error_code::kMessageTooLarge);
  EXPECT_EQ(peer.read().outcome, LineReader::Outcome::kEof);
  EXPECT_TRUE(client().call("status", json::object(), 5s).is_ok());  // the server is fine
}

TEST_F(ControlTest, PartialLineThenCloseLeavesTheServerFine) {
  start();
  {
    RawPeer peer(path_);
    peer.send(R"({"v":1,"id":1,"cmd":"sta)");
  }
  auto reply = client().call("status", json::object(), 5s);
  ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
  EXPECT_TRUE(reply->ok);
}

TEST_F(ControlTest, BlockingHandlerBlocksOnlyItsOwnConnection) {
  start();
  std::thread blocked([&] {
    ControlClient c = client();
    auto reply = c.call("block", json::object(), 10s);
    EXPECT_TRUE(reply.is_ok() && reply->ok) << reply.status().to_string();
  });
  ASSERT_TRUE(gate_.wait_entered(1));
  auto start_time = Clock::now();
  auto status = client().call("status", json::object(), 2s);
  EXPECT_TRUE(status.is_ok() && status->ok) << status.status().to_string();
  EXPECT_LT(Clock::now() - start_time, 1s);
  gate_.open();
  blocked.join();
}

// Only connections that are all running commands fill the cap: then a new one is told busy.
TEST_F(ControlTest, ConnectionCapRepliesBusyWhenEveryConnectionRunsACommand) {
  ServerOptions o = options();
  o.max_connections = 2;
  start(std::move(o));
  std::vector<std::thread> blocked;
  for (int i = 0; i < 2; ++i) {
    blocked.emplace_back([&] {
      ControlClient c = client();
      auto reply = c.call("block", json::object(), 10s);
      EXPECT_TRUE(reply.is_ok() && reply->ok) << reply.status().to_string();
    });
  }
  ASSERT_TRUE(gate_.wait_entered(2));

  ControlClient third = client();
  auto busy = third.call("status", json::object(), 5s);
  ASSERT_TRUE(busy.is_ok()) << busy.status().to_string();
  EXPECT_FALSE(busy->ok);
  EXPECT_EQ(busy->error_code, error_code::kBusy);

  gate_.open();  // the commands end; their connections are idle now, so a new one gets in at once
  for (std::thread& t : blocked) t.join();
  auto reply = client().call("status", json::object(), 5s);
  EXPECT_TRUE(reply.is_ok() && reply->ok) << reply.status().to_string();
}

// The lock-out this guards against: as many idle connections as the cap (connected, sending nothing or half a
// line) must not keep a client out. The newcomer takes the place of the connection idle longest, at once.
TEST_F(ControlTest, IdleConnectionsNeverLockOutANewClient) {
  ServerOptions defaults;
  start();
  std::vector<std::unique_ptr<RawPeer>> idle;
  for (size_t i = 0; i < defaults.max_connections; ++i) {
    idle.push_back(std::make_unique<RawPeer>(path_));
    if (i % 2) idle.back()->send(R"({"v":1,"id":1,"cmd":"sta)");  // half a request
  }
  std::this_thread::sleep_for(100ms);  // let the server accept them all
  for (int round = 0; round < 3; ++round) {
    auto start_time = Clock::now();
    auto reply = client().call("status", json::object(), 5s);
    ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
    EXPECT_TRUE(reply->ok) << reply->message;
    EXPECT_LT(Clock::now() - start_time, 1s);
  }
  // The oldest idle connections were the ones closed: the first sees EOF.
  EXPECT_EQ(idle.front()->read(2s).outcome, LineReader::Outcome::kEof);
}

// A connection that never sends a request is closed after first_request_timeout, however long idle_timeout is.
TEST_F(ControlTest, ConnectionWithoutARequestIsClosedSoon) {
  ServerOptions o = options();
  o.first_request_timeout = 200ms;
  start(std::move(o));
  RawPeer peer(path_);
  auto start_time = Clock::now();
  EXPECT_EQ(peer.read(5s).outcome, LineReader::Outcome::kEof);
  EXPECT_LT(Clock::now() - start_time, 2s);
}

TEST_F(ControlTest, HandlerThatThrowsFailsOnlyItsRequest) {
  ServerOptions o = options();
  o.handlers["throw"] = [](const Request&, const PeerCredentials&) -> Reply { throw std::runtime_error("boom"); };
  o.handlers["empty"] = Handler();  // calling it throws std::bad_function_call
  start(std::move(o));
  ControlClient c = client();
  for (const char* cmd : {"throw", "empty"}) {
    auto reply = c.call(cmd, json::object(), 5s);
    ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
    EXPECT_EQ(reply->error_code, error_code::kFailed);
  }
  EXPECT_NE(c.call("throw").value().message.find("boom"), std::string::npos);
  EXPECT_TRUE(c.call("status", json::object(), 5s).value().ok);
}

TEST_F(ControlTest, OversizedReplyBecomesFailed) {
  ServerOptions o = options();
  o.handlers["huge"] = [](const Request&, const PeerCredentials&) {
    return Reply::success(json(std::string(kMaxReplyBytes, 'x')));
  };
  start(std::move(o));
  ControlClient c = client();
  auto reply = c.call("huge", json::object(), 5s);
  ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
  EXPECT_EQ(reply->error_code, error_code::kFailed);
  EXPECT_TRUE(c.call("status", json::object(), 5s).value().ok);
}

TEST_F(ControlTest, IdleConnectionIsClosed) {
  ServerOptions o = options();
  o.idle_timeout = 200ms;
  start(std::move(o));
  RawPeer peer(path_);
  peer.send("{\"v\":1,\"id\":1,\"cmd\":\"status\"}\n");
  EXPECT_EQ(error_code_of(peer.reply()), "");  // answered; now idle
  auto start_time = Clock::now();
  EXPECT_EQ(peer.read(5s).outcome, LineReader::Outcome::kEof);
  EXPECT_LT(Clock::now() - start_time, 2s);
}

TEST_F(ControlTest, StaleSocketIsReplaced) {
  {
    UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  }  // closed without unlink: what a killed daemon leaves
  auto unreachable = ControlClient::connect(path_, 1s);
  ASSERT_FALSE(unreachable.is_ok());
  EXPECT_EQ(unreachable.status().sys_errno(), ECONNREFUSED);
  start();
  EXPECT_TRUE(client().call("status", json::object(), 5s).value().ok);
}

TEST_F(ControlTest, LiveSocketRefusesASecondServer) {
  start();
  auto second = ControlServer::start(options());
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
  EXPECT_NE(second.status().message().find("another ckptd is listening on " + path_), std::string::npos);
  EXPECT_TRUE(client().call("status", json::object(), 5s).value().ok);  // the first is untouched
}

TEST_F(ControlTest, NonSocketFileIsRefusedAndLeftAlone) {
  { std::ofstream(path_) << "precious"; }
  auto server = ControlServer::start(options());
  ASSERT_FALSE(server.is_ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find(path_), std::string::npos);
  std::ifstream in(path_);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "precious");
}

TEST_F(ControlTest, MissingParentDirectoryIsCreated) {
  ServerOptions o = options();
  o.path = dir_ + "/a/b/s.sock";
  start(std::move(o));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(ControlTest, SocketModeAndGroup) {
  ServerOptions o = options();
  o.group = "daemon";
  if (!lookup_group("daemon").is_ok()) o.group = "1";
  start(std::move(o));
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, 1u);
}

TEST_F(ControlTest, UnknownGroupFailsToStart) {
  ServerOptions o = options();
  o.group = "no-such-group-ckpt";
  auto server = ControlServer::start(std::move(o));
  ASSERT_FALSE(server.is_ok());
  EXPECT_EQ(server.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(ControlTest, StopUnblocksReadersAndRemovesTheSocket) {
  start();
  RawPeer idle(path_);
  ControlClient c = client();
  ASSERT_TRUE(c.call("status", json::object(), 5s).is_ok());  // served, now blocked reading its next request
  auto start_time = Clock::now();
  server_->stop();
  EXPECT_LT(Clock::now() - start_time, 2s);
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(idle.read(5s).outcome, LineReader::Outcome::kEof);
  auto after = c.call("status", json::object(), 5s);
  ASSERT_FALSE(after.is_ok());
  EXPECT_EQ(after.status().code(), StatusCode::kIoError);
  server_->stop();  // idempotent
}

TEST_F(ControlTest, StopDeliversTheReplyOfARunningCommand) {
  start();
  RawPeer peer(path_);
  peer.send(encode_request(1, "block") + encode_request(2, "status"));  // the second waits behind the first
  ASSERT_TRUE(gate_.wait_entered(1));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    server_->stop();
    stopped = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(stopped.load());  // waits for the running command
  gate_.open();
  json first = peer.reply();
  EXPECT_EQ(first["id"], 1);
  EXPECT_EQ(first["ok"], true);
  json second = peer.reply();
  EXPECT_EQ(second["id"], 2);
  EXPECT_EQ(error_code_of(second), error_code::kBusy);
  EXPECT_EQ(peer.read().outcome, LineReader::Outcome::kEof);
  stopper.join();
  EXPECT_TRUE(stopped.load());
}

TEST_F(ControlTest, StopLeavesASuccessorsSocketAlone) {
  start();
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  UniqueFd other(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(other.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  server_->stop();
  EXPECT_TRUE(std::filesystem::exists(path_));
}

TEST_F(ControlTest, ReplyToAVanishedPeerDoesNotRaiseSigpipe) {
  start();
  {
    RawPeer peer(path_);
    peer.send(encode_request(1, "block"));
    ASSERT_TRUE(gate_.wait_entered(1));
  }  // closed while the handler runs
  gate_.open();
  ASSERT_TRUE(gate_.wait_left(1));
  std::this_thread::sleep_for(50ms);  // let the server write into the closed connection
  EXPECT_TRUE(client().call("status", json::object(), 5s).value().ok);
}

TEST_F(ControlTest, ClientTimeoutClosesTheConnection) {
  start();
  ControlClient c = client();
  auto reply = c.call("block", json::object(), 100ms);
  ASSERT_FALSE(reply.is_ok());
  EXPECT_EQ(reply.status().sys_errno(), ETIMEDOUT);
  auto later = c.call("status", json::object(), 1s);
  ASSERT_FALSE(later.is_ok());
  EXPECT_EQ(later.status().sys_errno(), ENOTCONN);
  gate_.open();
}

TEST_F(ControlTest, ClientWithoutADaemon) {
  auto c = ControlClient::connect(path_, 1s);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), StatusCode::kIoError);
  EXPECT_EQ(c.status().sys_errno(), ENOENT);
  EXPECT_NE(c.status().message().find("no daemon is listening on " + path_), std::string::npos);
}

// ---- SO_PEERCRED, with children that drop root ----

TEST_F(ControlTest, PeerOutsideThePolicyIsRefused) {
  if (!is_root()) GTEST_SKIP() << "needs root to fork children as other users";
  PeerAs nobody(kNobody, kNogroup, {}, [&] {
    auto c = ControlClient::connect(path_, 5s);
    if (!c.is_ok()) return 10;
    auto reply = c->call("status", json::object(), 5s);
    if (!reply.is_ok()) return 11;
    if (reply->ok || reply->error_code != error_code::kPermissionDenied) return 12;
    if (reply->message.find("uid 65534") == std::string::npos) return 13;
    return 0;
  });
  start();
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);  // let the file mode through so the peer check is what refuses
  testing::internal::CaptureStderr();
  int code = nobody.run();
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 0);
  EXPECT_NE(log.find("refused pid"), std::string::npos) << log;
  EXPECT_NE(log.find("uid 65534 gid 65534"), std::string::npos) << log;
  EXPECT_TRUE(client().call("status", json::object(), 5s).value().ok);  // root still gets in
}

TEST_F(ControlTest, SocketModeKeepsOthersOut) {
  if (!is_root()) GTEST_SKIP() << "needs root to fork children as other users";
  PeerAs nobody(kNobody, kNogroup, {}, [&] {
    UniqueFd fd = raw_connect(path_);
    if (fd.valid() || errno != EACCES) return 10;
    auto c = ControlClient::connect(path_, 5s);
    if (c.is_ok()) return 11;
    if (c.status().code() != StatusCode::kPermission || c.status().sys_errno() != EACCES) return 12;
    return 0;
  });
  start();  // 0660, root's group
  EXPECT_EQ(nobody.run(), 0);
}

TEST_F(ControlTest, GroupMembersAreAllowed) {
  if (!is_root()) GTEST_SKIP() << "needs root to fork children as other users";
  auto check = [&] {
    auto c = ControlClient::connect(path_, 5s);
    if (!c.is_ok()) return 10;
    auto reply = c->call("whoami", json::object(), 5s);
    if (!reply.is_ok()) return 11;
    if (!reply->ok) return 12;
    if (reply->result["uid"] != kNobody) return 13;
    return 0;
  };
  PeerAs primary(kNobody, 1, {}, check);
  PeerAs supplementary(kNobody, kNogroup, {1}, check);
  PeerAs other(kNobody, kNogroup, {4242}, check);
  ServerOptions o = options();
  o.group = "1";
  start(std::move(o));
  EXPECT_EQ(primary.run(), 0) << "primary group";
  EXPECT_EQ(supplementary.run(), 0) << "supplementary group";
  EXPECT_EQ(other.run(), 10) << "other group: the file mode refuses it";
}

}  // namespace
}  // namespace ckpt::control
