// ckpt list --store DIR [--json]: the committed epochs of a store, oldest first.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/store_access.h"

namespace ckpt::cli {

namespace {

int run_list(const std::string& store_dir, bool json) {
  auto fs = open_read_fs();
  auto catalog = load_catalog(*fs, store_dir);
  if (!catalog.is_ok()) return report_error("list", catalog.status());
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [epoch, entry] : catalog->entries()) out.push_back(epoch_summary_json(epoch, entry));
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%8s  %-5s  %8s  %-23s  %10s  %10s  %6s  %s\n", "EPOCH", "KIND", "PARENT", "TIME", "PAGES", "STORED",
              "RATIO", "TAG");
  for (const auto& [epoch, entry] : catalog->entries()) {
    if (!entry.meta) {
      std::printf("%8llu  unreadable: %s\n", static_cast<unsigned long long>(epoch), entry.error.to_string().c_str());
      continue;
    }
    const snap::EpochMeta& m = *entry.meta;
    bool base = m.header.kind == snap::EpochKind::kBase;
    std::string parent = base ? "-" : std::to_string(m.parent);
    std::printf("%8llu  %-5s  %8s  %-23s  %10llu  %10s  %6s  %s\n", static_cast<unsigned long long>(epoch),
                base ? "base" : "delta", parent.c_str(), human_time_ns(m.timestamp_ns).c_str(),
                static_cast<unsigned long long>(m.stats.data_pages + m.stats.zero_pages),
                human_bytes(m.stats.stored_bytes).c_str(), compression_ratio(m.stats).c_str(), m.tag.c_str());
  }
  return kExitOk;
}

}  // namespace

void add_list_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("list", "List the committed epochs of a store, oldest first");
  auto store = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--store", *store, "Store directory")->required();
  cmd->add_flag("--json", *json, "Print JSON instead of a table");
  cmd->callback([=] { *exit_code = run_list(*store, *json); });
}

}  // namespace ckpt::cli
