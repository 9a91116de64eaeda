// ckpt repair --store DIR [--dry-run] [--json]: moves the epochs that cannot be restored (damaged, or whose chain runs
// through a damaged one) into DIR/damaged-<time>/, so that ckptd --resume continues from the newest intact epoch.
// Nothing is deleted. Offline: it takes the store's writer lock, so it fails (busy) while ckptd runs.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "snapshot/repair.h"

namespace ckpt::cli {

namespace {

int run_repair(const std::string& dir, bool dry_run, bool json) {
  snap::RepairOptions options;
  options.dry_run = dry_run;
  auto report = snap::repair_store(dir, options);
  if (!report.is_ok()) return report_error("repair", report.status(), json);
  if (json) {
    nlohmann::json moved = nlohmann::json::array();
    for (const auto& m : report->moved) moved.push_back({{"epoch", m.epoch}, {"error", m.why}});
    print_json({{"store", dir},
                {"dry_run", dry_run},
                {"epochs_checked", report->epochs_checked},
                {"moved", moved},
                {"moved_to", report->moved_to},
                {"newest_intact", report->newest_intact ? nlohmann::json(*report->newest_intact) : nullptr}});
    return kExitOk;
  }
  if (report->moved.empty()) {
    std::printf("%s: all %llu epochs are intact; nothing to repair\n", printable(dir).c_str(),
                static_cast<unsigned long long>(report->epochs_checked));
    return kExitOk;
  }
  for (const auto& m : report->moved) {
    std::printf("%s epoch %llu: %s\n", dry_run ? "would move" : "moved", static_cast<unsigned long long>(m.epoch),
                printable(m.why).c_str());
  }
  if (!dry_run) std::printf("moved %zu epochs to %s\n", report->moved.size(), printable(report->moved_to).c_str());
  if (report->newest_intact) {
    std::printf("ckptd --resume %s from epoch %llu\n", dry_run ? "would continue" : "continues",
                static_cast<unsigned long long>(*report->newest_intact));
  } else {
    std::printf("no intact epoch %s: ckptd would start a new VM with a new base\n", dry_run ? "would be left" : "is left");
  }
  return kExitOk;
}

}  // namespace

void add_repair_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "repair", "Move epochs that cannot be restored aside (into DIR/damaged-TIME/), so the daemon can resume (offline)");
  cmd->footer(
      "Examples:\n"
      "  ckpt repair --store /var/lib/ckptd --dry-run   what would move, and where ckptd would resume\n"
      "  systemctl stop ckptd; ckpt repair --store /var/lib/ckptd; systemctl start ckptd\n"
      "Nothing is deleted: the moved files stay in the damaged-* directory for inspection (ckpt inspect).\n");
  auto dir = std::make_shared<std::string>();
  auto dry_run = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--store", *dir, "Store directory (no daemon may be running on it)")->required()->type_name("DIR");
  cmd->add_flag("--dry-run", *dry_run, "Only report what would be moved");
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([=] { *exit_code = run_repair(*dir, *dry_run, *json); });
}

}  // namespace ckpt::cli
