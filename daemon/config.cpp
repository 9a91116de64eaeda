#include "daemon/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <set>
#include <sstream>

#include "common/log.h"
#include "common/unique_fd.h"
#include "vmm/guest/guest_abi.h"
#include "vmm/guest/guest_image.h"

namespace ckpt::daemon {
namespace {

using Apply = Status (*)(const std::string& text, DaemonConfig& c);

struct Setting {
  const char* key;
  const char* fallback;  // the default, as text
  const char* help;
  bool reloadable;       // SIGHUP applies a new value without a restart
  bool flag;             // a boolean: --key alone on the command line means true
  Apply apply;
  // May be given more than once: each `key = value` line of the file and each --key adds one value; the values
  // are kept one per line (no value can hold a newline). The command line's replace the file's.
  bool repeatable = false;
};

// The lines of a repeatable setting's text.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Result<uint64_t> parse_u64(const std::string& text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return invalid_argument("'" + text + "' is not a whole number in " + std::to_string(min) + ".." +
                            std::to_string(max));
  }
  if (v < min || v > max) {
    return invalid_argument(text + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  }
  return v;
}

Result<bool> parse_bool(const std::string& text) {
  if (text == "true" || text == "yes" || text == "1" || text == "on") return true;
  if (text == "false" || text == "no" || text == "0" || text == "off") return false;
  return invalid_argument("'" + text + "' is not true or false");
}

#define CKPT_NUMBER_SETTING(field, min, max)                    \
  [](const std::string& t, DaemonConfig& c) -> Status {         \
    CKPT_ASSIGN_OR_RETURN(uint64_t v, parse_u64(t, min, max));  \
    c.field = static_cast<decltype(c.field)>(v);                \
    return Status::ok();                                        \
  }
#define CKPT_TEXT_SETTING(field)                        \
  [](const std::string& t, DaemonConfig& c) -> Status { \
    c.field = t;                                        \
    return Status::ok();                                \
  }

constexpr uint64_t kMaxU64 = ~uint64_t{0};

// The VM's limits live in vmm/guest/guest_abi.h (the guest's memory layout sets them); the settings only refer to
// them. Memory comes in 2 MiB pages and must exceed the guest's system area below kWorkloadGpa.
constexpr uint64_t kMaxMemoryMib = vmm::guest::kMaxMemoryBytes >> 20;
constexpr uint64_t kMinMemoryMib = 2;
static_assert((kMinMemoryMib << 20) > vmm::guest::kWorkloadGpa && kMaxMemoryMib % 2 == 0);
constexpr uint64_t kMaxLinuxMemoryMib = 3072;

const Setting kSettings[] = {
    {"store", "/var/lib/ckptd", "Store directory (created if missing)", false, false, CKPT_TEXT_SETTING(store_dir)},
    {"resume", "false", "Rebuild the VM from the store's newest committed epoch instead of creating it", false, true,
     [](const std::string& t, DaemonConfig& c) -> Status {
       CKPT_ASSIGN_OR_RETURN(c.resume, parse_bool(t));
       return Status::ok();
     }},
    {"backend", "auto", "auto (KVM where /dev/kvm works, else software), kvm or software", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       return vmm::parse_backend(t, &c.backend) ? Status::ok() : invalid_argument("unknown backend '" + t + "'");
     }},
    {"tracking", "auto", "Dirty tracking: auto, ring, clear-log, dirty-log (KVM); uffd-wp, conservative (software)",
     false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       return vmm::parse_tracking_mode(t, &c.machine.tracking) ? Status::ok()
                                                              : invalid_argument("unknown tracking mode '" + t + "'");
     }},
    {"memory-mib", "256", "Guest memory in MiB (even)", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       CKPT_ASSIGN_OR_RETURN(uint64_t mib, parse_u64(t, kMinMemoryMib, kMaxMemoryMib));
       if (mib % 2) return invalid_argument(t + " is odd (guest memory comes in 2 MiB pages)");
       c.machine.memory_bytes = mib << 20;
       return Status::ok();
     }},
    {"vcpus", "2", "Number of vCPUs", false, false, CKPT_NUMBER_SETTING(machine.vcpus, 1, vmm::guest::kMaxVcpus)},
    {"dirty-ring-entries", "4096", "KVM dirty ring entries per vCPU (a power of two, >= 256)", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       CKPT_ASSIGN_OR_RETURN(uint64_t n, parse_u64(t, 256, 1u << 20));
       if (n & (n - 1)) return invalid_argument(t + " is not a power of two");
       c.machine.dirty_ring_entries = static_cast<uint32_t>(n);
       return Status::ok();
     }},
    {"guest", "auto", "What the VM runs: builtin (the workload loops below), linux (needs kernel) or auto (linux when "
     "kernel is set)", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       c.guest_setting = t;
       vmm::GuestKind kind;
       if (t == "auto" || vmm::parse_guest_kind(t, &kind)) return Status::ok();
       return invalid_argument("unknown guest '" + t + "' (builtin, linux or auto)");
     }},
    {"kernel", "", "Linux guest: the kernel to boot, a bzImage (or an uncompressed x86-64 vmlinux)", false, false,
     CKPT_TEXT_SETTING(machine.linux_guest.kernel)},
    {"initrd", "", "Linux guest: the initramfs (empty: none)", false, false, CKPT_TEXT_SETTING(machine.linux_guest.initrd)},
    {"cmdline", "console=ttyS0 reboot=t panic=-1", "Linux guest: the kernel command line", false, false,
     CKPT_TEXT_SETTING(machine.linux_guest.cmdline)},
    {"disk", "",
     "Linux guest: a raw disk image (PATH, or PATH,ro for read-only), copied into the store at the first start; "
     "repeat for more disks (vda, vdb, ...; at most 8)", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       c.disks.clear();
       for (const std::string& line : lines_of(t)) {
         CKPT_ASSIGN_OR_RETURN(DiskSetting disk, parse_disk_setting(line));
         c.disks.push_back(disk);
       }
       if (c.disks.size() > kMaxDisks) {
         return invalid_argument(std::to_string(c.disks.size()) + " disks: a guest has at most " +
                                 std::to_string(kMaxDisks));
       }
       return Status::ok();
     },
     /*repeatable=*/true},
    {"workload", "hot-set", "Built-in guest workload: random-writer, hot-set, sweep or idle", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       return vmm::parse_workload_kind(t, &c.machine.workload.kind) ? Status::ok()
                                                                    : invalid_argument("unknown workload '" + t + "'");
     }},
    {"workload-seed", "1", "Seed of the guest's write pattern", false, false,
     CKPT_NUMBER_SETTING(machine.workload.seed, 0, kMaxU64)},
    {"workload-writes", "16", "Page writes per guest iteration", false, false,
     CKPT_NUMBER_SETTING(machine.workload.writes_per_iteration, 1, 1u << 20)},
    {"workload-hot-pages", "1024",
     "Pages in the hot set (hot-set workload); at most each vCPU's share of memory, to which the default shrinks",
     false, false,
     CKPT_NUMBER_SETTING(machine.workload.hot_pages, 1, kMaxU64)},
    {"workload-delay-loops", "20000", "Pause instructions between guest iterations (lower writes faster)", false,
     false, CKPT_NUMBER_SETTING(machine.workload.delay_loops, 0, kMaxU64)},
    {"epoch-ms", "100", "Epoch interval in milliseconds", true, false, CKPT_NUMBER_SETTING(epoch_ms, 1, 86400000)},
    {"compression-level", "1", "zstd level of data blocks (-7..19)", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       int v = 0;
       auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
       if (ec != std::errc() || end != t.data() + t.size() || v < -7 || v > 19) {
         return invalid_argument("'" + t + "' is not a zstd level in -7..19");
       }
       c.compression_level = v;
       return Status::ok();
     }},
    {"io-engine", "auto", "Store writes: auto (io_uring where it works), io_uring or pwrite", false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       if (t == "auto") c.write_engine = snap::WriteEngine::kAuto;
       else if (t == "io_uring") c.write_engine = snap::WriteEngine::kIoUring;
       else if (t == "pwrite") c.write_engine = snap::WriteEngine::kPwrite;
       else return invalid_argument("unknown io engine '" + t + "'");
       return Status::ok();
     }},
    {"staging-mib", "256", "Staging area for dirty pages copied at a pause; bigger epochs are written while paused",
     false, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       CKPT_ASSIGN_OR_RETURN(uint64_t mib, parse_u64(t, 1, 1u << 20));
       c.staging_bytes = mib << 20;
       return Status::ok();
     }},
    {"retention-keep-last", "1000", "Keep the newest N epochs (0: no limit)", true, false,
     CKPT_NUMBER_SETTING(retention_keep_last, 0, kMaxU64)},
    {"retention-keep-seconds", "0", "Keep epochs younger than this many seconds (0: no limit)", true, false,
     CKPT_NUMBER_SETTING(retention_keep_seconds, 0, kMaxU64)},
    {"retention-interval", "10", "Apply retention at most once per this many seconds", true, false,
     CKPT_NUMBER_SETTING(retention_interval_s, 1, 86400 * 366)},
    {"restore", "lazy",
     "How --resume and 'ckpt restore' bring memory back: lazy (the guest runs at once, pages come on first access "
     "and from a background filler) or eager (every page before the guest runs)",
     true, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       if (t == "lazy") c.lazy_restore = true;
       else if (t == "eager") c.lazy_restore = false;
       else return invalid_argument("'" + t + "' is neither lazy nor eager");
       return Status::ok();
     }},
    {"compact-max-chain", "1000",
     "Rebase the running VM's chain in the background once it holds this many deltas (0: no limit)", true, false,
     CKPT_NUMBER_SETTING(compact_max_chain, 0, 1000000)},
    {"compact-max-read-amplification", "2",
     "... or once its files reach this multiple of its base's size (a decimal in 1.1..1000; 0: no limit)", true, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       double v = 0;
       auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
       if (ec != std::errc() || end != t.data() + t.size() || !(v == 0 || (v >= 1.1 && v <= 1000))) {
         return invalid_argument("'" + t + "' is not 0 or a decimal in 1.1..1000");
       }
       c.compact_max_read_amplification = v;
       return Status::ok();
     }},
    {"socket", "/run/ckptd/ckptd.sock", "Control socket path", false, false, CKPT_TEXT_SETTING(socket_path)},
    {"socket-group", "", "Group allowed to use the control socket (mode 0660); empty: the daemon's group", false,
     false, CKPT_TEXT_SETTING(socket_group)},
    {"metrics-listen", "", "Prometheus metrics on this loopback host:port (empty: off)", false, false,
     CKPT_TEXT_SETTING(metrics_listen)},
    {"log-level", "info", "debug, info, warn or error", true, false,
     [](const std::string& t, DaemonConfig& c) -> Status {
       return parse_log_level(t, &c.log_level) ? Status::ok() : invalid_argument("unknown log level '" + t + "'");
     }},
    {"verify-final", "false",
     "At shutdown, rebuild a fresh VM from the final epoch and compare its memory with the paused guest's", false,
     true,
     [](const std::string& t, DaemonConfig& c) -> Status {
       CKPT_ASSIGN_OR_RETURN(c.verify_final, parse_bool(t));
       return Status::ok();
     }},
    {"record-digests", "", "Test only: append each epoch's full-memory digest, taken at its pause, to this file",
     false, false, CKPT_TEXT_SETTING(record_digests)},
};

const Setting* find_setting(const std::string& key) {
  for (const Setting& s : kSettings) {
    if (key == s.key) return &s;
  }
  return nullptr;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// open(2) and fstat rather than an ifstream, which opens a directory without complaint and reads it as empty.
Status read_config_file(const std::string& path, std::map<std::string, std::string>& values,
                        std::map<std::string, std::string>& where) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "config file " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno(errno, "config file " + path);
  if (S_ISDIR(st.st_mode)) return invalid_argument("config file " + path + " is a directory, not a file");
  if (!S_ISREG(st.st_mode)) return invalid_argument("config file " + path + " is not a regular file");
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "read config file " + path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return parse_config_text(text, path, values, &where);
}

// Where a setting's text came from, for its error: "FILE:LINE: key = value", "--key value", or "key (default v)".
std::string setting_place(const Setting& s, const std::string& text,
                          const std::map<std::string, std::string>& where) {
  auto it = where.find(s.key);
  if (it == where.end()) return std::string(s.key) + " (default " + (s.fallback[0] ? s.fallback : "\"\"") + ")";
  if (it->second.starts_with("--")) return it->second + " " + text;
  return it->second + ": " + s.key + " = " + text;
}

// The checks between settings, after each is valid alone. A hot set larger than a vCPU's region is refused by the
// guest (validate_control); the default (1024 pages, 4 MiB) shrinks to fit a small memory instead, while a value
// the user gave is refused here, with the range that would fit.
Status check_workload_fits(DaemonConfig& config, const std::map<std::string, std::string>& where) {
  vmm::MachineConfig& m = config.machine;
  if (m.guest != vmm::GuestKind::kBuiltin) return Status::ok();
  uint64_t region = vmm::guest::region_pages_each(m.memory_bytes, m.vcpus);
  if (m.workload.hot_pages <= region) return Status::ok();
  auto given = where.find("workload-hot-pages");
  if (given == where.end()) {
    m.workload.hot_pages = region;
    return Status::ok();
  }
  if (m.workload.kind != vmm::guest::WorkloadKind::kHotSet) return Status::ok();  // unused by other workloads
  std::string place = given->second.starts_with("--") ? given->second + " " + std::to_string(m.workload.hot_pages)
                                                      : given->second + ": workload-hot-pages = " +
                                                            std::to_string(m.workload.hot_pages);
  return invalid_argument(place + ": the hot set must fit in each vCPU's region, which is " + std::to_string(region) +
                          " pages here ((memory-mib " + std::to_string(m.memory_bytes >> 20) + " - 1 MiB) / 4 KiB / " +
                          std::to_string(m.vcpus) + " vCPUs): allowed 1.." + std::to_string(region));
}

// A regular file this process can read (the kernel and initrd are read only when the VM is made).
Status check_readable_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno(errno, "fstat");
  if (!S_ISREG(st.st_mode)) return invalid_argument("not a regular file");
  return Status::ok();
}

// guest = auto means linux when a kernel is set. A Linux guest needs the KVM backend and, for now, fits below the
// 32-bit MMIO hole (the LAPIC and IOAPIC at 0xfec00000 and up; guest memory is one run from address 0).
Status resolve_guest(DaemonConfig& config, const std::map<std::string, std::string>& where) {
  vmm::MachineConfig& m = config.machine;
  const std::string& kernel = m.linux_guest.kernel;
  if (config.guest_setting == "auto") {
    m.guest = kernel.empty() ? vmm::GuestKind::kBuiltin : vmm::GuestKind::kLinux;
  } else {
    vmm::parse_guest_kind(config.guest_setting, &m.guest);
  }
  auto place = [&](const char* key) {
    auto it = where.find(key);
    return it == where.end() ? std::string(key) : it->second;
  };
  if (m.guest == vmm::GuestKind::kBuiltin) {
    for (const char* key : {"kernel", "initrd", "disk"}) {
      if (where.count(key)) {
        return invalid_argument(place(key) + ": a " + key + " is set but guest = builtin (the built-in loops boot no "
                                "kernel and drive no disk): remove one of them");
      }
    }
    return Status::ok();
  }
  if (kernel.empty()) return invalid_argument(place("guest") + ": guest = linux needs a kernel (--kernel FILE)");
  if (config.backend == vmm::Backend::kSoftware) {
    return invalid_argument(place("backend") + ": a Linux guest needs the KVM backend, not software");
  }
  for (const auto& [key, given] : where) {
    if (key.starts_with("workload")) {
      return invalid_argument(given + ": " + key + " is a setting of the built-in guest, and this one is linux");
    }
  }
  for (const auto& [key, path] : {std::pair<const char*, std::string>{"kernel", kernel}, {"initrd", m.linux_guest.initrd}}) {
    if (path.empty()) continue;
    Status readable = check_readable_file(path);
    if (!readable.is_ok()) return readable.with_context(place(key) + " " + path);
  }
  // On resume the disks are the store's (the files are not read again): resume checks their number instead.
  for (size_t i = 0; i < config.disks.size() && !config.resume; ++i) {
    Result<uint64_t> size = check_disk_source(config.disks[i].path);
    if (!size.is_ok()) return size.status().with_context(place("disk"));
  }
  if (m.memory_bytes > (kMaxLinuxMemoryMib << 20)) {
    return invalid_argument(place("memory-mib") + ": a Linux guest has at most " +
                            std::to_string(kMaxLinuxMemoryMib) + " MiB for now (memory must stay below the " +
                            "LAPIC and IOAPIC at 3 GiB and up), not " + std::to_string(m.memory_bytes >> 20));
  }
  return Status::ok();
}

// Cuts the comment off a line: '#' starts one at the start of the line or after a space or tab, so a '#' inside a
// word ("ops#1") stays. A value in double quotes is taken whole, '#' included; anything but a comment after its
// closing quote is an error. Returns the line without its comment, or an error message.
Result<std::string> strip_comment(const std::string& line) {
  size_t first = line.find_first_not_of(" \t");
  if (first != std::string::npos && line[first] == '#') return std::string();  // a comment line, quotes and all
  size_t eq = line.find('=');
  size_t open = eq == std::string::npos ? std::string::npos : line.find_first_not_of(" \t", eq + 1);
  if (open != std::string::npos && line[open] == '"') {
    size_t close = line.find('"', open + 1);
    if (close == std::string::npos) return invalid_argument("unterminated quote in '" + line + "'");
    size_t rest = line.find_first_not_of(" \t\r", close + 1);
    if (rest != std::string::npos && !(line[rest] == '#' && rest > close + 1)) {
      return invalid_argument("text after the closing quote in '" + line + "'");
    }
    return line.substr(0, close + 1);
  }
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) return line.substr(0, i);
  }
  return line;
}

}  // namespace

// "key = value" lines; '#' at the start of a line or after whitespace starts a comment; values may be
// double-quoted (then a '#' inside them is kept).
Status parse_config_text(std::string_view text, const std::string& origin, std::map<std::string, std::string>& values,
                         std::map<std::string, std::string>* places) {
  std::istringstream in{std::string(text)};
  std::string line;
  std::set<std::string> seen;  // keys of this text so far
  for (int n = 1; std::getline(in, line); ++n) {
    std::string place = origin + ":" + std::to_string(n);
    std::string where = place + ": ";
    Result<std::string> uncommented = strip_comment(line);
    if (!uncommented.is_ok()) return uncommented.status().with_context(place);
    std::string t = trim(*uncommented);
    if (t.empty()) continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) return invalid_argument(where + "expected 'key = value', got '" + t + "'");
    std::string key = trim(t.substr(0, eq)), value = trim(t.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    const Setting* setting = find_setting(key);
    if (!setting) return invalid_argument(where + "unknown setting '" + key + "'");
    if (setting->repeatable && !seen.insert(key).second) {
      values[key] += "\n" + value;  // another value of this text's (its first replaced what was there)
    } else {
      values[key] = value;
      seen.insert(key);
    }
    if (places) (*places)[key] = place;
  }
  return Status::ok();
}

Status apply_config_values(const std::map<std::string, std::string>& values, DaemonConfig& config,
                           const std::map<std::string, std::string>& where) {
  for (const Setting& s : kSettings) {
    auto it = values.find(s.key);
    const std::string text = it == values.end() ? s.fallback : it->second;
    Status st = s.apply(text, config);
    if (!st.is_ok()) return st.with_context(setting_place(s, text, where));
  }
  CKPT_RETURN_IF_ERROR(resolve_guest(config, where));
  CKPT_RETURN_IF_ERROR(check_workload_fits(config, where));
  config.explicit_settings = where;
  return Status::ok();
}

vmm::MachineConfig DaemonConfig::default_machine() {
  vmm::MachineConfig m;
  m.vcpus = 2;
  m.workload.kind = vmm::guest::WorkloadKind::kHotSet;
  m.workload.writes_per_iteration = 16;
  m.workload.hot_pages = 1024;
  m.workload.delay_loops = 20000;
  return m;
}

Result<LoadedConfig> load_config(int argc, const char* const* argv, int* exit_code) {
  *exit_code = -1;
  CLI::App app{"ckptd - incremental checkpoint/restore daemon for a virtual machine.\n"
               "Settings come from the defaults, then --config FILE (key = value lines), then the command line."};
  app.set_version_flag("--version", "ckptd 0.1.0");
  LoadedConfig loaded;
  bool print_config = false;
  app.add_option("--config", loaded.config_file, "Config file of 'key = value' lines (keys as the options below)");
  app.add_flag("--print-config", print_config, "Print every setting with its default and help, then exit");
  std::map<std::string, std::string> cli;
  std::map<std::string, std::vector<std::string>> repeated;
  std::map<std::string, bool> flags;
  for (const Setting& s : kSettings) {
    std::string help = std::string(s.help) + " [" + (s.fallback[0] ? s.fallback : "\"\"") + "]";
    if (s.flag) app.add_flag("--" + std::string(s.key), flags[s.key], help);
    else if (s.repeatable) app.add_option("--" + std::string(s.key), repeated[s.key], help)->allow_extra_args(false);
    else app.add_option("--" + std::string(s.key), cli[s.key], help);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105, 109, ...) mean nothing to systemd or a script: help is 0, every refusal a usage error.
    *exit_code = app.exit(e) == 0 ? kExitClean : kExitUsage;
    return Status(StatusCode::kAborted, "command line");
  }
  if (print_config) {
    std::fputs(config_reference().c_str(), stdout);
    *exit_code = 0;
    return Status(StatusCode::kAborted, "printed the config reference");
  }
  for (const Setting& s : kSettings) loaded.values[s.key] = s.fallback;
  std::map<std::string, std::string> where;  // the settings given, and where
  if (app.count("--config")) CKPT_RETURN_IF_ERROR(read_config_file(loaded.config_file, loaded.values, where));
  for (const Setting& s : kSettings) {
    std::string option = "--" + std::string(s.key);
    if (s.flag && flags[s.key]) loaded.values[s.key] = "true";
    if (s.repeatable && app.count(option)) {
      std::string joined;
      for (const std::string& v : repeated[s.key]) {
        if (v.find('\n') != std::string::npos) return invalid_argument(option + ": a value may not hold a newline");
        joined += (joined.empty() ? "" : "\n") + v;
      }
      cli[s.key] = joined;
    }
    if (!s.flag && app.count(option)) loaded.values[s.key] = cli[s.key];
    if ((s.flag && flags[s.key]) || (!s.flag && app.count(option))) where[s.key] = option;
  }
  CKPT_RETURN_IF_ERROR(apply_config_values(loaded.values, loaded.config, where));
  return loaded;
}

ConfigChanges diff_config(const LoadedConfig& before, const LoadedConfig& after) {
  ConfigChanges changes;
  for (const Setting& s : kSettings) {
    auto a = before.values.find(s.key), b = after.values.find(s.key);
    if (a == before.values.end() || b == after.values.end() || a->second == b->second) continue;
    (s.reloadable ? changes.reloadable : changes.need_restart).push_back(s.key);
  }
  return changes;
}

std::string config_reference() {
  std::ostringstream out;
  out << "# ckptd configuration: 'key = value' lines; the same keys work as --key on the command line,\n"
         "# which overrides the file. '#' at the start of a line or after a space starts a comment; a value may be\n"
         "# in double quotes. Settings marked (reload) change on SIGHUP; the rest need a restart.\n";
  for (const Setting& s : kSettings) {
    out << "\n# " << s.help << (s.reloadable ? " (reload)" : "") << "\n# " << s.key << " = " << s.fallback << "\n";
  }
  return out.str();
}

}  // namespace ckpt::daemon
