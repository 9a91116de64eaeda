// The two writable-file engines behind the posix FileSystem.
#pragma once

#include <memory>
#include <string>

#include "common/unique_fd.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

std::unique_ptr<WritableFile> make_pwrite_file(UniqueFd fd, std::string path);
// Idle io_uring instances for the files of one file system to reuse: setting a ring up and tearing it down (mmap,
// munmap: TLB shootdowns across the daemon's threads) for every small epoch file cost a tenth of the writer
// thread's time in the epoch-rate benchmark.
class UringPool;
std::shared_ptr<UringPool> make_uring_pool(unsigned queue_depth);
// Falls back to nothing: the caller chose io_uring explicitly or after probing; a setup failure is an error value.
Result<std::unique_ptr<WritableFile>> make_uring_file(UniqueFd fd, std::string path, std::shared_ptr<UringPool> pool);

}  // namespace ckpt::snap
