// The working images of a VM's disks. The guest never writes the image file the user named: at the VM's first start
// each disk is copied to a working image in the store directory, `<store>/disk<N>.img` (N = 0, 1, ... in the order
// of the disk settings; the guest sees them as vda, vdb, ...), and the guest's writes go there. Every epoch holds
// what the guest wrote since the previous one, and the base holds the whole disk, so the chain alone can rebuild a
// working image at any committed epoch: a resume and a live restore do so before the guest runs (a working image
// left by a killed daemon may be ahead of the epoch it resumes from). docs/operations.md, "Disks".
//
// A new image is always made beside its final name (`disk<N>.img.tmp`) and renamed over it once complete and
// durable: a crash leaves the old image or the new one, never half of one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "daemon/disk_setting.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"

namespace ckpt::daemon {

// `<store>/disk<index>.img`.
std::string working_image_path(const std::string& store_dir, size_t index);

// Copies `source` to the working image `index` of the store (sparse: holes stay holes), durably. Returns its size.
Result<uint64_t> create_working_image(const std::string& source, const std::string& store_dir, size_t index);

// A working image being rebuilt from the chain, not yet in place: publish() renames it over the working image.
class PendingImage {
 public:
  PendingImage() = default;
  PendingImage(PendingImage&&) noexcept;
  PendingImage& operator=(PendingImage&&) noexcept;
  ~PendingImage();  // an unpublished image is removed

  // The file to open now (the VM runs on it); still under its temporary name until publish().
  const std::string& path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  Status publish();

 private:
  friend Result<PendingImage> rebuild_working_image(snap::FileSystem&, const snap::Catalog&, uint64_t,
                                                    uint32_t, const std::string&, size_t);
  std::string temp_path_, final_path_;
};

// A working image as the epoch pipeline reads it: blocks the guest wrote are read from here while it is paused.
struct OpenDisk {
  std::string name;  // in the store ("disk0", or the name the store gives it)
  std::string path;  // the working image
  uint64_t blocks = 0;
  bool read_only = false;
  UniqueFd fd;  // read-only
};
Result<OpenDisk> open_disk(std::string name, std::string path, bool read_only);
// Reads `count` blocks from `first` into `out`.
Status read_disk_blocks(const OpenDisk& disk, uint64_t first, uint64_t count, uint8_t* out);
// The block ranges (first, count) that may hold data: the rest are holes, which read as zero (SEEK_DATA/SEEK_HOLE).
// Every block when the file system cannot tell.
std::vector<std::pair<uint64_t, uint64_t>> disk_data_ranges(const OpenDisk& disk);

// Writes the disk with id `disk_id` (1-based in the store) at `epoch` into a new working image for `index` (not yet
// in place: the caller publishes it once the VM built on it is ready, so a failure leaves the old image as it was).
Result<PendingImage> rebuild_working_image(snap::FileSystem& fs, const snap::Catalog& catalog, uint64_t epoch,
                                           uint32_t disk_id, const std::string& store_dir, size_t index);

}  // namespace ckpt::daemon
