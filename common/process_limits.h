// Process-wide resource limits the tools adjust at start.
#pragma once

namespace ckpt {

// Raises the soft open-file limit to the hard one: a restore or verify opens every epoch file of a chain at once,
// and long chains need more than the customary 1024. Best effort: on failure the old limit stays.
void raise_open_file_limit();

}  // namespace ckpt
