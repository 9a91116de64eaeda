// ckpt: the command line for ckptd stores. See `ckpt --help` and docs/cli.md.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/log.h"

int main(int argc, char** argv) {
  CLI::App app{"ckpt - inspect, verify, restore and compact ckptd checkpoint stores"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ckpt 0.1.0");
  int exit_code = ckpt::cli::kExitOk;
  ckpt::set_log_level(ckpt::LogLevel::kWarn);
  ckpt::cli::add_list_command(app, &exit_code);
  ckpt::cli::add_inspect_command(app, &exit_code);
  ckpt::cli::add_verify_command(app, &exit_code);
  ckpt::cli::add_restore_command(app, &exit_code);
  ckpt::cli::add_compact_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? ckpt::cli::kExitOk : ckpt::cli::kExitUsage;
  }
  return exit_code;
}
