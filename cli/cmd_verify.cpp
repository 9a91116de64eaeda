// ckpt verify --store DIR [--epoch N] [--json]: checks every checksum and the chain structure, offline.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/numeric_option.h"
#include "cli/output.h"
#include "cli/store_access.h"
#include "snapshot/verify.h"

namespace ckpt::cli {

namespace {

int run_verify(const std::string& dir, std::optional<uint64_t> epoch, bool json) {
  auto fs = open_read_fs();
  snap::VerifyOptions options;
  options.epoch = epoch;
  if (!json) options.progress = terminal_progress("verify");
  // verify_store reads the catalog itself (every epoch's metadata): no second load just to see the store is there.
  auto report = snap::verify_store(*fs, dir, options);
  if (!report.is_ok()) return report_error("verify", report.status(), json);
  if (report->epochs_checked == 0) return report_error("verify", not_found(dir + " holds no committed epochs"), json);
  if (json) {
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : report->problems) {
      problems.push_back({{"epoch", p.epoch}, {"path", p.path}, {"error", p.status.to_string()}});
    }
    nlohmann::json out{{"ok", report->ok()},
                       {"epochs_checked", report->epochs_checked},
                       {"blocks_checked", report->blocks_checked},
                       {"bytes_checked", report->bytes_checked},
                       {"problems", problems}};
    print_json(out);
  } else if (report->ok()) {
    std::printf("ok: %llu epochs, %llu blocks, %s checked\n", static_cast<unsigned long long>(report->epochs_checked),
                static_cast<unsigned long long>(report->blocks_checked), human_bytes(report->bytes_checked).c_str());
  } else {
    const auto& first = report->problems.front();
    std::fprintf(stderr, "ckpt verify: first bad epoch %llu (%s): %s\n", static_cast<unsigned long long>(first.epoch),
                 printable(first.path).c_str(), printable(first.status.to_string()).c_str());
    for (size_t i = 1; i < report->problems.size(); ++i) {
      const auto& p = report->problems[i];
      std::fprintf(stderr, "  also epoch %llu: %s\n", static_cast<unsigned long long>(p.epoch),
                   printable(p.status.to_string()).c_str());
    }
  }
  return report->ok() ? kExitOk : kExitCorruption;
}

}  // namespace

void add_verify_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("verify", "Check every checksum and the chain of a store (offline)");
  cmd->footer(
      "Examples:\n"
      "  ckpt verify --store /var/lib/ckptd\n"
      "  ckpt verify --store /var/lib/ckptd --epoch 42   only what restoring epoch 42 reads\n");
  auto dir = std::make_shared<std::string>();
  auto epoch = std::make_shared<std::optional<uint64_t>>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--store", *dir, "Store directory")->required()->type_name("DIR");
  cmd->add_option("--epoch", *epoch, "Check only the chain this epoch restores from")
      ->type_name("N")
      ->transform(whole_number());
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([=] { *exit_code = run_verify(*dir, *epoch, *json); });
}

}  // namespace ckpt::cli
