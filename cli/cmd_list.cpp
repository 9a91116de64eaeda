// ckpt list [--store DIR] [--json]: the epochs of a store, oldest first. Without --store it asks the running daemon
// (live); with --store it reads the directory (offline, no daemon needed). Both build the same JSON per epoch
// (daemon/control/epoch_json.h), so the table and --json look the same either way.
#include <cstdio>
#include <optional>
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

// Rows are printed as they arrive, page by page, so a store of any length lists in constant memory.
class EpochPrinter {
 public:
  explicit EpochPrinter(bool json_out) : json_(json_out) {
    if (json_) {
      std::printf("[");
    } else {
      std::printf("%8s  %-5s  %8s  %-23s  %10s  %10s  %6s  %s\n", "EPOCH", "KIND", "PARENT", "TIME", "PAGES",
                  "STORED", "RATIO", "TAG");
    }
  }
  void print(const json& e) {
    if (json_) {  // laid out as print_json lays out a whole array: each element indented by two more spaces
      std::string text = e.dump(2, ' ', false, json::error_handler_t::replace);
      std::string indented = "  ";
      for (char c : text) {
        indented += c;
        if (c == '\n') indented += "  ";
      }
      std::printf("%s\n%s", first_ ? "" : ",", indented.c_str());
      first_ = false;
      return;
    }
    std::string epoch = epoch_field(e, "epoch");
    if (field(e, "error").is_string()) {
      std::printf("%8s  unreadable: %s\n", epoch.c_str(), printable(text_field(e, "error")).c_str());
      return;
    }
    std::string kind = printable(text_field(e, "kind"));
    std::printf("%8s  %-5s  %8s  %-23s  %10llu  %10s  %6s  %s\n", epoch.c_str(), kind.c_str(),
                epoch_field(e, "parent").c_str(), human_time_ns(count_field(e, "timestamp_ns")).c_str(),
                static_cast<unsigned long long>(count_field(e, "data_pages") + count_field(e, "zero_pages")),
                human_bytes(count_field(e, "file_bytes")).c_str(),
                ratio_text(count_field(e, "raw_bytes"), count_field(e, "file_bytes")).c_str(),
                printable(text_field(e, "tag")).c_str());
  }
  void finish() {
    if (json_) std::printf("%s]\n", first_ ? "" : "\n");
  }

 private:
  bool json_;
  bool first_ = true;
};

int run_list(const DaemonOptions& daemon, const std::string& store_dir, bool json_out) {
  if (store_dir.empty()) {
    // Asked page by page (the daemon answers each from memory); a daemon that takes 30 s for one is stuck. Errors
    // are reported before anything is printed where possible: the first page is fetched first.
    std::optional<EpochPrinter> out;
    json args = json::object();
    for (;;) {
      DaemonAnswer a = call_daemon(daemon, "list", args, std::chrono::seconds(30));
      if (a.error) {
        if (!out) return report("list", *a.error, json_out);
        // Pages already printed: close what was started (JSON stays valid), and say on stderr why it is short.
        out->finish();
        std::fflush(stdout);
        return report("list", *a.error, /*json=*/false);
      }
      if (!out) out.emplace(json_out);
      if (field(a.result, "epochs").is_array()) {
        for (const json& e : field(a.result, "epochs")) out->print(e);
      }
      if (!field(a.result, "more").is_boolean() || !field(a.result, "more").get<bool>()) break;
      args["after"] = count_field(a.result, "next_after");
    }
    out->finish();
    return kExitOk;
  }
  auto fs = open_read_fs();
  auto catalog = load_catalog(*fs, store_dir);
  if (!catalog.is_ok()) return report_error("list", catalog.status(), json_out);
  EpochPrinter out(json_out);
  for (const auto& [epoch, entry] : catalog->entries()) out.print(control::epoch_summary_json(epoch, entry));
  out.finish();
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
