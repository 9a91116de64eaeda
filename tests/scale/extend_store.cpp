// extend_store DIR COUNT: appends COUNT delta epochs to a store ckptd wrote, each holding no pages and
// the newest epoch's state blobs, so every new epoch restores (and resumes) to the same VM as that epoch: the memory
// of an idle guest does not change, and the vCPU state is the one it had. This builds a chain of 100,000 epochs in
// seconds (about 0.1 ms an epoch here, every one committed as ckptd commits it) instead of the minutes that 1 ms
// epochs of a real daemon would take (tests/scale/scale_test.sh, bench/long_store_bench.sh).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "snapshot/store.h"

namespace ckpt::snap {
namespace {

int run(const std::string& dir, uint64_t count) {
  StoreOptions options;
  options.create_if_missing = false;
  options.workers = 1;
  auto store = Store::open(dir, options);
  if (!store.is_ok()) return std::fprintf(stderr, "%s\n", store.status().to_string().c_str()), 1;
  auto newest = (*store)->newest();
  if (!newest) return std::fprintf(stderr, "%s holds no epochs\n", dir.c_str()), 1;
  Catalog catalog = (*store)->catalog_snapshot();
  auto state = catalog.entries().at(*newest).meta;
  if (!state) return std::fprintf(stderr, "epoch %llu is unreadable\n", (unsigned long long)*newest), 1;
  for (uint64_t i = 0; i < count; ++i) {
    auto writer = (*store)->begin_delta();
    Status s = writer.status();
    for (const StateBlob& blob : state->states) {
      if (s.is_ok()) s = (*writer)->add_state(blob.name, blob.data);
    }
    if (s.is_ok()) s = (*writer)->commit().status();
    if (!s.is_ok()) return std::fprintf(stderr, "epoch %llu: %s\n", (unsigned long long)i, s.to_string().c_str()), 1;
  }
  std::printf("%s: %zu epochs, newest %llu\n", dir.c_str(), (*store)->epoch_count(),
              (unsigned long long)*(*store)->newest());
  return 0;
}

}  // namespace
}  // namespace ckpt::snap

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: extend_store DIR COUNT\n");
    return 2;
  }
  return ckpt::snap::run(argv[1], std::strtoull(argv[2], nullptr, 10));
}
