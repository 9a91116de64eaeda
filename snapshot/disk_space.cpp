#include "snapshot/disk_space.h"

#include <set>

#include "snapshot/format.h"

namespace ckpt::snap {
namespace f = format;

Result<std::vector<DiskSpace>> disks_from_specs(const std::vector<DiskSpec>& specs) {
  if (specs.size() > f::kMaxDisks) {
    return invalid_argument(std::to_string(specs.size()) + " disks; an epoch holds at most " +
                            std::to_string(f::kMaxDisks));
  }
  std::vector<DiskSpace> disks;
  std::set<std::string> names;
  for (const DiskSpec& spec : specs) {
    uint32_t id = static_cast<uint32_t>(disks.size() + 1);
    std::string which = "disk " + std::to_string(id) + " '" + spec.name + "'";
    if (spec.name.empty() || spec.name.size() > f::kMaxDiskNameLength) {
      return invalid_argument("disk " + std::to_string(id) + " has a name of " + std::to_string(spec.name.size()) +
                              " bytes; disk names are 1 to " + std::to_string(f::kMaxDiskNameLength) + " bytes");
    }
    if (!names.insert(spec.name).second) return invalid_argument(which + ": another disk has that name");
    if (spec.blocks == 0 || spec.blocks > f::kMaxDiskBlocks) {
      return invalid_argument(which + " of " + std::to_string(spec.blocks) + " blocks; a disk has 1 to 2^40 blocks");
    }
    disks.push_back(DiskSpace{id, spec.name, spec.blocks, spec.read_only, {}});
  }
  return disks;
}

std::vector<DiskSpec> disk_specs(const std::vector<DiskSpace>& disks) {
  std::vector<DiskSpec> specs;
  for (const DiskSpace& d : disks) specs.push_back(DiskSpec{d.name, d.blocks, d.read_only});
  return specs;
}

bool same_disk_layout(const std::vector<DiskSpace>& a, const std::vector<DiskSpace>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].name != b[i].name || a[i].blocks != b[i].blocks ||
        a[i].read_only != b[i].read_only) {
      return false;
    }
  }
  return true;
}

std::string describe_disks(const std::vector<DiskSpace>& disks) {
  if (disks.empty()) return "no disks";
  std::string text;
  for (const DiskSpace& d : disks) {
    if (!text.empty()) text += ", ";
    text += "disk " + std::to_string(d.id) + " '" + d.name + "' (" + std::to_string(d.blocks) + " blocks" +
            (d.read_only ? ", read-only)" : ")");
  }
  return text;
}

}  // namespace ckpt::snap
