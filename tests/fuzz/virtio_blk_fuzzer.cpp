// The virtio-blk device (vmm/devices/virtio) under a hostile guest: each input is a sequence of guest actions
// (register reads and writes of any width and offset, bytes written into rings, descriptor tables and request
// headers, requests well formed or not, runaway ring indices) and of the daemon's (pause/resume, state save/load
// with damaged blobs, written-block harvests), against the in-memory disk. Checked after every step
// (virtio_blk_driver.h): no access outside guest memory (it sits between inaccessible guard regions, and ASan
// watches the rest), every page the device changed was reported dirty, no disk access outside the disk, the
// device's own state loads back, harvested blocks are ascending and on the disk. A hang is libFuzzer's -timeout.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/log.h"
#include "tests/fuzz/virtio_blk_driver.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ckpt::set_log_level(ckpt::LogLevel::kOff);  // every input is full of guest errors, each logged
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string failure = ckpt::vmm::devices::virtio::blk_test::run_virtio_blk_input(data, size);
  if (!failure.empty()) {
    std::fprintf(stderr, "virtio_blk_fuzzer: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
