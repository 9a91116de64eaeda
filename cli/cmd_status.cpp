// ckpt status [--json | --brief]: the running daemon's state and counters (live). --json prints the daemon's status
// result unchanged (docs/protocol.md); --brief one line for a prompt, a tmux status bar or a watch loop.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/reply_fields.h"

namespace ckpt::cli {

namespace {

using nlohmann::json;

std::string ms(double v, const char* format = "%.2f ms") {
  char out[32];
  std::snprintf(out, sizeof out, format, v);
  return out;
}

// "epoch 12: 45% of 1.2 GiB in, 130 faults (40 waited for a read), 3.1 s" or "... all in after 3.1 s, ..."
std::string lazy_restore_text(const json& l) {
  uint64_t data = count_field(l, "data_pages"), in = count_field(l, "installed_pages");
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.2f s", number_field(l, "seconds"));
  std::string progress =
      field(l, "filled").is_boolean() && field(l, "filled").get<bool>()
          ? "all " + human_bytes(data * 4096) + " in after " + seconds
          : std::to_string(data ? in * 100 / data : 100) + "% of " + human_bytes(data * 4096) + " in, " + seconds;
  return "epoch " + std::to_string(count_field(l, "epoch")) + ": " + progress + "; " +
         group_digits(count_field(l, "faults")) + " faults, " + group_digits(count_field(l, "fault_reads")) +
         " of them waited for a block; " + group_digits(count_field(l, "prefetch_blocks")) +
         " blocks prefetched from the working-set record";
}

std::string disks_text(uint64_t disks) {
  if (disks == 0) return "";
  return ", " + std::to_string(disks) + (disks == 1 ? " disk" : " disks");
}

// Every value is escaped: the store path and last error are the daemon's text, and may hold anything.
void row(const char* label, const std::string& value) {
  std::printf("%-15s %s\n", label, printable(value).c_str());
}

void print_human(const json& s) {
  const json& vm = field(s, "vm");
  const json& pause = field(s, "pause_ms");
  const json& writer = field(s, "writer");
  std::string state = text_field(s, "state");
  if (state == "epochs-paused") state += " (no periodic epochs until 'ckpt resume'; the guest runs)";
  if (state == "failed") state += " (dirty tracking broke: no more periodic epochs; see last error)";
  if (state == "guest-stopped") state += " (no more epochs; 'ckpt restore EPOCH' brings back a running guest)";
  row("state", state);
  const json& stop = field(s, "guest_stop");
  if (stop.is_object()) row("guest stop", text_field(stop, "reason") + ": " + text_field(stop, "detail"));
  std::string guest = field(vm, "guest").is_string() ? text_field(vm, "guest") + " guest, " : "";
  row("vm", guest + text_field(vm, "backend") + " backend, " + text_field(vm, "tracking") + " tracking, " +
                human_bytes(count_field(vm, "memory_bytes")) + ", " + std::to_string(count_field(vm, "vcpus")) +
                " vCPUs" + disks_text(count_field(vm, "disks")));
  row("store", text_field(s, "store"));
  if (field(s, "compaction").is_object()) {  // older daemons have no compactor
    const json& c = field(s, "compaction");
    char amp[32];
    std::snprintf(amp, sizeof amp, "%.2f", number_field(c, "read_amplification"));
    row("compaction", group_digits(count_field(c, "store_epochs")) + " epochs, " +
                          human_bytes(count_field(c, "store_bytes")) + " in files; chain " +
                          group_digits(count_field(c, "chain_length")) + " epochs (read amplification " + amp +
                          "); " + group_digits(count_field(c, "rebases")) + " rebases, " +
                          group_digits(count_field(c, "retention_removed_epochs")) + " epochs removed by retention");
  }
  row("uptime", human_duration(number_field(s, "uptime_seconds")));
  row("epochs", group_digits(count_field(s, "epochs_committed")) + " committed, " +
                    group_digits(count_field(s, "epochs_failed")) + " failed, every " +
                    std::to_string(count_field(s, "epoch_ms")) + " ms");
  row("last epoch", epoch_field(s, "last_committed_epoch") + " (the next builds on " + epoch_field(s, "parent_epoch") +
                        ")");
  if (field(s, "resumed_from_epoch").is_number()) row("resumed from", epoch_field(s, "resumed_from_epoch"));
  if (field(s, "lazy_restore").is_object()) row("lazy restore", lazy_restore_text(field(s, "lazy_restore")));
  row("pause", "mean " + ms(number_field(pause, "mean")) + ", p50 " + ms(number_field(pause, "p50")) + ", p99 " +
                   ms(number_field(pause, "p99")) + ", max " + ms(number_field(pause, "max")) + " (" +
                   group_digits(count_field(pause, "count")) + " pauses)");
  row("dirty pages", group_digits(count_field(s, "dirty_pages_total")) + " total, " +
                         group_digits(static_cast<uint64_t>(number_field(s, "dirty_pages_per_second"))) +
                         " per second");
  uint64_t raw = count_field(s, "bytes_raw_total"), stored = count_field(s, "bytes_stored_total");
  row("bytes", human_bytes(raw) + " raw, " + human_bytes(stored) + " written to the store (ratio " +
                   ratio_text(raw, stored) + ")");
  if (count_field(vm, "disks") > 0) {
    row("disk blocks", group_digits(count_field(s, "disk_blocks_total")) + " written by the guest (4 KiB each), " +
                           group_digits(count_field(s, "last_epoch_disk_blocks")) + " in the last epoch");
  }
  uint64_t owed_blocks = count_field(s, "owed_disk_blocks");
  row("owed pages", group_digits(count_field(s, "owed_pages")) +
                        (owed_blocks ? ", and " + group_digits(owed_blocks) + " disk blocks" : std::string()));
  uint64_t backlog = count_field(writer, "backlog_epochs");
  row("writer", "backlog " + std::to_string(backlog) + (backlog == 1 ? " epoch" : " epochs") + ", lag " +
                    ms(number_field(writer, "lag_ms")) + ", " + group_digits(count_field(writer, "epochs_stretched")) +
                    " stretched, " + group_digits(count_field(writer, "oversized_epochs")) + " oversized, staging " +
                    human_bytes(count_field(writer, "staging_bytes")));
  row("errors", group_digits(count_field(s, "errors_total")));
  std::string last_error = text_field(s, "last_error");
  row("last error", last_error.empty() ? "-" : last_error);
}

// epoch 42 | 41 committed | pause p99 1.9 ms | 12,345 dirty pages/s | 3.1 MiB written (212x) | running
void print_brief(const json& s) {
  uint64_t raw = count_field(s, "bytes_raw_total"), stored = count_field(s, "bytes_stored_total");
  uint64_t dirty_per_s = static_cast<uint64_t>(number_field(s, "dirty_pages_per_second"));
  std::string line = "epoch " + epoch_field(s, "last_committed_epoch") + " | " +
                     group_digits(count_field(s, "epochs_committed")) + " committed | pause p99 " +
                     ms(number_field(field(s, "pause_ms"), "p99"), "%.1f ms") + " | " + group_digits(dirty_per_s) +
                     " dirty pages/s | " + human_bytes(stored) + " written (" + ratio_text(raw, stored) + ") | " +
                     text_field(s, "state");
  if (uint64_t errors = count_field(s, "errors_total")) {
    line += " | " + group_digits(errors) + (errors == 1 ? " error" : " errors");
  }
  std::printf("%s\n", printable(line).c_str());
}

}  // namespace

void add_status_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand("status", "Show the running daemon's state, pause times, throughput and errors");
  cmd->footer(
      "Examples:\n"
      "  ckpt status\n"
      "  ckpt status --brief                  one line, e.g. for watch -n1\n"
      "  ckpt status --json | jq .pause_ms    the daemon's status result, unchanged\n");
  auto json_out = std::make_shared<bool>(false);
  auto brief = std::make_shared<bool>(false);
  auto* j = cmd->add_flag("--json", *json_out, "Print the daemon's status result as JSON");
  cmd->add_flag("--brief", *brief, "One line: epoch, pause p99, dirty pages/s, bytes written, state")->excludes(j);
  cmd->callback([=, &daemon] {
    // status is answered from counters, without waiting for the epoch loop: a slow answer means trouble.
    DaemonAnswer a = call_daemon(daemon, "status", json::object(), std::chrono::seconds(30));
    if (a.error) {
      *exit_code = report("status", *a.error, *json_out);
      return;
    }
    if (*json_out) print_json(a.result);
    else if (*brief) print_brief(a.result);
    else print_human(a.result);
    *exit_code = kExitOk;
  });
}

}  // namespace ckpt::cli
