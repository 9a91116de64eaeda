// ckpt restore EPOCH: the running daemon restarts its VM from epoch EPOCH (live). It first commits the VM's current
// state as an epoch (tagged before-restore-to-EPOCH), so nothing is lost; later epochs build on EPOCH.
// ckpt restore --store DIR [--epoch N] [--disk I] --to FILE: writes the guest memory of epoch N (default: the
// newest), or with --disk its disk I (0 = the guest's vda), as a raw image file, offline.
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/numeric_option.h"
#include "cli/output.h"
#include "cli/reply_fields.h"
#include "cli/store_access.h"
#include "snapshot/format.h"
#include "snapshot/restore.h"

namespace ckpt::cli {

namespace {

struct RestoreArgs {
  std::optional<uint64_t> positional;  // ckpt restore 7
  std::optional<uint64_t> epoch;       // ckpt restore --epoch 7
  std::string store;
  std::string to;
  std::optional<uint64_t> disk;  // 0-based, in the guest's order
  bool json = false;
};

// Disk `index` (0-based) of `epoch`: the store numbers disks from 1.
Result<snap::DiskSpace> disk_at(const snap::Catalog& catalog, uint64_t epoch, uint64_t index) {
  CKPT_ASSIGN_OR_RETURN(std::vector<snap::DiskSpace> disks, snap::disks_of(catalog, epoch));
  if (index >= disks.size()) {
    return not_found("epoch " + std::to_string(epoch) + " has " + std::to_string(disks.size()) +
                     " disk(s); --disk counts from 0" + (disks.empty() ? "" : " (" + snap::describe_disks(disks) + ")"));
  }
  return disks[index];
}

int run_offline(const RestoreArgs& args, std::optional<uint64_t> epoch) {
  auto fs = open_read_fs();
  auto catalog = load_catalog(*fs, args.store);
  if (!catalog.is_ok()) return report_error("restore", catalog.status(), args.json);
  uint64_t target = epoch.value_or(*catalog->newest());
  snap::RestoreOptions options;
  if (!args.json) options.progress = terminal_progress("restore");
  std::optional<snap::DiskSpace> disk;
  if (args.disk) {
    auto found = disk_at(*catalog, target, *args.disk);
    if (!found.is_ok()) return report_error("restore", found.status(), args.json);
    disk = *found;
  }
  auto stats = disk ? snap::restore_disk_to_file(*fs, *catalog, target, disk->id, args.to, options)
                    : snap::restore_to_file(*fs, *catalog, target, args.to, options);
  if (!stats.is_ok()) return report_error("restore", stats.status(), args.json);
  if (disk) {
    if (args.json) {
      print_json({{"restored_epoch", target},
                  {"disk", *args.disk},
                  {"disk_name", disk->name},
                  {"to", args.to},
                  {"data_blocks", stats->data_pages},
                  {"zero_blocks", stats->zero_pages},
                  {"epochs_in_chain", stats->epochs_in_chain},
                  {"bytes_read", stats->bytes_read}});
      return kExitOk;
    }
    std::printf("restored disk %llu (%s) of epoch %llu to %s: %llu data blocks, %llu zero blocks, %llu epochs in the "
                "chain, %s read\n",
                static_cast<unsigned long long>(*args.disk), disk->name.c_str(),
                static_cast<unsigned long long>(target), args.to.c_str(),
                static_cast<unsigned long long>(stats->data_pages), static_cast<unsigned long long>(stats->zero_pages),
                static_cast<unsigned long long>(stats->epochs_in_chain), human_bytes(stats->bytes_read).c_str());
    return kExitOk;
  }
  if (args.json) {
    print_json({{"restored_epoch", target},
                {"to", args.to},
                {"data_pages", stats->data_pages},
                {"zero_pages", stats->zero_pages},
                {"epochs_in_chain", stats->epochs_in_chain},
                {"bytes_read", stats->bytes_read}});
    return kExitOk;
  }
  std::printf("restored epoch %llu to %s: %llu data pages, %llu zero pages, %llu epochs in the chain, %s read\n",
              static_cast<unsigned long long>(target), args.to.c_str(),
              static_cast<unsigned long long>(stats->data_pages), static_cast<unsigned long long>(stats->zero_pages),
              static_cast<unsigned long long>(stats->epochs_in_chain), human_bytes(stats->bytes_read).c_str());
  return kExitOk;
}

int run_live(const DaemonOptions& daemon, const RestoreArgs& args, uint64_t epoch) {
  // No timeout: the daemon replies once, when the new VM runs (or the old one still does), however long that takes.
  DaemonAnswer a = call_daemon(daemon, "restore", {{"epoch", epoch}});
  if (a.error) return report("restore", *a.error, args.json);
  if (args.json) {
    print_json(a.result);
    return kExitOk;
  }
  const nlohmann::json& r = a.result;
  std::string saved = field(r, "saved_epoch").is_number()
                          ? "its previous state is saved as epoch " + epoch_field(r, "saved_epoch")
                          : "its previous state was not saved";
  std::printf("restored the VM to epoch %s in %.2f s; %s\n", epoch_field(r, "restored_epoch").c_str(),
              number_field(r, "seconds"), saved.c_str());
  return kExitOk;
}

int run_restore(const DaemonOptions& daemon, const RestoreArgs& args) {
  if (args.positional && args.epoch && *args.positional != *args.epoch) {
    return report("restore", {kExitUsage, "bad_request", "two different epochs given: the argument and --epoch"},
                  args.json);
  }
  std::optional<uint64_t> epoch = args.positional ? args.positional : args.epoch;
  if (!args.to.empty()) {
    if (args.store.empty()) {
      return report("restore",
                    {kExitUsage, "bad_request", "--to writes a raw image from a store directory: give --store DIR"},
                    args.json);
    }
    return run_offline(args, epoch);
  }
  if (args.disk) {
    return report("restore",
                  {kExitUsage, "bad_request",
                   "--disk picks what an offline restore writes: give --store DIR and --to FILE too (a live restore "
                   "brings back every disk with the memory)"},
                  args.json);
  }
  if (!args.store.empty()) {
    return report("restore",
                  {kExitUsage, "bad_request",
                   "--store restores offline into an image file: give --to FILE (to restart the running VM from an "
                   "epoch, leave out --store)"},
                  args.json);
  }
  if (!epoch) {
    return report("restore",
                  {kExitUsage, "bad_request", "which epoch? 'ckpt restore N' (see 'ckpt list' for the epochs)"},
                  args.json);
  }
  return run_live(daemon, args, *epoch);
}

}  // namespace

void add_restore_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "restore", "Restart the running VM from an epoch, or write an epoch's memory or a disk to a file (--store, --to)");
  cmd->footer(
      "Examples:\n"
      "  ckpt restore 42            the running VM continues from epoch 42 (its current state is saved first)\n"
      "  ckpt restore --store /var/lib/ckptd --epoch 42 --to mem.img\n"
      "                             offline: epoch 42's memory as a raw image file\n"
      "  ckpt restore --store /var/lib/ckptd --epoch 42 --disk 0 --to vda.img\n"
      "                             offline: epoch 42's first disk (the guest's vda) as a raw image file\n");
  auto args = std::make_shared<RestoreArgs>();
  cmd->add_option("epoch", args->positional, "The epoch to restore")->type_name("N")->transform(whole_number());
  cmd->add_option("--epoch", args->epoch, "The same as the argument (offline default: the newest epoch)")
      ->type_name("N")
      ->transform(whole_number());
  cmd->add_option("--store", args->store, "Offline: read this store directory")->type_name("DIR");
  cmd->add_option("--to", args->to, "Offline: the raw image file to write (created or replaced)")->type_name("FILE");
  cmd->add_option("--disk", args->disk, "Offline: write the guest's disk I (0 = vda) instead of its memory")
      ->type_name("I")
      ->transform(whole_number(0, snap::format::kMaxDisks - 1));  // disk ids 1..kMaxDisks; I counts from 0
  cmd->add_flag("--json", args->json, "Print the result as JSON");
  cmd->callback([=, &daemon] { *exit_code = run_restore(daemon, *args); });
}

}  // namespace ckpt::cli
