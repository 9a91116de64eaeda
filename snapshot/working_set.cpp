#include "snapshot/working_set.h"

#include <xxhash.h>

#include <cstring>

#include "snapshot/byte_order.h"

namespace ckpt::snap {

namespace {

// Layout (little-endian): magic, u32 version, u32 gfn count, u64 guest pages, the gfns as u64, then XXH3_64 of
// every byte before it.
constexpr char kMagic[8] = {'C', 'K', 'P', 'T', 'W', 'S', 'E', 'T'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8;
constexpr size_t kChecksumSize = 8;

std::string path_of(const std::string& store_dir) { return store_dir + "/" + kWorkingSetName; }

}  // namespace

Result<std::vector<uint64_t>> load_working_set(FileSystem& fs, const std::string& store_dir, uint64_t guest_pages) {
  const std::string path = path_of(store_dir);
  auto file = fs.open(path);
  if (!file.is_ok()) {
    if (file.status().code() == StatusCode::kNotFound) return std::vector<uint64_t>{};
    return file.status();
  }
  const uint64_t size = (*file)->size();
  auto damaged = [&](uint64_t offset, const std::string& what) {
    return Status(StatusCode::kCorruption,
                  "working-set record " + path + ": " + what + " at offset " + std::to_string(offset));
  };
  if (size < kHeaderSize + kChecksumSize) return damaged(0, "too short (" + std::to_string(size) + " bytes)");
  if (size > kHeaderSize + uint64_t{kMaxWorkingSetGfns} * 8 + kChecksumSize) {
    return damaged(0, "too long (" + std::to_string(size) + " bytes)");
  }
  std::vector<uint8_t> bytes(size);
  CKPT_RETURN_IF_ERROR((*file)->read(0, bytes.size(), bytes.data()));
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return damaged(0, "not a working-set record (magic)");
  const uint64_t body = size - kChecksumSize;
  if (XXH3_64bits(bytes.data(), body) != load_le<uint64_t>(bytes.data() + body)) {
    return damaged(body, "checksum mismatch");
  }
  const uint32_t version = load_le<uint32_t>(bytes.data() + 8);
  if (version != kVersion) return damaged(8, "version " + std::to_string(version) + " unknown");
  const uint32_t count = load_le<uint32_t>(bytes.data() + 12);
  if (kHeaderSize + uint64_t{count} * 8 != body) return damaged(12, "count " + std::to_string(count) + " off size");
  const uint64_t pages = load_le<uint64_t>(bytes.data() + 16);
  if (pages != guest_pages) {
    return invalid_argument("working-set record " + path + " is for a guest of " + std::to_string(pages) +
                            " pages, not " + std::to_string(guest_pages));
  }
  std::vector<uint64_t> gfns(count);
  for (uint32_t i = 0; i < count; ++i) {
    gfns[i] = load_le<uint64_t>(bytes.data() + kHeaderSize + uint64_t{i} * 8);
    if (gfns[i] >= guest_pages) return damaged(kHeaderSize + uint64_t{i} * 8, "gfn beyond the guest");
  }
  return gfns;
}

Status save_working_set(FileSystem& fs, const std::string& store_dir, uint64_t guest_pages,
                        std::span<const uint64_t> gfns) {
  if (gfns.size() > kMaxWorkingSetGfns) gfns = gfns.first(kMaxWorkingSetGfns);
  std::vector<uint8_t> bytes(kMagic, kMagic + sizeof kMagic);
  append_le<uint32_t>(bytes, kVersion);
  append_le<uint32_t>(bytes, static_cast<uint32_t>(gfns.size()));
  append_le<uint64_t>(bytes, guest_pages);
  for (uint64_t gfn : gfns) append_le<uint64_t>(bytes, gfn);
  append_le<uint64_t>(bytes, XXH3_64bits(bytes.data(), bytes.size()));
  const std::string path = path_of(store_dir), tmp = path + ".tmp";
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs.create(tmp));
  ByteBuffer buffer(bytes.size());
  std::memcpy(buffer.data(), bytes.data(), bytes.size());
  buffer.set_size(bytes.size());
  Status written = file->write(0, std::move(buffer));
  Status closed = file->close();
  if (written.is_ok()) written = closed;
  if (!written.is_ok()) {
    (void)fs.remove(tmp);
    return written;
  }
  return fs.rename(tmp, path);
}

}  // namespace ckpt::snap
