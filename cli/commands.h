// One function per subcommand (one file each); main.cpp wires them into CLI11.
#pragma once

#include <CLI/CLI.hpp>

namespace ckpt::cli {

// Each adds its subcommand to `app`; the subcommand's callback stores its exit code in `*exit_code`.
void add_list_command(CLI::App& app, int* exit_code);
void add_inspect_command(CLI::App& app, int* exit_code);
void add_verify_command(CLI::App& app, int* exit_code);
void add_restore_command(CLI::App& app, int* exit_code);
void add_compact_command(CLI::App& app, int* exit_code);

}  // namespace ckpt::cli
