// ckptd's settings: built-in defaults, then the config file (docs/operations.md, "Configuration"), then the command
// line, each later source overriding the earlier. One table (config.cpp) names every setting once: its key (the
// same in the file and as --key on the command line), its help text, and whether SIGHUP may change it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "daemon/disk_setting.h"
#include "snapshot/io/file_system.h"
#include "vmm/machine.h"
#include "vmm/machine_factory.h"

namespace ckpt::daemon {

// ckptd's exit codes, docs/operations.md "Exit codes". Scripts and systemd depend on them: never renumber.
enum DaemonExitCode : int {
  kExitClean = 0,    // stopped on request (SIGTERM, ckpt shutdown) with the final epoch committed
  kExitRuntime = 1,  // a failure after the settings were accepted: the store, the VM, the socket, the final epoch
  kExitUsage = 2,    // a bad command line or config file, or settings that do not fit the store; the guest never ran
};

struct DaemonConfig {
  // The VM.
  vmm::Backend backend = vmm::Backend::kAuto;
  vmm::MachineConfig machine = default_machine();
  std::string guest_setting = "auto";  // the guest key as given; machine.guest is what it resolved to
  std::vector<DiskSetting> disks;     // a Linux guest's disks, in the guest's order (vda, vdb, ...)
  // The store and the epoch pipeline.
  std::string store_dir = "/var/lib/ckptd";
  bool resume = false;
  bool lazy_restore = true;  // --resume and live restores run the guest before its memory is all in (LazyRestore)
  uint64_t epoch_ms = 100;
  int compression_level = 1;
  snap::WriteEngine write_engine = snap::WriteEngine::kAuto;
  uint64_t staging_bytes = 256ull << 20;
  uint64_t retention_keep_last = 1000;  // 0 = no limit
  uint64_t retention_keep_seconds = 0;  // 0 = no limit
  uint64_t retention_interval_s = 10;   // retention runs at most this often (it only removes files)
  uint64_t compact_max_chain = 1000;    // rebase the running chain at this many deltas; 0 = no limit
  double compact_max_read_amplification = 2.0;  // ... or when its files reach this multiple of its base; 0 = off
  // Access and observation.
  std::string socket_path = "/run/ckptd/ckptd.sock";
  std::string socket_group;   // empty: the daemon's own group
  std::string metrics_listen;  // empty: off; else a loopback host:port
  LogLevel log_level = LogLevel::kInfo;
  bool verify_final = false;   // after the final epoch, rebuild a fresh VM from it and compare its memory
  std::string record_digests;  // test-only: append "epoch N <xxh3 of all memory at its pause>" lines here
  // The settings the user gave, each with where ("/etc/ckptd/ckptd.conf:12" or "--vcpus"); a setting left at its
  // default is absent. A default may adapt (workload-hot-pages to a small memory; on resume, the VM's size and
  // workload to the store's), a value the user gave never does: it is used or refused.
  std::map<std::string, std::string> explicit_settings;

  static vmm::MachineConfig default_machine();
};

// The command line and config file, parsed. `argv` may hold --config FILE; `--help` and `--version` are reported
// through `exit_code` (set, with the text printed, when the process should exit right away: 0 for help, version
// and --print-config, kExitUsage for a command line CLI11 refuses). Any other failure is an error value; ckptd
// exits kExitUsage for it.
struct LoadedConfig {
  DaemonConfig config;
  std::string config_file;  // empty when none was given
  std::map<std::string, std::string> values;  // every setting's effective text, for logging and reload diffs
};
Result<LoadedConfig> load_config(int argc, const char* const* argv, int* exit_code);

// The config file's grammar (docs/operations.md, "Configuration"), for load_config and the fuzzer: 'key = value'
// lines of `text` into `values`; errors name `origin`, the line and the key. With `where`, each key read is also
// recorded there with its place, "origin:line", for apply_config_values' errors.
Status parse_config_text(std::string_view text, const std::string& origin, std::map<std::string, std::string>& values,
                         std::map<std::string, std::string>* where = nullptr);
// Converts every setting's text (a missing key takes its default) into `config`, then checks the settings against
// each other and the VM's limits. `where` holds the settings the user gave and where (parse_config_text's, or
// "--key"); it becomes config.explicit_settings. Errors name the place, the setting and the allowed values:
//   /etc/ckptd/ckptd.conf:7: vcpus = 64: 64 is outside 1..32 (the VM's limit)
Status apply_config_values(const std::map<std::string, std::string>& values, DaemonConfig& config,
                           const std::map<std::string, std::string>& where = {});

// Settings whose values differ between `before` and `after`, split by whether SIGHUP may apply them.
struct ConfigChanges {
  std::vector<std::string> reloadable;
  std::vector<std::string> need_restart;
};
ConfigChanges diff_config(const LoadedConfig& before, const LoadedConfig& after);

// The reference text for the config file: every key, its default and its help, as comments (ckptd --print-config).
std::string config_reference();

}  // namespace ckpt::daemon
