#include "daemon/metrics/prometheus.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace ckpt::daemon {
namespace {

constexpr double kMsPerSecond = 1000;

std::string integer(uint64_t value) { return std::to_string(value); }

// Shortest text that reads back as the same double; the exposition format spells the non-finite values this way.
std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "NaN";  // cannot happen with 32 bytes; keeps the line parseable regardless
  return std::string(buf, end);
}

// Bucket bounds are scaled (ms -> s), so 0.1 / 1000 is not exactly 0.0001; 12 significant digits hide that and
// keep the le values stable and readable across scrapes: le="0.0001", le="0.00025", le="1".
std::string bound(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", value);
  return buf;
}

// Label values escape backslash, double quote and newline; HELP text escapes backslash and newline only.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string label(std::string_view key, std::string_view value) {
  return std::string(key) + "=\"" + escape(value, true) + "\"";
}

// Accumulates one exposition: each family gets its HELP and TYPE lines directly before its samples.
class Exposition {
 public:
  void counter(std::string_view name, std::string_view help, uint64_t value) {
    family(name, help, "counter");
    sample(name, {}, integer(value));
  }
  void gauge(std::string_view name, std::string_view help, const std::string& value, std::string_view labels = {}) {
    family(name, help, "gauge");
    sample(name, labels, value);
  }
  // Bounds and sum are divided by `divisor` to get the exported unit (1000 turns milliseconds into seconds).
  template <size_t N>
  void histogram(std::string_view name, std::string_view help, const Histogram<N>& h, double divisor);

  std::string take() { return std::move(out_); }

 private:
  void family(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, std::string_view labels, const std::string& value);

  std::string out_;
};

void Exposition::family(std::string_view name, std::string_view help, std::string_view type) {
  out_.append("# HELP ").append(name).append(" ").append(escape(help, false)).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::sample(std::string_view name, std::string_view labels, const std::string& value) {
  out_.append(name);
  if (!labels.empty()) out_.append("{").append(labels).append("}");
  out_.append(" ").append(value).append("\n");
}

template <size_t N>
void Exposition::histogram(std::string_view name, std::string_view help, const Histogram<N>& h, double divisor) {
  family(name, help, "histogram");
  const std::string base(name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += h.buckets[i];
    sample(base + "_bucket", label("le", bound(h.bounds[i] / divisor)), integer(cumulative));
  }
  cumulative += h.buckets[N];
  sample(base + "_bucket", label("le", "+Inf"), integer(cumulative));
  sample(base + "_sum", {}, number(h.sum / divisor));
  // The format requires _count == the +Inf bucket; deriving it from the buckets keeps that true by construction.
  sample(base + "_count", {}, integer(cumulative));
}

void render_vm(Exposition& e, const DaemonStats& s) {
  const std::string labels =
      label("backend", s.backend) + "," + label("tracking", s.tracking) + "," + label("state", s.state) + "," +
      label("guest", s.guest);
  e.gauge("ckptd_vm_info", "The checkpointed VM: backend, dirty tracking mode, daemon state and guest kind; always 1.",
          "1", labels);
  e.gauge("ckptd_guest_stopped", "1 when the guest stopped itself (triple fault, reset): no epochs until a restore.",
          integer(s.guest_stop.empty() ? 0 : 1));
  e.gauge("ckptd_vm_memory_bytes", "Guest memory size in bytes.", integer(s.memory_bytes));
  e.gauge("ckptd_vm_vcpus", "Number of guest vCPUs.", integer(s.vcpus));
  e.gauge("ckptd_vm_disks", "Number of the guest's virtio-blk disks.", integer(s.disks));
  e.gauge("ckptd_uptime_seconds", "Seconds since the daemon started.", number(s.uptime_seconds));
}

void render_epochs(Exposition& e, const DaemonStats& s) {
  e.counter("ckptd_epochs_committed_total", "Epochs committed to the store, the base included.", s.epochs_committed);
  e.counter("ckptd_epochs_failed_total", "Epochs whose write failed; their pages are owed to the next epoch.",
            s.epochs_failed);
  e.counter("ckptd_epochs_skipped_total",
            "Failed epochs that were captured before an earlier epoch's write failed and so were not written.",
            s.epochs_skipped);
  // Omitted rather than exported as NaN or 0 while nothing is committed: 0 would read as a real epoch number.
  if (s.last_committed_epoch) {
    e.gauge("ckptd_last_committed_epoch", "Number of the newest committed epoch.",
            integer(*s.last_committed_epoch));
  }
  if (s.resumed_from_epoch) {
    e.gauge("ckptd_resumed_from_epoch", "Committed epoch the VM was rebuilt from at start.",
            integer(*s.resumed_from_epoch));
  }
  e.histogram("ckptd_pause_seconds", "Time the VM was paused to capture an epoch.", s.pause_ms, kMsPerSecond);
  e.gauge("ckptd_last_pause_seconds", "Pause time of the most recent epoch.", number(s.last_pause_ms / kMsPerSecond));
}

void render_volume(Exposition& e, const DaemonStats& s) {
  e.histogram("ckptd_epoch_dirty_pages", "Dirty pages captured per epoch.", s.dirty_pages, 1);
  e.counter("ckptd_dirty_pages_total", "Dirty pages captured over all epochs.", s.dirty_pages_total);
  e.counter("ckptd_disk_blocks_total", "Disk blocks (4 KiB) the guest wrote, as the epochs after the base captured them.",
            s.disk_blocks_total);
  e.gauge("ckptd_last_epoch_disk_blocks", "Disk blocks captured by the most recent committed epoch.",
          integer(s.last_epoch_disk_blocks));
  e.counter("ckptd_raw_bytes_total", "Page and disk block bytes handed to the store (4 KiB each).", s.bytes_raw_total);
  e.counter("ckptd_stored_bytes_total",
            "Bytes of the epoch files written for them: compressed blocks, metadata, headers and footers.",
            s.bytes_stored_total);
  const CompactionStats& c = s.compaction;
  e.gauge("ckptd_store_epochs", "Committed epochs in the store.", integer(c.store_epochs));
  e.gauge("ckptd_store_bytes", "Bytes of the store's committed epoch files.", integer(c.store_bytes));
  e.gauge("ckptd_chain_length", "Epochs a restore of the running VM's newest epoch reads, its base included.",
          integer(c.chain_length));
  e.gauge("ckptd_chain_read_amplification", "Bytes of that chain's files per byte of its base.",
          number(c.read_amplification));
  e.counter("ckptd_rebases_total", "Background rebases: chains folded into a new base while the guest ran.",
            c.rebases);
  e.counter("ckptd_rebase_bytes_written_total", "Bytes of the bases background rebases wrote.",
            c.rebase_bytes_written);
  e.counter("ckptd_retention_removed_epochs_total", "Epochs background retention removed.", c.epochs_removed);
  e.counter("ckptd_compaction_errors_total", "Background rebases and retention runs that failed.", c.errors);
}

void render_back_pressure(Exposition& e, const DaemonStats& s) {
  e.gauge("ckptd_writer_backlog_epochs", "Epochs captured but not yet committed.", integer(s.writer_backlog_epochs));
  e.gauge("ckptd_writer_lag_seconds", "How late the last epoch started because the writer was still busy.",
          number(s.writer_lag_ms / kMsPerSecond));
  e.counter("ckptd_epochs_stretched_total", "Epochs that started late because the writer was still busy.",
            s.epochs_stretched);
  e.counter("ckptd_oversized_epochs_total", "Epochs whose dirty set exceeded the staging area and was written "
            "while the VM stayed paused.", s.oversized_epochs);
  e.gauge("ckptd_owed_pages", "Pages of failed writes waiting for the next epoch.", integer(s.owed_pages));
  e.gauge("ckptd_owed_disk_blocks", "Disk blocks of failed writes waiting for the next epoch.",
          integer(s.owed_disk_blocks));
  e.gauge("ckptd_staging_capacity_bytes", "Size of the staging area for captured pages.",
          integer(s.staging_capacity_bytes));
  e.counter("ckptd_errors_total", "Errors the daemon reported.", s.errors_total);
}

}  // namespace

std::string render_prometheus(const DaemonStats& s) {
  Exposition e;
  render_vm(e, s);
  render_epochs(e, s);
  render_volume(e, s);
  render_back_pressure(e, s);
  return e.take();
}

}  // namespace ckpt::daemon
