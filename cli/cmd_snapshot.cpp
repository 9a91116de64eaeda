// ckpt snapshot [--tag TAG] [--json]: asks the daemon for an epoch now, outside the periodic schedule (live). The
// reply comes once the epoch is committed, so the printed epoch is already on disk.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/reply_fields.h"

namespace ckpt::cli {

namespace {

int run_snapshot(const DaemonOptions& daemon, const std::string& tag, bool json) {
  nlohmann::json args = nlohmann::json::object();
  if (!tag.empty()) args["tag"] = tag;
  // No timeout: the epoch waits for the one in flight, and a slow disk makes both slow, not wrong.
  DaemonAnswer a = call_daemon(daemon, "snapshot", args);
  if (a.error) return report("snapshot", *a.error, json);
  if (json) {
    print_json(a.result);
    return kExitOk;
  }
  const nlohmann::json& r = a.result;
  char pause[32];
  std::snprintf(pause, sizeof pause, "%.2f ms", number_field(r, "pause_ms"));
  // The whole epoch file; a daemon older than file_bytes says only stored_bytes (its compressed pages).
  std::string line = "epoch " + epoch_field(r, "epoch") + " committed: " + group_digits(count_field(r, "dirty_pages")) +
                     " dirty pages, pause " + pause + ", " + human_bytes(count_field(r, r.contains("file_bytes") ? "file_bytes" : "stored_bytes")) + " stored";
  if (!tag.empty()) line += ", tag " + tag;
  std::printf("%s\n", printable(line).c_str());
  return kExitOk;
}

}  // namespace

void add_snapshot_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand("snapshot", "Take an epoch now (optionally tagged) and print its number");
  cmd->footer(
      "Examples:\n"
      "  ckpt snapshot\n"
      "  ckpt snapshot --tag before-upgrade\n"
      "  epoch=$(ckpt snapshot --json | jq .epoch)\n");
  auto tag = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--tag", *tag, "A label stored with the epoch and shown by list (e.g. before-upgrade)");
  cmd->add_flag("--json", *json, "Print the daemon's reply as JSON");
  cmd->callback([=, &daemon] { *exit_code = run_snapshot(daemon, *tag, *json); });
}

}  // namespace ckpt::cli
