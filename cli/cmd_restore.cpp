// ckpt restore --store DIR --epoch N --to FILE: writes the guest memory of epoch N as a raw image, offline.
// (Restarting a running VM from an epoch goes through the daemon; that arrives with the daemon's control socket.)
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/store_access.h"
#include "snapshot/restore.h"

namespace ckpt::cli {

namespace {

int run_restore(const std::string& dir, std::optional<uint64_t> epoch, const std::string& to) {
  auto fs = open_read_fs();
  auto catalog = load_catalog(*fs, dir);
  if (!catalog.is_ok()) return report_error("restore", catalog.status());
  uint64_t target = epoch.value_or(*catalog->newest());
  snap::RestoreOptions options;
  options.progress = terminal_progress("restore");
  auto stats = snap::restore_to_file(*fs, *catalog, target, to, options);
  if (!stats.is_ok()) return report_error("restore", stats.status());
  std::printf("restored epoch %llu to %s: %llu data pages, %llu zero pages, %llu epochs in the chain, %s read\n",
              static_cast<unsigned long long>(target), to.c_str(), static_cast<unsigned long long>(stats->data_pages),
              static_cast<unsigned long long>(stats->zero_pages),
              static_cast<unsigned long long>(stats->epochs_in_chain), human_bytes(stats->bytes_read).c_str());
  return kExitOk;
}

}  // namespace

void add_restore_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("restore", "Write the guest memory of an epoch as a raw image file (offline)");
  auto dir = std::make_shared<std::string>();
  auto epoch = std::make_shared<std::optional<uint64_t>>();
  auto to = std::make_shared<std::string>();
  cmd->add_option("--store", *dir, "Store directory")->required();
  cmd->add_option("--epoch", *epoch, "Epoch to restore (default: the newest)");
  cmd->add_option("--to", *to, "Raw image file to write (created or replaced)")->required();
  cmd->callback([=] { *exit_code = run_restore(*dir, *epoch, *to); });
}

}  // namespace ckpt::cli
