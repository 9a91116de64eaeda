// Small helpers shared by the subcommands: human-readable sizes and times, error reporting, progress on a terminal.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace ckpt::cli {

std::string human_bytes(uint64_t bytes);      // "1.5 GiB"
std::string human_time_ns(uint64_t unix_ns);  // "2026-11-25 17:03:02 UTC"
// Prints "ckpt <command>: <status>" to stderr and returns the matching exit code.
int report_error(const std::string& command, const Status& status);
// A progress callback drawing a bar on stderr when it is a terminal; an empty function otherwise.
std::function<void(uint64_t, uint64_t)> terminal_progress(const std::string& label);

}  // namespace ckpt::cli
