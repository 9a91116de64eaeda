// ckpt pause / ckpt resume: stop and restart the daemon's periodic epochs (live). The guest keeps running either way
// and `ckpt snapshot` still works; pause is for a moment when checkpoints would only cost, e.g. a bulk load whose
// intermediate states nobody will restore.
#include <cstdio>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"

namespace ckpt::cli {

namespace {

void add_one(CLI::App& app, const DaemonOptions& daemon, int* exit_code, const char* name, const char* description,
             const char* done) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->footer(
      "Example:\n"
      "  ckpt pause; bulk-load; ckpt resume   no periodic epochs during the load ('ckpt snapshot' still works)\n");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print the daemon's reply as JSON");
  cmd->callback([=, &daemon] {
    // No timeout: the loop takes the command between epochs, after the one being written.
    DaemonAnswer a = call_daemon(daemon, name);
    if (a.error) {
      *exit_code = report(name, *a.error, *json);
      return;
    }
    if (*json) print_json(a.result);
    else std::printf("%s\n", done);
    *exit_code = kExitOk;
  });
}

}  // namespace

void add_epoch_loop_commands(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  add_one(app, daemon, exit_code, "pause", "Stop taking periodic epochs until resume (the guest keeps running)",
          "periodic epochs paused: none until 'ckpt resume' (the guest keeps running; 'ckpt snapshot' still works)");
  add_one(app, daemon, exit_code, "resume", "Take periodic epochs again after pause",
          "periodic epochs resumed");
}

}  // namespace ckpt::cli
