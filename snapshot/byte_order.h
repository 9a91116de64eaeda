// Little-endian field access for on-disk structures. The format is little-endian; so is every host ckptd runs on.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ckpt::snap {

static_assert(std::endian::native == std::endian::little, "the on-disk format assumes a little-endian host");

template <typename T>
inline T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
inline void store_le(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename T>
inline void append_le(std::vector<uint8_t>& out, T v) {
  size_t at = out.size();
  out.resize(at + sizeof v);
  std::memcpy(out.data() + at, &v, sizeof v);
}

}  // namespace ckpt::snap
