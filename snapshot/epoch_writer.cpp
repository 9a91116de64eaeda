#include "snapshot/epoch_writer.h"

#include <algorithm>
#include <cstring>

#include "snapshot/store.h"

namespace ckpt::snap {
namespace f = format;

namespace {

bool is_zero_page(const void* page) {
  const auto* words = static_cast<const uint64_t*>(page);
  uint64_t acc = 0;
  for (size_t i = 0; i < f::kPageSize / sizeof(uint64_t); ++i) acc |= words[i];  // branch-free, vectorizes
  return acc == 0;
}

// Extends the last run when the page continues it, else starts a new one.
void append_run(std::vector<PageRun>& runs, uint64_t gfn, bool zero) {
  if (!runs.empty()) {
    PageRun& last = runs.back();
    if (last.zero == zero && last.first_gfn + last.count == gfn && last.count < UINT32_MAX) {
      ++last.count;
      return;
    }
  }
  runs.push_back(PageRun{gfn, 1, zero});
}

}  // namespace

struct EpochWriter::PendingBlock {
  ByteBuffer raw;
  ByteBuffer stored;
  std::vector<PageRun> runs;
  uint32_t data_pages = 0;
  uint32_t space = f::kMemorySpace;
  Codec codec = Codec::kRaw;
  uint64_t stored_checksum = 0;
  uint64_t raw_checksum = 0;
  Status status;
  bool done = false;  // guarded by done_mutex_
};

WriterResources::WriterResources(unsigned workers, int level)
    : pool(workers, "ckpt-compress"),
      raw_buffers(BufferPool::create(size_t{f::kMaxDataPagesPerBlock} * f::kPageSize)),
      stored_buffers(BufferPool::create(max_stored_block_size())),
      max_blocks_in_flight(4 * size_t{pool.size()} + 4) {
  for (unsigned i = 0; i <= pool.size(); ++i) compressors.push_back(std::make_unique<BlockCompressor>(level));
}

EpochWriter::EpochWriter(Store& store, WriterResources& resources, EpochMeta meta, std::unique_ptr<WritableFile> file,
                         std::string temp_path, std::string final_path, bool replacing)
    : store_(store),
      resources_(resources),
      meta_(std::move(meta)),
      file_(std::move(file)),
      temp_path_(std::move(temp_path)),
      final_path_(std::move(final_path)),
      next_offset_(f::kHeaderSize),
      replacing_(replacing) {
  if (meta_.header.kind == EpochKind::kBase) {
    covered_.emplace_back(meta_.header.guest_pages);
    for (const DiskSpace& d : meta_.disks) covered_.emplace_back(d.blocks);
  }
}

EpochWriter::~EpochWriter() { abort(); }

Status EpochWriter::start() {
  auto header = encode_header(meta_.header);
  ByteBuffer buffer(header.size());
  std::memcpy(buffer.data(), header.data(), header.size());
  buffer.set_size(header.size());
  raw_ = resources_.raw_buffers->take();
  return fail(file_->write(0, std::move(buffer)));
}

Status EpochWriter::fail(Status s) {
  if (!s.is_ok() && error_.is_ok()) error_ = s;
  return s;
}

Status EpochWriter::add_page(uint64_t gfn, const void* page) { return add(f::kMemorySpace, gfn, page); }

Status EpochWriter::add_zero_pages(uint64_t first_gfn, uint64_t count) {
  return add_zero(f::kMemorySpace, first_gfn, count);
}

// Space 0 is memory: a disk id of 0 is refused here, so that a caller's disk id never writes guest memory.
Status EpochWriter::add_disk_block(uint32_t disk, uint64_t block, const void* data) {
  if (disk == f::kMemorySpace) return invalid_argument("there is no disk 0; disk ids start at 1");
  return add(disk, block, data);
}

Status EpochWriter::add_disk_zero_blocks(uint32_t disk, uint64_t first, uint64_t count) {
  if (disk == f::kMemorySpace) return invalid_argument("there is no disk 0; disk ids start at 1");
  return add_zero(disk, first, count);
}

Status EpochWriter::check_writable(uint32_t space, uint64_t first, uint64_t count, bool zero) const {
  if (!error_.is_ok()) return error_;
  if (finished_) return invalid_argument("epoch " + std::to_string(epoch()) + " is already committed or aborted");
  if (space == f::kMemorySpace) {
    if (zero && (first > meta_.header.guest_pages || count > meta_.header.guest_pages - first)) {
      return invalid_argument("zero pages " + std::to_string(first) + " + " + std::to_string(count) +
                              " reach outside guest memory of " + std::to_string(meta_.header.guest_pages) + " pages");
    }
    if (!zero && first >= meta_.header.guest_pages) {
      return invalid_argument("gfn " + std::to_string(first) + " is outside guest memory of " +
                              std::to_string(meta_.header.guest_pages) + " pages");
    }
    return Status::ok();
  }
  if (space > meta_.disks.size()) {
    return invalid_argument("epoch " + std::to_string(epoch()) + " has no disk " + std::to_string(space) + " (it has " +
                            std::to_string(meta_.disks.size()) + " disks)");
  }
  const DiskSpace& d = meta_.disks[space - 1];
  if (first > d.blocks || count > d.blocks - first) {
    return invalid_argument((zero ? "zero blocks " + std::to_string(first) + " + " + std::to_string(count) + " reach"
                                  : "block " + std::to_string(first) + " is") +
                            " outside disk " + std::to_string(d.id) + " '" + d.name + "' of " +
                            std::to_string(d.blocks) + " blocks");
  }
  return Status::ok();
}

Status EpochWriter::add(uint32_t space, uint64_t page, const void* data) {
  CKPT_RETURN_IF_ERROR(check_writable(space, page, 1, false));
  // A full block is sealed when the next page arrives, not when it fills: the last block of an epoch is then
  // always sealed by commit(), which may compress it right there. A block holds one space's pages.
  if (space != space_ || data_pages_ == f::kMaxDataPagesPerBlock || runs_.size() == f::kMaxRunsPerBlock) {
    CKPT_RETURN_IF_ERROR(seal_block());
  }
  space_ = space;
  if (!covered_.empty()) covered_[space].set(page);
  bool zero = is_zero_page(data);
  if (!zero) std::memcpy(raw_.data() + size_t{data_pages_} * f::kPageSize, data, f::kPageSize);
  data_pages_ += zero ? 0 : 1;
  append_run(runs_, page, zero);
  return Status::ok();
}

Status EpochWriter::add_zero(uint32_t space, uint64_t first, uint64_t count) {
  CKPT_RETURN_IF_ERROR(check_writable(space, first, count, true));
  if (count == 0) return Status::ok();
  if (space != space_) CKPT_RETURN_IF_ERROR(seal_block());
  space_ = space;
  if (!covered_.empty()) covered_[space].set_range(first, count);
  while (count > 0) {
    if (runs_.size() == f::kMaxRunsPerBlock) CKPT_RETURN_IF_ERROR(seal_block());
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX));
    PageRun* last = runs_.empty() ? nullptr : &runs_.back();
    if (last && last->zero && last->first_gfn + last->count == first && uint64_t{last->count} + n <= UINT32_MAX) {
      last->count += n;
    } else {
      runs_.push_back(PageRun{first, n, true});
    }
    first += n;
    count -= n;
  }
  return Status::ok();
}

Status EpochWriter::add_state(std::string name, std::span<const uint8_t> data) {
  if (!error_.is_ok()) return error_;
  if (name.empty() || name.size() > f::kMaxStateNameLength) return invalid_argument("state name length out of range");
  if (data.size() + name.size() + f::kStateRecordFixed > f::kMaxRecordLength) {
    return invalid_argument("state blob '" + name + "' exceeds " + std::to_string(f::kMaxRecordLength) + " bytes");
  }
  meta_.stats.state_bytes += data.size();
  meta_.states.push_back(StateBlob{std::move(name), std::vector<uint8_t>(data.begin(), data.end())});
  return Status::ok();
}

Status EpochWriter::seal_block(bool last) {
  if (runs_.empty()) return Status::ok();
  auto block = std::make_shared<PendingBlock>();
  block->runs = std::move(runs_);
  block->data_pages = data_pages_;
  block->space = space_;
  runs_.clear();
  data_pages_ = 0;
  if (block->data_pages == 0) {
    block->done = true;  // zero runs only: nothing to compress or write
  } else {
    block->raw = std::move(raw_);
    raw_ = resources_.raw_buffers->take();
    if (last && all_compressed()) {
      compress(*block, resources_.pool.size());  // the committing thread's compressor
    } else {
      resources_.pool.submit([this, block](unsigned worker) { compress(*block, worker); });
    }
  }
  in_flight_.push_back(std::move(block));
  return write_finished_blocks(false);
}

bool EpochWriter::all_compressed() {
  std::lock_guard lock(done_mutex_);
  for (const auto& block : in_flight_) {
    if (!block->done) return false;
  }
  return true;
}

// Runs on a pool worker, or on the committing thread (worker = pool size) for a last block.
void EpochWriter::compress(PendingBlock& block, unsigned worker) {
  size_t raw_len = size_t{block.data_pages} * f::kPageSize;
  block.raw.set_size(raw_len);
  block.raw_checksum = checksum64(block.raw.data(), raw_len);
  block.stored = resources_.stored_buffers->take();
  Result<Codec> codec = resources_.compressors[worker]->compress(block.raw.data(), raw_len, &block.stored);
  if (codec.is_ok()) {
    block.codec = *codec;
    if (block.codec == Codec::kRaw) {
      block.stored = std::move(block.raw);  // write the raw buffer itself
      block.stored_checksum = block.raw_checksum;
    } else {
      block.stored_checksum = checksum64(block.stored.data(), block.stored.size());
    }
  } else {
    block.status = codec.status().with_context("compress block of epoch " + std::to_string(epoch()));
  }
  std::lock_guard lock(done_mutex_);
  block.done = true;
  done_cv_.notify_all();
}

// Writes the finished blocks at the head of the queue, in order, so offsets do not depend on thread timing. Waits
// for the head when told to, or when too many blocks are in flight (bounding memory).
Status EpochWriter::write_finished_blocks(bool wait_for_all) {
  while (!in_flight_.empty()) {
    std::shared_ptr<PendingBlock> head = in_flight_.front();
    {
      std::unique_lock lock(done_mutex_);
      bool must_wait = wait_for_all || in_flight_.size() >= resources_.max_blocks_in_flight;
      if (!head->done && !must_wait) return Status::ok();
      done_cv_.wait(lock, [&] { return head->done; });
    }
    in_flight_.pop_front();
    if (!head->status.is_ok()) return fail(head->status);
    BlockRef ref{next_offset_, static_cast<uint32_t>(head->stored.size()), head->data_pages, head->codec,
                 head->stored_checksum, head->raw_checksum, std::move(head->runs), head->space};
    if (ref.stored_len > 0) CKPT_RETURN_IF_ERROR(fail(file_->write(next_offset_, std::move(head->stored))));
    next_offset_ += ref.stored_len;
    EpochStats& s = meta_.stats;
    s.data_pages += ref.data_pages;
    s.raw_bytes += uint64_t{ref.data_pages} * f::kPageSize;
    s.stored_bytes += ref.stored_len;
    uint64_t zero = 0;
    for (const PageRun& r : ref.runs) zero += r.zero ? r.count : 0;
    s.zero_pages += zero;
    ++s.block_count;
    if (ref.space != f::kMemorySpace) {
      DiskStats& d = meta_.disks[ref.space - 1].stats;
      d.data_blocks += ref.data_pages;
      d.zero_blocks += zero;
      d.stored_bytes += ref.stored_len;
    }
    meta_.blocks.push_back(std::move(ref));
  }
  return Status::ok();
}

Status EpochWriter::write_metadata_and_footer() {
  std::vector<uint8_t> section = encode_meta(meta_);
  EpochFooter footer{epoch(), meta_.parent, next_offset_, section.size(), checksum64(section.data(), section.size()),
                     next_offset_ + section.size() + f::kFooterSize};
  auto foot = encode_footer(footer);
  meta_.file_length = footer.file_length;
  meta_.meta_checksum = footer.meta_checksum;
  ByteBuffer buffer(section.size() + foot.size());
  std::memcpy(buffer.data(), section.data(), section.size());
  std::memcpy(buffer.data() + section.size(), foot.data(), foot.size());
  buffer.set_size(section.size() + foot.size());
  return file_->write(next_offset_, std::move(buffer));
}

// The commit protocol: everything written and fdatasync'ed while the file still has its temp name, then the rename
// that publishes it, then the directory fsync that makes the rename durable. A crash before the rename leaves a temp
// file (removed on the next open); after it, a complete, checked file.
Status EpochWriter::publish() {
  CKPT_RETURN_IF_ERROR(file_->sync());
  CKPT_RETURN_IF_ERROR(file_->close());
  CKPT_RETURN_IF_ERROR(store_.fs().rename(temp_path_, final_path_));
  renamed_ = true;
  return store_.fs().sync_dir(store_.dir());
}

Result<std::shared_ptr<const EpochMeta>> EpochWriter::commit() {
  if (finished_) return invalid_argument("epoch " + std::to_string(epoch()) + " is already committed or aborted");
  if (!error_.is_ok()) return error_;
  CKPT_RETURN_IF_ERROR(fail(check_complete()));
  CKPT_RETURN_IF_ERROR(fail(seal_block(/*last=*/true)));
  CKPT_RETURN_IF_ERROR(fail(write_finished_blocks(true)));
  CKPT_RETURN_IF_ERROR(fail(write_metadata_and_footer()));
  Status published = publish();
  if (!published.is_ok() && !(renamed_ && replacing_)) return fail(published);
  finished_ = true;
  auto committed = std::make_shared<const EpochMeta>(std::move(meta_));
  // A replacement renamed into place is the epoch's file now, durable or not: the catalog must describe it.
  store_.committed(committed->header.epoch, CatalogEntry{final_path_, committed, Status::ok()});
  if (!replacing_) store_.writer_finished();
  if (!published.is_ok()) return published;
  return committed;
}

// A base must hold every page of memory and every block of every disk: restore reads nothing older.
Status EpochWriter::check_complete() const {
  for (uint32_t space = 0; space < covered_.size(); ++space) {
    const PageBitmap& covered = covered_[space];
    if (covered.full()) continue;
    uint64_t missing = covered.size() - covered.count(), first = covered.first_clear();
    if (space == f::kMemorySpace) {
      return invalid_argument("base epoch " + std::to_string(epoch()) + " lacks " + std::to_string(missing) +
                              " guest pages (the first is gfn " + std::to_string(first) +
                              "); a base must hold every page");
    }
    const DiskSpace& d = meta_.disks[space - 1];
    return invalid_argument("base epoch " + std::to_string(epoch()) + " lacks " + std::to_string(missing) +
                            " blocks of disk " + std::to_string(d.id) + " '" + d.name + "' (the first is block " +
                            std::to_string(first) + "); a base must hold every block of every disk");
  }
  return Status::ok();
}

void EpochWriter::abort() {
  if (finished_) return;
  finished_ = true;
  {
    // Compression tasks reference this writer: wait for them before anything is freed.
    std::unique_lock lock(done_mutex_);
    for (const auto& block : in_flight_) done_cv_.wait(lock, [&] { return block->done; });
  }
  in_flight_.clear();
  if (file_) (void)file_->close();
  // Best effort: the next open removes leftover temp files too. A new epoch renamed into place whose directory fsync
  // then failed is removed as well, so that a failed commit never leaves an epoch behind.
  if (!renamed_ || !replacing_) (void)store_.fs().remove(renamed_ ? final_path_ : temp_path_);
  if (!replacing_) store_.writer_finished();
}

}  // namespace ckpt::snap
