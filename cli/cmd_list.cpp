// ckpt list [--store DIR] [--json]: the epochs of a store, oldest first. Without --store it asks the running daemon
// (live); with --store it reads the directory (offline, no daemon needed). Both build the same JSON per epoch
// (daemon/control/epoch_json.h), so the table and --json look the same either way.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/reply_fields.h"
#include "cli/store_access.h"
#include "daemon/control/epoch_json.h"

namespace ckpt::cli {

namespace {

using nlohmann::json;

void print_table(const json& epochs) {
  std::printf("%8s  %-5s  %8s  %-23s  %10s  %10s  %6s  %s\n", "EPOCH", "KIND", "PARENT", "TIME", "PAGES", "STORED",
              "RATIO", "TAG");
  for (const json& e : epochs) {
    std::string epoch = epoch_field(e, "epoch");
    if (field(e, "error").is_string()) {
      std::printf("%8s  unreadable: %s\n", epoch.c_str(), printable(text_field(e, "error")).c_str());
      continue;
    }
    std::string kind = printable(text_field(e, "kind"));
    std::printf("%8s  %-5s  %8s  %-23s  %10llu  %10s  %6s  %s\n", epoch.c_str(), kind.c_str(),
                epoch_field(e, "parent").c_str(), human_time_ns(count_field(e, "timestamp_ns")).c_str(),
                static_cast<unsigned long long>(count_field(e, "data_pages") + count_field(e, "zero_pages")),
                human_bytes(count_field(e, "stored_bytes")).c_str(),
                ratio_text(count_field(e, "raw_bytes"), count_field(e, "stored_bytes")).c_str(),
                printable(text_field(e, "tag")).c_str());
  }
}

int run_list(const DaemonOptions& daemon, const std::string& store_dir, bool json_out) {
  json epochs = json::array();
  if (store_dir.empty()) {
    // Reading the catalog is quick; a daemon that takes this long is stuck.
    DaemonAnswer a = call_daemon(daemon, "list", json::object(), std::chrono::seconds(30));
    if (a.error) return report("list", *a.error, json_out);
    if (field(a.result, "epochs").is_array()) epochs = field(a.result, "epochs");
  } else {
    auto fs = open_read_fs();
    auto catalog = load_catalog(*fs, store_dir);
    if (!catalog.is_ok()) return report_error("list", catalog.status(), json_out);
    for (const auto& [epoch, entry] : catalog->entries()) epochs.push_back(control::epoch_summary_json(epoch, entry));
  }
  if (json_out) print_json(epochs);
  else print_table(epochs);
  return kExitOk;
}

}  // namespace

void add_list_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand("list", "List the epochs of the daemon's store (or of --store DIR), oldest first");
  cmd->footer(
      "Examples:\n"
      "  ckpt list                              ask the running daemon\n"
      "  ckpt list --store /var/lib/ckptd       read the store directly (offline)\n"
      "  ckpt list --json | jq '.[] | select(.tag != \"\")'   the tagged epochs\n");
  auto store = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--store", *store, "Read this store directory instead of asking the daemon (offline)")
      ->type_name("DIR");
  cmd->add_flag("--json", *json, "Print a JSON array, one object per epoch, instead of a table");
  cmd->callback([=, &daemon] { *exit_code = run_list(daemon, *store, *json); });
}

}  // namespace ckpt::cli
