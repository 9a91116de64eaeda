// ckpt compact --store DIR (--to-epoch K | --keep-last N | --keep-newer-than SECONDS): folds old epochs into a new
// base, offline. It takes the store's writer lock, so it fails (busy) while a daemon writes to the store.
#include <time.h>

#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "snapshot/store.h"

namespace ckpt::cli {

namespace {

struct CompactArgs {
  std::string dir;
  std::optional<uint64_t> to_epoch;
  std::optional<uint64_t> keep_last;
  std::optional<uint64_t> keep_newer_than_s;
};

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

int run_compact(const CompactArgs& args) {
  auto store = snap::Store::open(args.dir);
  if (!store.is_ok()) return report_error("compact", store.status());
  size_t before = (*store)->catalog().entries().size();
  if (args.to_epoch) {
    Status s = (*store)->compact(*args.to_epoch);
    if (!s.is_ok()) return report_error("compact", s);
  } else {
    snap::RetentionPolicy policy;
    policy.keep_last = args.keep_last;
    if (args.keep_newer_than_s) policy.keep_newer_than_ns = now_ns() - *args.keep_newer_than_s * 1'000'000'000ull;
    auto removed = (*store)->apply_retention(policy);
    if (!removed.is_ok()) return report_error("compact", removed.status());
  }
  const auto& entries = (*store)->catalog().entries();
  std::printf("compacted %s: %zu epochs before, %zu now (oldest %llu, newest %llu)\n", args.dir.c_str(), before,
              entries.size(), static_cast<unsigned long long>(entries.begin()->first),
              static_cast<unsigned long long>(entries.rbegin()->first));
  return kExitOk;
}

}  // namespace

void add_compact_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("compact", "Fold old epochs into a new base (offline; the daemon must not run)");
  auto args = std::make_shared<CompactArgs>();
  cmd->add_option("--store", args->dir, "Store directory")->required();
  auto* to = cmd->add_option("--to-epoch", args->to_epoch, "Make this epoch the base; older epochs are removed");
  auto* last = cmd->add_option("--keep-last", args->keep_last, "Keep the newest N epochs");
  auto* newer = cmd->add_option("--keep-newer-than", args->keep_newer_than_s, "Keep epochs younger than SECONDS");
  to->excludes(last)->excludes(newer);
  cmd->callback([=] {
    if (!args->to_epoch && !args->keep_last && !args->keep_newer_than_s) {
      std::fprintf(stderr, "ckpt compact: give --to-epoch, --keep-last or --keep-newer-than\n");
      *exit_code = kExitUsage;
      return;
    }
    *exit_code = run_compact(*args);
  });
}

}  // namespace ckpt::cli
