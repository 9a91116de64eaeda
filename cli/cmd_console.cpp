// ckpt console [--follow | --attach] [--json]: the guest's serial console (live; only a Linux guest has one).
// Without flags it prints the output the daemon holds (its ring) and exits; --follow goes on printing new output
// until Ctrl-C or the daemon stops; --attach is an interactive session on a terminal: raw mode, typed bytes go to
// the guest, Ctrl-] detaches. docs/cli.md, "console".
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/reply_fields.h"
#include "common/base64.h"
#include "daemon/control/protocol.h"

namespace ckpt::cli {

namespace {

using std::chrono::milliseconds;
namespace code = control::error_code;

constexpr uint8_t kDetachByte = 0x1d;      // Ctrl-], as telnet
constexpr size_t kAttachContextBytes = 4096;  // what --attach shows first: enough to see the last prompt
constexpr uint64_t kFollowWaitMs = 2000;   // a follower's long poll (the protocol's maximum)
// --attach polls for output more often: the output thread must notice a detach quickly, and a poll is cheap.
constexpr uint64_t kAttachWaitMs = 250;
constexpr milliseconds kCallTimeout{30000};  // a poll is answered within its wait; past this the daemon is stuck
// How long typed bytes are offered again while the guest does not read its console, before they are dropped.
constexpr milliseconds kInputPatience{5000};

struct ConsoleArgs {
  bool follow = false;
  bool attach = false;
  bool json = false;
  std::optional<std::string> send;  // --send TEXT: type it, with C escapes, and exit
};

// --send's text with \n, \r, \t, \e, \\ and \xHH turned into their bytes: scripts type Enter and control keys.
Result<std::vector<uint8_t>> unescape(const std::string& text) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out.push_back(static_cast<uint8_t>(text[i]));
      continue;
    }
    if (++i == text.size()) return invalid_argument("--send: a lone backslash at the end of '" + text + "'");
    switch (text[i]) {
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'e': out.push_back(0x1b); break;
      case '\\': out.push_back('\\'); break;
      case 'x': {
        auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
        if (i + 2 >= text.size() || !hex(text[i + 1]) || !hex(text[i + 2])) {
          return invalid_argument("--send: \\x needs two hex digits in '" + text + "'");
        }
        out.push_back(static_cast<uint8_t>(std::stoi(text.substr(i + 1, 2), nullptr, 16)));
        i += 2;
        break;
      }
      default:
        return invalid_argument(std::string("--send: unknown escape \\") + text[i] + " in '" + text +
                                "' (\\n \\r \\t \\e \\\\ \\xHH)");
    }
  }
  return out;
}

struct Chunk {
  uint64_t start = 0, next = 0, lost = 0;
  std::vector<uint8_t> data;
  bool stopping = false;
};

Chunk parse_chunk(const nlohmann::json& r) {
  Chunk c;
  c.start = count_field(r, "start");
  c.next = count_field(r, "next");
  c.lost = count_field(r, "lost");
  c.stopping = field(r, "stopping").is_boolean() && field(r, "stopping").get<bool>();
  auto data = base64_decode(text_field(r, "data"));
  if (data.is_ok()) c.data = std::move(*data);
  return c;
}

nlohmann::json read_args(std::optional<uint64_t> after, size_t max, uint64_t wait_ms) {
  nlohmann::json args{{"max", max}, {"wait_ms", wait_ms}};
  if (after) args["after"] = *after;
  return args;
}

// Prints a chunk: the guest's bytes as they are (it is a terminal's output: escape sequences and all), or with
// --json one line {start, next, lost, data} whose data is text, invalid UTF-8 replaced by U+FFFD. A gap goes to
// stderr as a marker line; `raw_terminal` ends it with \r\n, which a terminal in raw mode needs.
void print_chunk(const Chunk& c, bool json, bool raw_terminal) {
  if (json) {
    nlohmann::json line{{"start", c.start}, {"next", c.next}, {"lost", c.lost},
                        {"data", std::string(c.data.begin(), c.data.end())}};
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fprintf(stdout, "%s\n", text.c_str());
    std::fflush(stdout);
    return;
  }
  if (c.lost > 0) {
    std::fflush(stdout);
    std::fprintf(stderr, "[ckpt: %llu bytes of console output lost]%s", static_cast<unsigned long long>(c.lost),
                 raw_terminal ? "\r\n" : "\n");
  }
  if (!c.data.empty()) {
    std::fwrite(c.data.data(), 1, c.data.size(), stdout);
    std::fflush(stdout);
  }
}

// The daemon is stopping (it said so, or refused with busy): the console has ended, which is not an error.
bool daemon_stopping(const DaemonAnswer& a, const Chunk* c) {
  if (a.error) return a.error->code == code::kBusy;
  return c && c->stopping && c->data.empty() && c->lost == 0;
}

void say_ended(bool raw_terminal) {
  std::fprintf(stderr, "[ckpt: ckptd is stopping; the console has ended]%s", raw_terminal ? "\r\n" : "\n");
}

// One poll, with one reconnect: the daemon may have closed an idle connection to make room for another client.
DaemonAnswer poll_once(DaemonConnection& conn, const nlohmann::json& args) {
  DaemonAnswer a = conn.call("console", args, kCallTimeout);
  if (a.error && conn.last_failure_was_transport() && a.error->exit_code != kExitUnreachable) {
    a = conn.call("console", args, kCallTimeout);
  }
  return a;
}

int run_print_or_follow(const DaemonOptions& daemon, const ConsoleArgs& args) {
  DaemonConnection conn(daemon);
  DaemonAnswer a = poll_once(conn, read_args(std::nullopt, control::kConsoleReadMax, 0));
  if (a.error) return report("console", *a.error, args.json);
  Chunk c = parse_chunk(a.result);
  print_chunk(c, args.json, false);
  if (!args.follow) return kExitOk;
  // Ctrl-C ends a follow, successfully: stdout was flushed after every chunk.
  signal(SIGINT, [](int) { _exit(kExitOk); });
  uint64_t next = c.next;
  for (;;) {
    a = poll_once(conn, read_args(next, control::kConsoleReadMax, kFollowWaitMs));
    if (a.error) {
      if (daemon_stopping(a, nullptr)) break;
      return report("console", *a.error, args.json);
    }
    c = parse_chunk(a.result);
    if (!c.data.empty() || c.lost > 0) print_chunk(c, args.json, false);
    if (daemon_stopping(a, &c)) break;
    next = c.next;
  }
  if (!args.json) say_ended(false);
  return kExitOk;
}

// The terminal as it was before raw mode; put back on every way out, signals included.
termios g_saved_terminal;
std::atomic<bool> g_terminal_raw{false};

void restore_terminal() {
  if (g_terminal_raw.exchange(false)) tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_terminal);
}

void restore_and_reraise(int sig) {
  restore_terminal();  // tcsetattr is async-signal-safe
  signal(sig, SIG_DFL);
  raise(sig);
}

class RawTerminal {
 public:
  Status enter() {
    if (tcgetattr(STDIN_FILENO, &g_saved_terminal) != 0) return Status::from_errno(errno, "tcgetattr on stdin");
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS}) signal(sig, restore_and_reraise);
    termios raw = g_saved_terminal;
    cfmakeraw(&raw);
    g_terminal_raw = true;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0) {
      g_terminal_raw = false;
      return Status::from_errno(errno, "put the terminal in raw mode");
    }
    return Status::ok();
  }
  ~RawTerminal() { restore_terminal(); }
};

// The output side of --attach, on a thread of its own with a connection of its own, so that typing never waits
// behind a long poll. It ends when told to or when the console ends, and then wakes the input loop via `wake_fd`.
struct OutputPump {
  std::atomic<bool> stop{false};
  std::optional<CliError> error;  // why it ended, unless the daemon was just stopping; read after join
  bool ended_by_daemon = false;

  void run(const DaemonOptions& daemon, int wake_fd) {
    DaemonConnection conn(daemon);
    std::optional<uint64_t> after;
    size_t max = kAttachContextBytes;
    while (!stop) {
      DaemonAnswer a = poll_once(conn, read_args(after, max, after ? kAttachWaitMs : 0));
      if (a.error) {
        if (daemon_stopping(a, nullptr)) ended_by_daemon = true;
        else error = *a.error;
        break;
      }
      Chunk c = parse_chunk(a.result);
      print_chunk(c, false, true);
      if (daemon_stopping(a, &c)) {
        ended_by_daemon = true;
        break;
      }
      after = c.next;
      max = control::kConsoleReadMax;
    }
    char byte = 1;
    (void)!::write(wake_fd, &byte, 1);
  }
};

// Sends typed bytes, offering what the guest's input queue did not take again for a while.
std::optional<CliError> send_input(DaemonConnection& conn, const uint8_t* bytes, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + kInputPatience;
  while (n > 0) {
    DaemonAnswer a = conn.call("console", {{"max", 0}, {"input", base64_encode({bytes, n})}}, kCallTimeout);
    if (a.error) return a.error;
    size_t accepted = std::min<size_t>(count_field(a.result, "input_accepted"), n);
    bytes += accepted;
    n -= accepted;
    if (n == 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "[ckpt: the guest is not reading its console; %zu typed bytes dropped]\r\n", n);
      break;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return std::nullopt;
}

int run_attach(const DaemonOptions& daemon) {
  // The console must exist before the terminal changes: errors print as usual.
  DaemonConnection input(daemon);
  DaemonAnswer probe = input.call("console", {{"max", 0}}, kCallTimeout);
  if (probe.error) return report("console", *probe.error);
  int wake[2];
  if (::pipe(wake) != 0) return report_error("console", Status::from_errno(errno, "pipe"));
  RawTerminal terminal;
  if (Status s = terminal.enter(); !s.is_ok()) return report_error("console", s);
  std::fprintf(stderr, "[ckpt: attached to the guest's console on %s; Ctrl-] detaches]\r\n",
               printable(socket_path(daemon)).c_str());
  OutputPump pump;
  std::thread output([&] { pump.run(daemon, wake[1]); });
  std::optional<CliError> input_error;
  bool detached = false;
  while (!detached && !input_error) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      input_error = error_from_status(Status::from_errno(errno, "poll stdin"));
      break;
    }
    if (fds[1].revents) break;  // the output side ended
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    uint8_t buf[1024];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the terminal went away
    size_t len = static_cast<size_t>(n);
    if (const void* at = std::memchr(buf, kDetachByte, len)) {
      len = static_cast<size_t>(static_cast<const uint8_t*>(at) - buf);
      detached = true;
    }
    if (len > 0) input_error = send_input(input, buf, len);
  }
  pump.stop = true;
  output.join();
  ::close(wake[0]);
  ::close(wake[1]);
  restore_terminal();
  if (detached) std::fprintf(stderr, "\n[ckpt: detached]\n");
  else if (pump.ended_by_daemon) say_ended(false);
  if (input_error) return report("console", *input_error);
  if (pump.error) return report("console", *pump.error);
  return kExitOk;
}

int run_send(const DaemonOptions& daemon, const std::string& text) {
  Result<std::vector<uint8_t>> bytes = unescape(text);
  if (!bytes.is_ok()) return report("console", {kExitUsage, std::string(code::kBadRequest), bytes.status().message()});
  DaemonConnection conn(daemon);
  if (std::optional<CliError> e = send_input(conn, bytes->data(), bytes->size())) return report("console", *e);
  return kExitOk;
}

int run_console(const DaemonOptions& daemon, const ConsoleArgs& args) {
  if (args.send) return run_send(daemon, *args.send);
  if (args.attach) {
    if (!isatty(STDIN_FILENO)) {
      return report("console", {kExitUsage, std::string(code::kBadRequest),
                                "--attach needs a terminal on stdin (it reads keys in raw mode); to print the "
                                "output use 'ckpt console' or 'ckpt console --follow'"});
    }
    return run_attach(daemon);
  }
  return run_print_or_follow(daemon, args);
}

}  // namespace

void add_console_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand("console", "Print (or follow, or attach to) the guest's serial console");
  cmd->footer(
      "Examples:\n"
      "  ckpt console                   the output the daemon holds (up to its last 256 KiB), then exit\n"
      "  ckpt console --follow          and go on printing new output until Ctrl-C\n"
      "  ckpt console --attach          an interactive session on this terminal; Ctrl-] detaches\n"
      "  ckpt console --follow --json   one JSON line per chunk: {start, next, lost, data}\n"
      "  ckpt console --send 'uptime\\n' type a line into the guest's console (no output)\n");
  auto args = std::make_shared<ConsoleArgs>();
  auto* follow = cmd->add_flag("--follow,-f", args->follow, "Keep printing new output until Ctrl-C or the daemon stops");
  auto* attach = cmd->add_flag("--attach", args->attach,
                               "Interactive: raw terminal, typed keys go to the guest, Ctrl-] detaches (needs a "
                               "terminal on stdin)");
  auto* json = cmd->add_flag("--json", args->json, "One JSON line per chunk of output (data as text; invalid UTF-8 "
                                                   "replaced by U+FFFD)");
  auto* send = cmd->add_option("--send", args->send,
                               "Type TEXT into the console and exit; \\n \\r \\t \\e \\\\ \\xHH are their bytes")
                   ->type_name("TEXT");
  attach->excludes(follow)->excludes(json);
  send->excludes(follow)->excludes(json)->excludes(attach);
  cmd->callback([=, &daemon] { *exit_code = run_console(daemon, *args); });
}

}  // namespace ckpt::cli
