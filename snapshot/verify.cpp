#include "snapshot/verify.h"

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include "common/thread_pool.h"
#include "snapshot/block_codec.h"
#include "snapshot/epoch_file.h"
#include "snapshot/epoch_file_cache.h"
#include "snapshot/page_bitmap.h"

namespace ckpt::snap {
namespace f = format;

namespace {

// The epochs to check: all of them, or the chain of one.
Result<std::set<uint64_t>> select_epochs(const Catalog& catalog, const VerifyOptions& options) {
  std::set<uint64_t> epochs;
  if (!options.epoch) {
    for (const auto& [epoch, entry] : catalog.entries()) epochs.insert(epoch);
    return epochs;
  }
  if (!catalog.entries().count(*options.epoch)) {
    return not_found("epoch " + std::to_string(*options.epoch) + " is not in store " + catalog.dir());
  }
  uint64_t e = *options.epoch;
  for (;;) {
    epochs.insert(e);
    auto it = catalog.entries().find(e);
    if (it == catalog.entries().end() || !it->second.meta || it->second.meta->header.kind == EpochKind::kBase) break;
    e = it->second.meta->parent;
  }
  return epochs;
}

// A base must hold every gfn and every block of every disk (at least once; a later copy in the same epoch wins).
Status check_base_complete(const EpochMeta& meta, const std::string& path) {
  std::vector<PageBitmap> seen;
  seen.emplace_back(meta.header.guest_pages);
  for (const DiskSpace& d : meta.disks) seen.emplace_back(d.blocks);
  for (const BlockRef& b : meta.blocks) {
    // Runs were checked against their space's size when the metadata was read.
    for (const PageRun& r : b.runs) seen[b.space].set_range(r.first_gfn, r.count);
  }
  if (!seen[0].full()) {
    return corruption(path + ": base epoch " + std::to_string(meta.header.epoch) + " covers " +
                      std::to_string(seen[0].count()) + " of " + std::to_string(meta.header.guest_pages) +
                      " guest pages");
  }
  for (const DiskSpace& d : meta.disks) {
    const PageBitmap& disk = seen[d.id];
    if (disk.full()) continue;
    return corruption(path + ": base epoch " + std::to_string(meta.header.epoch) + " covers " +
                      std::to_string(disk.count()) + " of " + std::to_string(d.blocks) + " blocks of disk " +
                      std::to_string(d.id) + " '" + d.name + "' (block " + std::to_string(disk.first_clear()) +
                      " is missing)");
  }
  return Status::ok();
}

// Whether each epoch's chain down to a base is whole (every link present and readable, one store, one guest
// size, one set of disks), worked out oldest first from the parent's answer: checking every epoch is linear in their number, however
// long the chains are. A broken chain names the first bad link, as Catalog::chain does.
class ChainCheck {
 public:
  explicit ChainCheck(const Catalog& catalog) : catalog_(catalog) {
    for (const auto& [epoch, entry] : catalog.entries()) broken_link_[epoch] = find_broken_link(epoch, entry);
  }

  Status status(uint64_t epoch) const {
    const auto& [link, why] = broken_link_.at(epoch);
    if (why.is_ok()) return Status::ok();
    if (link == epoch) return why;
    return why.with_context("epoch " + std::to_string(epoch) + " needs epoch " + std::to_string(link));
  }

 private:
  // (the first bad link of `epoch`'s chain, what is wrong with it); OK when the chain is whole.
  std::pair<uint64_t, Status> find_broken_link(uint64_t epoch, const CatalogEntry& entry) const {
    if (!entry.meta) return {epoch, entry.error};
    const EpochMeta& meta = *entry.meta;
    if (meta.header.kind == EpochKind::kBase) return {epoch, Status::ok()};
    auto parent = catalog_.entries().find(meta.parent);
    if (parent == catalog_.entries().end()) {
      return {meta.parent, corruption("which is missing from " + catalog_.dir())};
    }
    if (!parent->second.meta) return {meta.parent, parent->second.error};
    const EpochHeader& up = parent->second.meta->header;
    if (up.store_id != meta.header.store_id || up.guest_pages != meta.header.guest_pages) {
      return {meta.parent, corruption(parent->second.path + " offset 0: epoch " + std::to_string(meta.parent) +
                                      " belongs to another store or guest size than epoch " +
                                      std::to_string(epoch))};
    }
    if (!same_disk_layout(parent->second.meta->disks, meta.disks)) {
      return {meta.parent, corruption(parent->second.path + ": epoch " + std::to_string(meta.parent) + " has " +
                                      describe_disks(parent->second.meta->disks) + ", its child epoch " +
                                      std::to_string(epoch) + " has " + describe_disks(meta.disks) +
                                      "; a chain keeps its disks")};
    }
    return broken_link_.at(meta.parent);  // the parent is older, so already known
  }

  const Catalog& catalog_;
  std::map<uint64_t, std::pair<uint64_t, Status>> broken_link_;
};

// The store's identity: the (store id, guest size) most of its readable epochs carry. Not simply the newest
// epoch's: a stray file from another store, named above the newest, must be the one reported, not all the others.
using Identity = std::pair<uint64_t, uint64_t>;
Identity store_identity(const Catalog& catalog) {
  std::map<Identity, uint64_t> votes;
  for (const auto& [epoch, entry] : catalog.entries()) {
    if (entry.meta) ++votes[{entry.meta->header.store_id, entry.meta->header.guest_pages}];
  }
  Identity best{catalog.store_id(), catalog.guest_pages()};
  uint64_t most = votes.count(best) ? votes[best] : 0;
  for (const auto& [identity, count] : votes) {
    if (count > most) best = identity, most = count;
  }
  return best;
}

Status check_structure(const Identity& identity, const ChainCheck& chains, uint64_t epoch,
                       const CatalogEntry& entry) {
  const EpochMeta& meta = *entry.meta;
  if (Identity{meta.header.store_id, meta.header.guest_pages} != identity) {
    return corruption(entry.path + " offset 0: epoch " + std::to_string(epoch) +
                      " belongs to another store or guest size");
  }
  if (meta.header.kind == EpochKind::kBase) return check_base_complete(meta, entry.path);
  return chains.status(epoch);
}

}  // namespace

Result<VerifyReport> verify_store(FileSystem& fs, const std::string& dir, const VerifyOptions& options) {
  CKPT_ASSIGN_OR_RETURN(Catalog catalog, Catalog::load(fs, dir));
  CKPT_ASSIGN_OR_RETURN(std::set<uint64_t> epochs, select_epochs(catalog, options));
  VerifyReport report;
  // Per epoch, problems keyed by where they were found: 0 = the epoch's metadata or structure, b + 1 = block b.
  // The smallest key is reported, so the result does not depend on thread timing.
  std::map<uint64_t, std::map<size_t, Status>> problems;
  auto note = [&](uint64_t epoch, const Status& s) { problems[epoch].emplace(0, s); };

  struct BlockJob {
    uint64_t epoch;
    const CatalogEntry* entry;
    size_t block;
  };
  std::vector<BlockJob> jobs;
  ChainCheck chains(catalog);
  Identity identity = store_identity(catalog);
  for (uint64_t epoch : epochs) {
    const CatalogEntry& entry = catalog.entries().at(epoch);
    ++report.epochs_checked;
    if (!entry.meta) {
      note(epoch, entry.error);
      continue;
    }
    Status s = check_structure(identity, chains, epoch, entry);
    if (!s.is_ok()) note(epoch, s);
    for (size_t b = 0; b < entry.meta->blocks.size(); ++b) jobs.push_back(BlockJob{epoch, &entry, b});
  }
  // Jobs run in epoch order, so a handful of open files serves any number of epochs.
  EpochFileCache files(fs);

  ThreadPool pool(options.threads, "ckpt-verify");
  std::vector<std::unique_ptr<BlockDecompressor>> decompressors;
  std::vector<ByteBuffer> scratch, raw;
  for (unsigned i = 0; i < pool.size(); ++i) {
    decompressors.push_back(std::make_unique<BlockDecompressor>());
    scratch.emplace_back(max_stored_block_size());
    raw.emplace_back(size_t{f::kMaxDataPagesPerBlock} * f::kPageSize);
  }
  std::mutex mutex;
  uint64_t done = 0;
  pool.parallel_for(jobs.size(), [&](size_t i, unsigned w) {
    const BlockJob& job = jobs[i];
    const EpochMeta& meta = *job.entry->meta;
    Result<std::shared_ptr<const ReadableFile>> file = files.get(job.entry->path, meta);
    Status s = file.status();
    if (s.is_ok()) s = read_block(**file, meta, job.block, *decompressors[w], scratch[w], raw[w].data());
    std::lock_guard lock(mutex);
    // A file that cannot be opened is one problem of its epoch, not one per block.
    if (!s.is_ok()) problems[job.epoch].emplace(file.is_ok() ? job.block + 1 : 0, s);
    ++report.blocks_checked;
    report.bytes_checked += meta.blocks[job.block].stored_len;
    ++done;
    if (options.progress && (done % 64 == 0 || done == jobs.size())) options.progress(done, jobs.size());
  });
  for (auto& [epoch, found] : problems) {
    report.problems.push_back(VerifyProblem{epoch, catalog.path_of(epoch), found.begin()->second});
  }
  return report;
}

}  // namespace ckpt::snap
