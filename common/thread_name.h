// Names the calling thread (Linux keeps 15 characters), so that top -H, perf and gdb tell ckptd's threads apart.
#pragma once

#include <pthread.h>

#include <string>

namespace ckpt {

inline void name_this_thread(const std::string& name) {
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());  // only fails on over-long names
}

}  // namespace ckpt
