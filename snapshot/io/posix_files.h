// The two writable-file engines behind the posix FileSystem.
#pragma once

#include <memory>
#include <string>

#include "common/unique_fd.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

std::unique_ptr<WritableFile> make_pwrite_file(UniqueFd fd, std::string path);
// Falls back to nothing: the caller chose io_uring explicitly or after probing; a setup failure is an error value.
Result<std::unique_ptr<WritableFile>> make_uring_file(UniqueFd fd, std::string path, unsigned queue_depth);

}  // namespace ckpt::snap
