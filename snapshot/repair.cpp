#include "snapshot/repair.h"

#include <time.h>

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
  // Opening as the writer takes the lock and finishes what an interrupted writer left (temp files, a compaction's
  // obsolete epochs), exactly as ckptd's next start would.
  CKPT_ASSIGN_OR_RETURN(auto store, Store::open(dir, store_options));
  VerifyOptions verify_options;
  verify_options.threads = options.threads;
  CKPT_ASSIGN_OR_RETURN(VerifyReport verified, verify_store(store->fs(), dir, verify_options));
  RepairReport report;
  report.epochs_checked = verified.epochs_checked;
  Catalog catalog = store->catalog_snapshot();
  std::set<uint64_t> bad;
  for (const VerifyProblem& p : verified.problems) {
    bad.insert(p.epoch);
    report.moved.push_back({p.epoch, p.status.to_string()});
  }
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
