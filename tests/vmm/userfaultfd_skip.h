// For tests that need a userfaultfd: a machine or a sandbox without one (no
// permission, a kernel without the feature) skips the test, saying why; any
// other failure fails it.
#pragma once

#include <gtest/gtest.h>

#include "common/status.h"

// Declares `var` = `expr` (a StatusOr); skips the test on kPermission or
// kUnsupported, asserts success otherwise.
#define ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(var, expr)                          \
  auto var = (expr);                                                           \
  if (!var.is_ok() &&                                                          \
      (var.status().code() == ::ckpt::StatusCode::kPermission ||               \
       var.status().code() == ::ckpt::StatusCode::kUnsupported)) {             \
    GTEST_SKIP() << var.status().to_string();                                  \
  }                                                                            \
  ASSERT_TRUE(var.is_ok()) << var.status().to_string();
