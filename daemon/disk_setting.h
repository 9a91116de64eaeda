// A disk as the user configures it (the `disk` setting, docs/operations.md "Disks"): the image file and whether it
// is read-only, parsed and checked. Apart from disk_images.h so the config parser (and its fuzzer) need nothing of
// the store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace ckpt::daemon {

struct DiskSetting {
  std::string path;  // the raw image file the user named; read at the first start only
  bool read_only = false;
};

// Parses one `disk` value: "PATH" or "PATH,ro" (read-only) or "PATH,rw".
Result<DiskSetting> parse_disk_setting(const std::string& text);

constexpr uint64_t kDiskBlockBytes = 4096;  // the unit a disk is tracked and stored in
constexpr size_t kMaxDisks = 8;             // virtio-mmio windows the guest's ACPI tables describe

// An image file the user named: a regular file, readable, its size a positive multiple of 4 KiB. Returns the size.
Result<uint64_t> check_disk_source(const std::string& path);

}  // namespace ckpt::daemon
