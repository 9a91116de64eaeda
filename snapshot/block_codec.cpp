#include "snapshot/block_codec.h"

#include <zstd.h>

#include <cstring>
#include <new>

namespace ckpt::snap {

size_t max_stored_block_size() {
  return ZSTD_compressBound(size_t{format::kMaxDataPagesPerBlock} * format::kPageSize);
}

BlockCompressor::BlockCompressor(int level) : ctx_(ZSTD_createCCtx()), level_(level) {
  if (ctx_ == nullptr) throw std::bad_alloc();
  ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, level_);
  // Blocks are self-describing through their index record; the frame needs no checksum or size of its own.
  ZSTD_CCtx_setParameter(ctx_, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(ctx_, ZSTD_c_contentSizeFlag, 1);
}

BlockCompressor::~BlockCompressor() { ZSTD_freeCCtx(ctx_); }

Result<format::Codec> BlockCompressor::compress(const uint8_t* raw, size_t raw_len, ByteBuffer* out) {
  size_t n = ZSTD_compress2(ctx_, out->data(), out->capacity(), raw, raw_len);
  if (ZSTD_isError(n)) {
    return Status(StatusCode::kInvalidArgument, std::string("ZSTD_compress2: ") + ZSTD_getErrorName(n));
  }
  if (n <= raw_len - raw_len / 16) {
    out->set_size(n);
    return format::Codec::kZstd;
  }
  out->set_size(0);
  return format::Codec::kRaw;
}

BlockDecompressor::BlockDecompressor() : ctx_(ZSTD_createDCtx()) {
  if (ctx_ == nullptr) throw std::bad_alloc();
}

BlockDecompressor::~BlockDecompressor() { ZSTD_freeDCtx(ctx_); }

Status BlockDecompressor::decompress(format::Codec codec, const uint8_t* stored, size_t stored_len, uint8_t* raw,
                                     size_t raw_len) {
  if (codec == format::Codec::kRaw) {
    if (stored_len != raw_len) return corruption("raw block of " + std::to_string(stored_len) + " bytes, expected " +
                                                 std::to_string(raw_len));
    std::memcpy(raw, stored, raw_len);
    return Status::ok();
  }
  size_t n = ZSTD_decompressDCtx(ctx_, raw, raw_len, stored, stored_len);
  if (ZSTD_isError(n)) return corruption(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != raw_len) {
    return corruption("block decompressed to " + std::to_string(n) + " bytes, expected " + std::to_string(raw_len));
  }
  return Status::ok();
}

}  // namespace ckpt::snap
