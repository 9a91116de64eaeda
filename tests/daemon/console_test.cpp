// The daemon's console (daemon/console.h) and the `console` command (handle_console), in-process: the ring and its
// offsets, long polls, console.log with its rotation bound and write failures, input forwarding; then the command
// against a Console fed by a real 16550 model standing in for the guest, directly and over a real control socket.
#include "daemon/console.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/base64.h"
#include "daemon/control/client.h"
#include "daemon/control/protocol.h"
#include "daemon/control/server.h"
#include "daemon/handlers.h"
#include "vmm/devices/serial_16550.h"

namespace ckpt::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string text_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ckpt-console-test-XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

ConsoleOptions ring_only(size_t ring_bytes) {
  ConsoleOptions o;
  o.ring_bytes = ring_bytes;
  return o;
}

TEST(Base64, RoundTripsAndRefusesMalformedText) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                      std::string("\0\xff\x80", 3)}) {
    auto back = base64_decode(base64_encode(bytes_of(s)));
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(text_of(*back), s);
  }
  EXPECT_EQ(base64_encode(bytes_of("foobar")), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(bytes_of("fo")), "Zm8=");
  for (const char* bad : {"Zm8", "Zm=8", "Z===", "Zm9v\n", "Zm9*", "=Zm9"}) {
    EXPECT_FALSE(base64_decode(bad).is_ok()) << bad;
  }
}

TEST(Console, RingWrapsAndCountsLostBytes) {
  Console c(ring_only(16));
  c.console_output(bytes_of("0123456789"));
  auto r = c.read(0, 100, 0ms);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->start, 0u);
  EXPECT_EQ(text_of(r->data), "0123456789");
  EXPECT_EQ(r->next, 10u);
  EXPECT_EQ(r->lost, 0u);
  c.console_output(bytes_of("abcdefghijklmnopqrst"));  // 30 bytes in all: the ring holds 14..29
  r = c.read(10, 100, 0ms);
  EXPECT_EQ(r->start, 14u);
  EXPECT_EQ(r->lost, 4u);
  EXPECT_EQ(text_of(r->data), "efghijklmnopqrst");
  EXPECT_EQ(r->next, 30u);
  r = c.read(20, 3, 0ms);  // a page
  EXPECT_EQ(text_of(r->data), "klm");
  EXPECT_EQ(r->next, 23u);
  r = c.read(std::nullopt, 5, 0ms);  // the newest bytes
  EXPECT_EQ(r->start, 25u);
  EXPECT_EQ(text_of(r->data), "pqrst");
  EXPECT_EQ(r->lost, 0u);
  c.console_output(bytes_of(std::string(40, 'x') + "END"));  // one write larger than the ring
  r = c.read(30, 100, 0ms);
  EXPECT_EQ(r->lost, 43u - 16u);
  EXPECT_EQ(text_of(r->data), std::string(13, 'x') + "END");
  EXPECT_EQ(c.end_offset(), 73u);
  EXPECT_FALSE(c.read(74, 10, 0ms).is_ok()) << "an offset past the end";
}

TEST(Console, LongPollWakesOnOutputAndTimesOut) {
  Console c(ring_only(1024));
  c.console_output(bytes_of("ab"));
  auto t0 = Clock::now();
  auto r = c.read(2, 100, 150ms);
  EXPECT_GE(Clock::now() - t0, 140ms);
  EXPECT_TRUE(r->data.empty());
  EXPECT_EQ(r->next, 2u);

  std::thread writer([&] {
    std::this_thread::sleep_for(100ms);
    c.console_output(bytes_of("c"));
  });
  t0 = Clock::now();
  r = c.read(2, 100, 10s);
  writer.join();
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_EQ(text_of(r->data), "c");
  EXPECT_FALSE(r->stopping);
}

TEST(Console, StopWaitingWakesReaders) {
  Console c(ring_only(1024));
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    c.stop_waiting();
  });
  auto t0 = Clock::now();
  auto r = c.read(0, 100, 10s);
  stopper.join();
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_TRUE(r->stopping);
  t0 = Clock::now();
  r = c.read(0, 100, 10s);
  EXPECT_LT(Clock::now() - t0, 1s) << "after stop_waiting reads return at once";
  c.console_output(bytes_of("late"));
  EXPECT_EQ(text_of(c.read(0, 100, 0ms)->data), "late") << "output is still kept";
}

TEST(Console, FlushesPeriodicallyAndAtShutdown) {
  TempDir dir;
  std::string log = dir.path() + "/console.log";
  {
    ConsoleOptions o;
    o.log_dir = dir.path();
    o.flush_interval = 50ms;
    Console c(o);
    c.console_output(bytes_of("boot\n"));
    auto deadline = Clock::now() + 5s;
    while (read_file(log) != "boot\n" && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(read_file(log), "boot\n") << "written by the flush thread without anyone asking";
  }
  {
    ConsoleOptions o;
    o.log_dir = dir.path();
    o.flush_interval = std::chrono::hours(1);
    Console c(o);  // a resumed daemon appends
    c.console_output(bytes_of("again\n"));
  }
  EXPECT_EQ(read_file(log), "boot\nagain\n") << "the destructor wrote what was left";
}

TEST(Console, RotationKeepsDiskBounded) {
  TempDir dir;
  ConsoleOptions o;
  o.log_dir = dir.path();
  o.log_max_bytes = 1000;
  o.flush_interval = std::chrono::hours(1);
  Console c(o);
  std::string all;
  for (int i = 0; i < 60; ++i) {
    std::string chunk = "line " + std::to_string(i) + std::string(static_cast<size_t>(i * 7 % 90), '.') + "\n";
    all += chunk;
    c.console_output(bytes_of(chunk));
    if (i % 7 == 0) c.flush();
  }
  c.flush();
  std::string now = read_file(dir.path() + "/console.log");
  std::string old = read_file(dir.path() + "/console.log.1");
  EXPECT_LE(now.size(), 1000u);
  EXPECT_EQ(old.size(), 1000u) << "a file is rotated exactly at the bound";
  ASSERT_GT(all.size(), 2000u);
  EXPECT_EQ(old + now, all.substr(all.size() - old.size() - now.size())) << "the newest output, in order";
  EXPECT_FALSE(fs::exists(dir.path() + "/console.log.2"));
  auto st = c.file_status();
  EXPECT_FALSE(st.failing);
  EXPECT_EQ(st.bytes_written, all.size());
}

// A file system error injected where root cannot override it: console.log is a symlink to /dev/full (ENOSPC).
TEST(Console, WriteFailureIsReportedAndTheRingKeepsWorking) {
  TempDir dir;
  std::string log = dir.path() + "/console.log";
  ASSERT_EQ(::symlink("/dev/full", log.c_str()), 0);
  ConsoleOptions o;
  o.log_dir = dir.path();
  o.flush_interval = std::chrono::hours(1);
  Console c(o);
  c.console_output(bytes_of("lost to the file\n"));
  c.flush();
  auto st = c.file_status();
  EXPECT_TRUE(st.failing);
  EXPECT_EQ(st.last_error.sys_errno(), ENOSPC) << st.last_error.to_string();
  EXPECT_NE(st.last_error.message().find(log), std::string::npos);
  EXPECT_EQ(st.bytes_missing, 17u);
  c.console_output(bytes_of("more\n"));
  c.flush();
  EXPECT_EQ(c.file_status().bytes_missing, 22u);
  EXPECT_EQ(text_of(c.read(0, 100, 0ms)->data), "lost to the file\nmore\n") << "the ring has everything";

  ASSERT_EQ(::unlink(log.c_str()), 0);  // the disk "recovers"
  c.console_output(bytes_of("back\n"));
  c.flush();
  st = c.file_status();
  EXPECT_FALSE(st.failing);
  EXPECT_FALSE(st.last_error.is_ok()) << "the last failure stays visible";
  std::string content = read_file(log);
  EXPECT_NE(content.find("[ckptd: 22 bytes of console output are missing here"), std::string::npos) << content;
  EXPECT_EQ(content.substr(content.size() - 5), "back\n");
}

TEST(Console, InputGoesToTheCurrentTarget) {
  Console c(ring_only(64));
  auto none = c.write_input(bytes_of("x"));
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("this guest has no console"), std::string::npos);
  std::string got;
  c.set_input_target([&](std::span<const uint8_t> b) {
    size_t n = std::min<size_t>(b.size(), 3);
    got.append(reinterpret_cast<const char*>(b.data()), n);
    return n;
  });
  EXPECT_EQ(*c.write_input(bytes_of("hello")), 3u);
  EXPECT_EQ(got, "hel");
  c.set_input_target({});
  EXPECT_FALSE(c.write_input(bytes_of("x")).is_ok());
}

// A guest stand-in: a 16550 whose output feeds the console and whose input comes from it, like a machine's.
struct FakeGuest {
  explicit FakeGuest(Console& console)
      : uart([](bool) {}, [&console](uint8_t b) { console.console_output({&b, 1}); }) {
    console.set_input_target([this](std::span<const uint8_t> b) { return uart.receive(b); });
  }
  void print(const std::string& s) {
    for (char ch : s) uart.write(0, static_cast<uint8_t>(ch));
  }
  std::string read_input() {
    std::string s;
    while (uart.read(5) & 0x01) s += static_cast<char>(uart.read(0));
    return s;
  }
  vmm::devices::Serial16550 uart;
};

control::Request request(nlohmann::json args) {
  control::Request r;
  r.cmd = "console";
  r.args = std::move(args);
  return r;
}

TEST(ConsoleCommand, NoConsoleIsNotFound) {
  control::Reply r = handle_console(nullptr, request(nlohmann::json::object()));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, control::error_code::kNotFound);
}

TEST(ConsoleCommand, ReadsOutputAndTypesInput) {
  Console console(ring_only(4096));
  FakeGuest guest(console);
  guest.print("login: ");
  control::Reply r = handle_console(&console, request(nlohmann::json::object()));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.result["start"], 0);
  EXPECT_EQ(text_of(*base64_decode(r.result["data"].get<std::string>())), "login: ");
  EXPECT_EQ(r.result["next"], 7);
  EXPECT_EQ(r.result["lost"], 0);
  EXPECT_EQ(r.result["input_accepted"], 0);
  EXPECT_EQ(r.result["stopping"], false);

  r = handle_console(&console, request({{"after", 7u}, {"input", base64_encode(bytes_of("root\r"))}}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.result["input_accepted"], 5);
  EXPECT_EQ(guest.read_input(), "root\r");
  guest.print("root\r\n# ");
  r = handle_console(&console, request({{"after", 7u}, {"max", 6u}}));
  EXPECT_EQ(text_of(*base64_decode(r.result["data"].get<std::string>())), "root\r\n");
  EXPECT_EQ(r.result["next"], 13);
}

TEST(ConsoleCommand, RefusesBadArguments) {
  Console console(ring_only(64));
  FakeGuest guest(console);
  for (const nlohmann::json& args :
       {nlohmann::json{{"max", control::kConsoleReadMax + 1}}, nlohmann::json{{"wait_ms", 2001u}},
        nlohmann::json{{"after", -1}}, nlohmann::json{{"after", 5u}}, nlohmann::json{{"input", "not base64!"}},
        nlohmann::json{{"input", 42}}}) {
    control::Reply r = handle_console(&console, request(args));
    EXPECT_FALSE(r.ok) << args.dump();
    EXPECT_EQ(r.error_code, control::error_code::kBadRequest) << args.dump() << ": " << r.message;
  }
  console.set_input_target({});
  control::Reply r = handle_console(&console, request({{"input", base64_encode(bytes_of("x"))}}));
  EXPECT_EQ(r.error_code, control::error_code::kNotFound);
}

// Through the real server and client: a long poll comes back when output arrives, well inside the client's timeout.
TEST(ConsoleCommand, LongPollOverTheControlSocket) {
  TempDir dir;
  Console console(ring_only(4096));
  FakeGuest guest(console);
  control::ServerOptions options;
  options.path = dir.path() + "/ckptd.sock";
  options.mode = 0600;
  options.handlers["console"] = [&](const control::Request& r, const control::PeerCredentials&) {
    return handle_console(&console, r);
  };
  auto server = control::ControlServer::start(std::move(options));
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  auto client = control::ControlClient::connect(dir.path() + "/ckptd.sock", 5s);
  ASSERT_TRUE(client.is_ok()) << client.status().to_string();
  std::thread guest_thread([&] {
    std::this_thread::sleep_for(200ms);
    guest.print("Welcome\r\n");
  });
  auto t0 = Clock::now();
  auto reply = client->call("console", {{"after", 0u}, {"wait_ms", 2000u}}, 10s);
  guest_thread.join();
  ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
  ASSERT_TRUE(reply->ok) << reply->message;
  EXPECT_LT(Clock::now() - t0, 1900ms) << "woken by the output, not the end of the wait";
  // The guest writes byte by byte, and a poll returns at the first new byte: read on until the line is there.
  std::string text = text_of(*base64_decode(reply->result["data"].get<std::string>()));
  while (text.size() < 9 && Clock::now() - t0 < 5s) {
    reply = client->call("console", {{"after", reply->result["next"]}, {"wait_ms", 2000u}}, 10s);
    ASSERT_TRUE(reply.is_ok() && reply->ok);
    text += text_of(*base64_decode(reply->result["data"].get<std::string>()));
  }
  EXPECT_EQ(text, "Welcome\r\n");
  // Nothing new: the wait runs out and the reply is empty, on the same connection.
  reply = client->call("console", {{"after", reply->result["next"]}, {"wait_ms", 100u}}, 10s);
  ASSERT_TRUE(reply.is_ok() && reply->ok);
  EXPECT_EQ(reply->result["data"], "");
  (*server)->stop();
}

}  // namespace
}  // namespace ckpt::daemon
