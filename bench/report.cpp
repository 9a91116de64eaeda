#include <iostream>
#include <sstream>

#include "bench/figures.h"
#include "bench/synthetic_image.h"

namespace ckpt::bench {
namespace {

using Field = double Step::*;

double median_of(const std::vector<Step>& steps, Field field) {
  std::vector<double> values;
  for (const Step& s : steps) values.push_back(s.*field);
  return median(values);
}

std::string list_of(const std::vector<Step>& steps, Field field) {
  std::string out;
  for (const Step& s : steps) out += (out.empty() ? "" : ", ") + format_fixed(s.*field, 2);
  return out;
}

std::string verdict(bool met) { return met ? "**met**" : "**MISSED**"; }

// "2.345 s = 0.915 GB/s"
std::string time_and_rate(double bytes, double seconds) {
  return format_fixed(seconds, 3) + " s = " + format_rate(bytes, seconds);
}

std::string image_description(const Config& config, const Results& r) {
  const std::vector<double>& c = r.class_fractions;
  std::string mib = format_fixed(static_cast<double>(r.image_pages * kPageSize) / (1 << 20), 0);
  if (!r.image_files.empty()) {
    return "- Image: " + std::to_string(r.image_files.size()) + " captured memory images of " + mib + " MiB (" +
           std::to_string(r.image_pages) + " pages) from " + config.images + " (the first is the base, each next one " +
           "a delta of the pages it changed); newest epoch " + format_fixed(100 * c[0], 1) + "% zero pages.";
  }
  return "- Image: " + mib + " MiB (" + std::to_string(r.image_pages) + " pages), seed " +
         std::to_string(config.seed) + "; newest epoch " + format_fixed(100 * c[0], 1) + "% zero / " +
         format_fixed(100 * c[1], 1) + "% structured / " + format_fixed(100 * c[2], 1) +
         "% random pages; structured pages compress " + format_fixed(r.structured_ratio, 2) +
         "x with zstd -1 in 256 KiB frames.";
}

void print_setting(std::ostream& out, const Config& config, const Results& r) {
  MachineInfo m = describe_machine(r.dir);
  out << "- Machine: " << m.cpus << " CPUs (" << m.cpu_model << "), " << m.kernel << "; bench directory on "
      << m.file_system << "; zstd CLI " << m.zstd_version << ".\n"
      << "- Other load: besides this benchmark and its zstd children, the machine was busy with "
      << format_fixed(r.base_cpu.other_cpus(), 2) << " CPUs on average during the base-write steps, "
      << format_fixed(r.delta_cpu.other_cpus(), 2) << " during the deltas and "
      << format_fixed(r.restore_cpu.other_cpus(), 2) << " during the restores (other jobs and kernel threads, "
      << "writeback among them).\n"
      << "- Store: " << r.base.engine << " writes, zstd level " << config.level
      << " in blocks of up to 64 data pages, one compression "
      << "worker per CPU.\n"
      << image_description(config, r) << "\n"
      << "- Base epoch: " << r.base.stats.data_pages << " data pages, " << r.base.stats.zero_pages << " zero pages, "
      << r.base.stats.block_count << " blocks (" << r.base.raw_blocks << " stored raw).\n"
      << "- Restore: " << r.restore.stats.epochs_in_chain << " epochs in the chain, " << r.restore.stats.blocks_read
      << " blocks read, " << format_mib(static_cast<double>(r.restore.stats.bytes_read))
      << " of stored bytes read; every restored file verified bit-exact against the in-memory image.\n\n";
}

void print_goals(std::ostream& out, const Config& config, const Results& r) {
  auto bytes = static_cast<double>(r.image_pages * kPageSize);
  double zstd_w = median_of(r.base.zstd, &Step::seconds), store_w = median_of(r.base.store, &Step::seconds);
  double zstd_r = median_of(r.restore.zstd, &Step::seconds), store_r = median_of(r.restore.store, &Step::seconds);
  double write_ratio = zstd_w / store_w, restore_ratio = zstd_r / store_r;
  double size_ratio = static_cast<double>(r.base.store_bytes) / static_cast<double>(r.base.zstd_bytes);
  out << "| goal (medians of " << config.repeats << ") | ckptd store | zstd CLI | store vs zstd | goal | |\n"
      << "|---|---|---|---|---|---|\n"
      << "| base write throughput, durable | " << time_and_rate(bytes, store_w) << " | "
      << time_and_rate(bytes, zstd_w) << " | " << format_fixed(write_ratio, 2) << "x | >= 1.5x | "
      << verdict(write_ratio >= 1.5) << " |\n"
      << "| base output size | " << format_mib(static_cast<double>(r.base.store_bytes)) << " | "
      << format_mib(static_cast<double>(r.base.zstd_bytes)) << " | " << format_fixed(size_ratio, 3) << "x | <= 1.05x | "
      << verdict(size_ratio <= 1.05) << " |\n"
      << "| restore of the newest epoch (base + " << r.deltas.size() << " deltas), durable | "
      << time_and_rate(bytes, store_r) << " | " << time_and_rate(bytes, zstd_r) << " | "
      << format_fixed(restore_ratio, 2) << "x | >= 1.5x | " << verdict(restore_ratio >= 1.5) << " |\n\n";
}

// Every repeat, with CPU time and the durability tail: what the medians hide on a shared machine.
void print_steps(std::ostream& out, const Config& config, const Results& r) {
  auto row = [&](const char* name, const std::vector<Step>& steps, const char* tail) {
    out << "| " << name << " | " << list_of(steps, &Step::seconds) << " | " << list_of(steps, &Step::cpu_seconds)
        << " | " << (tail ? list_of(steps, &Step::tail_seconds) + " (" + tail + ")" : std::string("-")) << " |\n";
  };
  out << "| step | wall s, in order | CPU s (process + children) | of which durability tail, s |\n"
      << "|---|---|---|---|\n";
  row("zstd -1 -T2 + fsync", r.base.zstd, "fsync");
  row("store base write", r.base.store, "commit");
  row("zstd -d + fsync", r.restore.zstd, "fsync");
  row("store restore_to_file", r.restore.store, "fsync");
  out << "\nSteps alternate: zstd, store, zstd, store, ..., after " << config.warmup
      << " untimed warm-up round(s) of each comparison.\n\n";
}

void print_deltas(std::ostream& out, const std::vector<DeltaFigures>& deltas) {
  if (deltas.empty()) return;
  out << "| delta | dirty pages | zero pages | time (commit) | throughput | CPU s | epoch file | file / dirty |\n"
      << "|---|---|---|---|---|---|---|---|\n";
  std::vector<double> seconds;
  for (const DeltaFigures& d : deltas) {
    double raw = static_cast<double>(d.dirty_pages * kPageSize);
    out << "| " << d.epoch << " | " << d.dirty_pages << " | " << d.stats.zero_pages << " | "
        << format_fixed(d.step.seconds * 1e3, 1) << " ms (" << format_fixed(d.step.tail_seconds * 1e3, 1)
        << " ms) | " << format_rate(raw, d.step.seconds) << " | " << format_fixed(d.step.cpu_seconds, 2) << " | "
        << format_mib(static_cast<double>(d.file_bytes)) << " | "
        << format_fixed(static_cast<double>(d.file_bytes) / raw, 3) << " |\n";
    seconds.push_back(d.step.seconds);
  }
  double med = median(seconds);
  out << "\nDeltas: median " << format_fixed(med * 1e3, 1) << " ms = "
      << format_rate(static_cast<double>(deltas.front().dirty_pages * kPageSize), med) << " of dirty pages.\n";
}

}  // namespace

void print_report(const Config& config, const Results& results) {
  std::ostringstream out;
  out << "## store_bench results\n\n";
  print_setting(out, config, results);
  print_goals(out, config, results);
  print_steps(out, config, results);
  print_deltas(out, results.deltas);
  std::cout << "\n" << out.str() << std::flush;
}

}  // namespace ckpt::bench
