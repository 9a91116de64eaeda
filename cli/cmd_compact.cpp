// ckpt compact (--to-epoch K | --keep-last N | --keep-newer-than DURATION) [--store DIR]: folds old epochs into a new
// base and removes them. Without --store the running daemon does it (live; --to-epoch becomes its compact command,
// the keep options its retention command). With --store it runs offline; it takes the store's writer lock, so it
// fails (busy) while a daemon writes to the store.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/numeric_option.h"
#include "cli/output.h"
#include "cli/reply_fields.h"
#include "cli/store_access.h"
#include "snapshot/store.h"

namespace ckpt::cli {

namespace {

struct CompactArgs {
  std::string dir;
  std::optional<uint64_t> to_epoch;
  std::optional<uint64_t> keep_last;
  std::string keep_newer_than;  // a duration: "3600", "90s", "15m", "12h", "7d", "2w"
  bool json = false;
};

constexpr uint64_t kMaxDurationS = 100ull * 366 * 86400;

// Seconds in "N" or "N<unit>" with unit s, m, h, d or w.
Result<uint64_t> parse_duration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  uint64_t scale = unit.empty() || unit == "s" ? 1
                   : unit == "m"               ? 60
                   : unit == "h"               ? 3600
                   : unit == "d"               ? 86400
                   : unit == "w"               ? 7 * 86400
                                               : 0;
  if (digits == 0 || digits > 12 || scale == 0) {
    return invalid_argument("--keep-newer-than '" + text + "' is not a duration like 3600, 90s, 15m, 12h, 7d or 2w");
  }
  uint64_t seconds = std::stoull(text.substr(0, digits)) * scale;
  // Bounded so that seconds * 1e9 (the daemon's and Store's nanosecond cutoff) cannot overflow.
  if (seconds > kMaxDurationS) return invalid_argument("--keep-newer-than '" + text + "' is longer than 100 years");
  return seconds;
}

int run_offline(const CompactArgs& args, std::optional<uint64_t> keep_newer_than_s) {
  // A missing directory is a typo'd path, not a new store to create (the daemon's writer would).
  snap::StoreOptions options;
  options.create_if_missing = false;
  auto store = snap::Store::open(args.dir, options);
  if (!store.is_ok()) return report_error("compact", store.status(), args.json);
  size_t before = (*store)->epoch_count();
  if (before == 0) return report_error("compact", not_found("store " + args.dir + " holds no epochs"), args.json);
  if (args.to_epoch) {
    Status s = (*store)->compact(*args.to_epoch);
    if (!s.is_ok()) return report_error("compact", s, args.json);
  } else {
    snap::RetentionPolicy policy;
    policy.keep_last = args.keep_last;
    if (keep_newer_than_s) policy.keep_newer_than_ns = snap::timestamp_seconds_ago(*keep_newer_than_s);
    auto removed = (*store)->apply_retention(policy);
    if (!removed.is_ok()) return report_error("compact", removed.status(), args.json);
  }
  snap::Catalog catalog = (*store)->catalog_snapshot();
  const auto& entries = catalog.entries();
  if (entries.empty()) return report_error("compact", not_found("no epochs left in store " + args.dir), args.json);
  uint64_t oldest = entries.begin()->first, newest = entries.rbegin()->first;
  if (args.json) {
    print_json({{"store", args.dir}, {"epochs_before", before}, {"epochs_now", entries.size()},
                {"oldest", oldest}, {"newest", newest}});
    return kExitOk;
  }
  std::printf("compacted %s: %zu epochs before, %zu now (oldest %llu, newest %llu)\n", printable(args.dir).c_str(), before,
              entries.size(), static_cast<unsigned long long>(oldest), static_cast<unsigned long long>(newest));
  return kExitOk;
}

int run_live(const DaemonOptions& daemon, const CompactArgs& args, std::optional<uint64_t> keep_newer_than_s) {
  // No timeout: compaction rewrites a base the size of the guest's memory.
  DaemonAnswer a;
  if (args.to_epoch) {
    a = call_daemon(daemon, "compact", {{"epoch", *args.to_epoch}});
  } else {
    nlohmann::json policy = nlohmann::json::object();
    if (args.keep_last) policy["keep_last"] = *args.keep_last;
    if (keep_newer_than_s) policy["keep_newer_than_seconds"] = *keep_newer_than_s;
    a = call_daemon(daemon, "retention", policy);
  }
  if (a.error) return report("compact", *a.error, args.json);
  if (args.json) {
    print_json(a.result);
  } else if (args.to_epoch) {
    std::printf("compacted: epoch %s is the new base; the epochs before it are removed\n",
                epoch_field(a.result, "base_epoch").c_str());
  } else {
    uint64_t removed = count_field(a.result, "removed_epochs");
    std::printf("retention removed %s %s\n", group_digits(removed).c_str(), removed == 1 ? "epoch" : "epochs");
  }
  return kExitOk;
}

int run_compact(const DaemonOptions& daemon, const CompactArgs& args) {
  if (!args.to_epoch && !args.keep_last && args.keep_newer_than.empty()) {
    return report("compact", {kExitUsage, "bad_request", "give --to-epoch, --keep-last or --keep-newer-than"},
                  args.json);
  }
  std::optional<uint64_t> keep_newer_than_s;
  if (!args.keep_newer_than.empty()) {
    Result<uint64_t> seconds = parse_duration(args.keep_newer_than);
    if (!seconds.is_ok()) return report_error("compact", seconds.status(), args.json);
    keep_newer_than_s = *seconds;
  }
  return args.dir.empty() ? run_live(daemon, args, keep_newer_than_s) : run_offline(args, keep_newer_than_s);
}

}  // namespace

void add_compact_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand("compact", "Fold old epochs into a new base and delete them, to reclaim space");
  cmd->footer(
      "Examples:\n"
      "  ckpt compact --to-epoch 100            epoch 100 becomes the base; older epochs go\n"
      "  ckpt compact --keep-last 50\n"
      "  ckpt compact --keep-newer-than 7d\n"
      "  ckpt compact --store /var/lib/ckptd --keep-last 50   offline, with the daemon stopped\n");
  auto args = std::make_shared<CompactArgs>();
  cmd->add_option("--store", args->dir, "Compact this store directory offline (no daemon may be writing to it)")
      ->type_name("DIR");
  auto* to = cmd->add_option("--to-epoch", args->to_epoch, "Make this epoch the base; older epochs are removed")
                 ->type_name("K")
                 ->transform(whole_number());
  // At least one: the store refuses to keep nothing.
  auto* last = cmd->add_option("--keep-last", args->keep_last, "Keep the newest N epochs (at least 1)")
                   ->type_name("N")
                   ->transform(whole_number(1));
  auto* newer = cmd->add_option("--keep-newer-than", args->keep_newer_than,
                                "Keep epochs younger than DURATION (seconds, or 90s, 15m, 12h, 7d, 2w)")
                    ->type_name("DURATION");
  to->excludes(last)->excludes(newer);
  cmd->add_flag("--json", args->json, "Print the result as JSON");
  cmd->callback([=, &daemon] { *exit_code = run_compact(daemon, *args); });
}

}  // namespace ckpt::cli
