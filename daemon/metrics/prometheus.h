// Renders a DaemonStats snapshot in the Prometheus text exposition format 0.0.4. Every metric is named ckptd_*,
// carries its unit in the name (_seconds, _bytes, _total) and has # HELP and # TYPE lines. Durations are exported
// in seconds (the snapshot keeps milliseconds). last_error is not exported: free text makes a poor label value and
// ckpt status shows it.
#pragma once

#include <string>

#include "daemon/metrics/daemon_stats.h"

namespace ckpt::daemon {

// The Content-Type a scrape response carrying render_prometheus() output must declare.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string render_prometheus(const DaemonStats& s);

}  // namespace ckpt::daemon
