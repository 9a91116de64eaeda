#include "snapshot/repair.h"

#include <time.h>

#include <map>

#include "common/log.h"
#include "snapshot/epoch_file.h"
#include "snapshot/store.h"
#include "snapshot/verify.h"

namespace ckpt::snap {

namespace {

std::string utc_stamp() {
  time_t now = ::time(nullptr);
  tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  ::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

}  // namespace

Result<RepairReport> repair_store(const std::string& dir, const RepairOptions& options) {
  StoreOptions store_options;
  store_options.create_if_missing = false;
  // The writer lock (no daemon may run meanwhile), and nothing else: a damaged or stray file must not make the
  // open remove anything (a floor read from a stray base would); what an interrupted writer left is ckptd's to
  // finish at its next start.
  store_options.clean_up_on_open = false;
  CKPT_ASSIGN_OR_RETURN(auto store, Store::open(dir, store_options));
  VerifyOptions verify_options;
  verify_options.threads = options.threads;
  CKPT_ASSIGN_OR_RETURN(VerifyReport verified, verify_store(store->fs(), dir, verify_options));
  RepairReport report;
  report.epochs_checked = verified.epochs_checked;
  Catalog catalog = store->catalog_snapshot();
  std::map<uint64_t, std::string> bad;
  for (const VerifyProblem& p : verified.problems) bad.emplace(p.epoch, p.status.to_string());
  // Verify reports a damaged block only for its own epoch; every epoch whose chain runs through it cannot be
  // restored either. Parents are older, so one ascending pass finds them all.
  for (const auto& [epoch, entry] : catalog.entries()) {
    if (bad.count(epoch) || !entry.meta || entry.meta->header.kind != EpochKind::kDelta) continue;
    if (bad.count(entry.meta->parent)) {
      bad.emplace(epoch, "its chain needs epoch " + std::to_string(entry.meta->parent) + ", which cannot be restored");
    }
  }
  for (const auto& [epoch, why] : bad) report.moved.push_back({epoch, why});
  for (auto it = catalog.entries().rbegin(); it != catalog.entries().rend(); ++it) {
    if (!bad.count(it->first)) {
      report.newest_intact = it->first;
      break;
    }
  }
  if (report.moved.empty() || options.dry_run) return report;

  report.moved_to = dir + "/damaged-" + utc_stamp();
  FileSystem& fs = store->fs();
  CKPT_RETURN_IF_ERROR(fs.make_dir(report.moved_to));
  // Newest first: should this stop half way, what is left is still a store whose intact epochs keep their chains.
  for (auto it = report.moved.rbegin(); it != report.moved.rend(); ++it) {
    std::string name = epoch_file_name(it->epoch);
    CKPT_RETURN_IF_ERROR(fs.rename(dir + "/" + name, report.moved_to + "/" + name));
    CKPT_LOG(kInfo) << "repair: moved epoch " << it->epoch << " to " << report.moved_to << ": " << it->why;
  }
  CKPT_RETURN_IF_ERROR(fs.sync_dir(report.moved_to));
  CKPT_RETURN_IF_ERROR(fs.sync_dir(dir));
  return report;
}

}  // namespace ckpt::snap
