// Small helpers shared by the subcommands: human-readable numbers, sizes and times, error reporting, progress on a
// terminal.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ckpt::cli {

std::string human_bytes(uint64_t bytes);      // "1.5 GiB"
std::string human_time_ns(uint64_t unix_ns);  // "2026-11-25 17:03:02 UTC"
std::string human_duration(double seconds);   // "42.3 s", "5m 07s", "3h 12m", "2d 04h"
std::string group_digits(uint64_t n);         // "12,345"
std::string ratio_text(uint64_t raw, uint64_t stored);  // raw / stored, "4.20x", "212x"; "-" when nothing stored

// Text from a store or the daemon (a tag, a path, an error message) made safe for a terminal and for one-line
// output: C-style escapes for control characters (\n, \t, \r, \x1b, ...), the backslash itself (\\), C1 controls
// and bidirectional overrides (\u009b, \u202e), and \xNN for each byte that is not valid UTF-8. Printable text,
// UTF-8 included, is unchanged. Every human output prints such text through this; --json needs no help (JSON
// escapes control characters itself).
std::string printable(std::string_view text);

// Why a subcommand failed, classified once so that every output agrees: the exit code (exit_codes.h), a stable
// code for --json (the daemon's protocol error code when it replied, else the same vocabulary: not_found,
// corruption, bad_request, permission_denied, busy, unreachable, failed) and the message for a human.
struct CliError {
  int exit_code = 1;
  std::string code;
  std::string message;
};

CliError error_from_status(const Status& status);

// Prints "ckpt <command>: <message>" to stderr and, when `json` is set, {"error":{"code":..,"message":..}} to
// stdout, so a script reading stdout always gets JSON. Returns the exit code.
int report(const std::string& command, const CliError& error, bool json = false);
int report_error(const std::string& command, const Status& status, bool json = false);

// A JSON document on stdout, indented like every --json output of ckpt.
void print_json(const nlohmann::json& j);

// A progress callback drawing a bar on stderr when it is a terminal; an empty function otherwise.
std::function<void(uint64_t, uint64_t)> terminal_progress(const std::string& label);

}  // namespace ckpt::cli
