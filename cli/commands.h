// One function per subcommand (one file each); main.cpp wires them into CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/daemon_access.h"

namespace ckpt::cli {

// Each adds its subcommand to `app`; the subcommand's callback stores its exit code in `*exit_code`. Live commands
// read `daemon` (the global --socket) when they run, after parsing.
// Offline only: they read a store directory.
void add_inspect_command(CLI::App& app, int* exit_code);
void add_verify_command(CLI::App& app, int* exit_code);
void add_repair_command(CLI::App& app, int* exit_code);
// Live, or offline with --store.
void add_list_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);
void add_restore_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);
void add_compact_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);
// Live only: they talk to ckptd.
void add_status_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);
void add_snapshot_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);
void add_epoch_loop_commands(CLI::App& app, const DaemonOptions& daemon, int* exit_code);  // pause, resume
void add_shutdown_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);
void add_console_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code);  // a Linux guest's

}  // namespace ckpt::cli
