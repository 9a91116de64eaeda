// Medians and tail percentiles of repeated measurements. These machines are shared and noisy, so every figure the
// suite reports is a median or a p99 of many samples, never a single run or a mean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace ckpt::bench {

struct Summary {
  size_t n = 0;
  double min = 0;
  double median = 0;
  double p99 = 0;  // nearest rank: with fewer than 100 samples this is the maximum
  double max = 0;
};

inline Summary summarize(std::vector<double> values) {
  Summary s;
  s.n = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  size_t mid = values.size() / 2;
  s.median = values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
  auto rank = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(values.size())));
  s.p99 = values[std::max<size_t>(rank, 1) - 1];
  s.min = values.front();
  s.max = values.back();
  return s;
}

}  // namespace ckpt::bench
