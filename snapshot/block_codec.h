// Compression of one data block (up to 64 pages) with a reused zstd context. Not thread-safe: one per worker.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/byte_buffer.h"
#include "common/status.h"
#include "snapshot/format.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace ckpt::snap {

// Upper bound of a stored block's size, for sizing output buffers.
size_t max_stored_block_size();

class BlockCompressor {
 public:
  explicit BlockCompressor(int level);
  ~BlockCompressor();
  BlockCompressor(const BlockCompressor&) = delete;
  BlockCompressor& operator=(const BlockCompressor&) = delete;

  // Compresses raw[0, raw_len) into `out` (capacity >= max_stored_block_size()). Returns kZstd when that saves at
  // least 1/16 of the bytes (`out` holds the stored form), else kRaw: the stored form is then raw[0, raw_len)
  // itself, and `out` holds nothing of use (not copying it there saves a memcpy per incompressible block).
  Result<format::Codec> compress(const uint8_t* raw, size_t raw_len, ByteBuffer* out);

 private:
  ZSTD_CCtx_s* ctx_;
  int level_;
};

class BlockDecompressor {
 public:
  BlockDecompressor();
  ~BlockDecompressor();
  BlockDecompressor(const BlockDecompressor&) = delete;
  BlockDecompressor& operator=(const BlockDecompressor&) = delete;

  // Decodes a stored block into exactly raw_len bytes at `raw`. A size mismatch or a zstd error is corruption.
  Status decompress(format::Codec codec, const uint8_t* stored, size_t stored_len, uint8_t* raw, size_t raw_len);

 private:
  ZSTD_DCtx_s* ctx_;
};

}  // namespace ckpt::snap
