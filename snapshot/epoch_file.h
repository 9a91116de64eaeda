// Reading one committed epoch file: its validated metadata, and its data blocks on demand.
#pragma once

#include <memory>
#include <string>

#include "common/byte_buffer.h"
#include "common/status.h"
#include "snapshot/block_codec.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

// Reads and checks the header, the commit record (footer) and the metadata section of the epoch file at `path`.
// Does not read the data blocks. Every failure names the file and the offset.
Result<EpochMeta> read_epoch_meta(const ReadableFile& file);

// Reads block `index` of `meta` from `file`, checks the stored checksum, decodes it into `raw` (data_pages pages) and
// checks the raw checksum. `scratch` must hold max_stored_block_size() bytes.
Status read_block(const ReadableFile& file, const EpochMeta& meta, size_t index, BlockDecompressor& decompressor,
                  ByteBuffer& scratch, uint8_t* raw);

// "0000000000000042.epoch"
std::string epoch_file_name(uint64_t epoch);
// Parses a committed epoch file name; false for anything else (temp files, the lock, strangers).
bool parse_epoch_file_name(const std::string& name, uint64_t* epoch);

}  // namespace ckpt::snap
