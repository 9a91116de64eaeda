// Helpers for the vmm/x86 tests: guest memory as a lazily zero-filled anonymous mapping (so a 3 GiB guest costs
// nothing until touched) and a scratch directory for kernel and initrd files.
#pragma once

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace ckpt::vmm::x86::test_util {

class TestMemory {
 public:
  explicit TestMemory(uint64_t bytes) : bytes_(bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  ~TestMemory() {
    if (base_ != nullptr) ::munmap(base_, bytes_);
  }
  TestMemory(const TestMemory&) = delete;
  TestMemory& operator=(const TestMemory&) = delete;
  bool ok() const { return base_ != nullptr; }
  std::span<uint8_t> span() { return {base_, bytes_}; }
  template <typename T>
  T at(uint64_t gpa) const {
    T v;
    std::memcpy(&v, base_ + gpa, sizeof v);
    return v;
  }

 private:
  uint8_t* base_ = nullptr;
  uint64_t bytes_;
};

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ckpt-x86-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                             static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ckpt::vmm::x86::test_util
