// The ckpt command's exit codes (documented in docs/cli.md). Scripts depend on them: never renumber.
#pragma once

#include "common/status.h"

namespace ckpt::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // anything not covered below (an IO error, a refused operation)
  kExitUsage = 2,        // bad command line
  kExitUnreachable = 3,  // the daemon's control socket does not answer
  kExitNotFound = 4,     // no such store, epoch or file
  kExitCorruption = 5,   // a checksum or structural check failed
  kExitPermission = 6,   // the OS or the daemon refused access
};

int exit_code_for(const Status& status);

}  // namespace ckpt::cli
