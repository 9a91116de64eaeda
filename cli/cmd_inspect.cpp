// ckpt inspect --store DIR [--epoch N] [--json]: a store's totals, or one epoch's blocks and state blobs; for a VM
// with disks (format 1.1) each disk too. A store without disks prints exactly what it did before disks existed.
#include <cstdio>
#include <map>
#include <optional>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/numeric_option.h"
#include "cli/output.h"
#include "cli/store_access.h"
#include "daemon/control/epoch_json.h"

namespace ckpt::cli {

namespace {

// One disk: its layout and `stats` (one epoch's, or the store's totals).
nlohmann::json disk_json(const snap::DiskSpace& d, const snap::DiskStats& stats) {
  return {{"id", d.id},
          {"name", d.name},
          {"blocks", d.blocks},
          {"size_bytes", d.blocks * snap::format::kPageSize},
          {"read_only", d.read_only},
          {"data_blocks", stats.data_blocks},
          {"zero_blocks", stats.zero_blocks},
          {"stored_bytes", stats.stored_bytes}};
}

// The newest readable epoch's disks, with each disk's blocks summed over every readable epoch that has a disk of
// that id and name (a new base may change a store's disks; its chains may not).
nlohmann::json disk_totals(const snap::Catalog& catalog) {
  nlohmann::json disks = nlohmann::json::array();
  const snap::EpochMeta* newest = nullptr;
  for (auto it = catalog.entries().rbegin(); it != catalog.entries().rend() && !newest; ++it) {
    newest = it->second.meta.get();
  }
  if (!newest) return disks;
  for (const snap::DiskSpace& d : newest->disks) {
    snap::DiskStats total;
    for (const auto& [epoch, entry] : catalog.entries()) {
      if (!entry.meta || d.id > entry.meta->disks.size()) continue;
      const snap::DiskSpace& same = entry.meta->disks[d.id - 1];
      if (same.name != d.name) continue;
      total.data_blocks += same.stats.data_blocks;
      total.zero_blocks += same.stats.zero_blocks;
      total.stored_bytes += same.stats.stored_bytes;
    }
    disks.push_back(disk_json(d, total));
  }
  return disks;
}

nlohmann::json store_totals(const snap::Catalog& catalog) {
  snap::EpochStats total;
  uint64_t unreadable = 0, file_bytes = 0;
  for (const auto& [epoch, entry] : catalog.entries()) {
    if (!entry.meta) {
      ++unreadable;
      continue;
    }
    const snap::EpochStats& s = entry.meta->stats;
    total.data_pages += s.data_pages;
    total.zero_pages += s.zero_pages;
    total.raw_bytes += s.raw_bytes;
    total.stored_bytes += s.stored_bytes;
    total.state_bytes += s.state_bytes;
    file_bytes += entry.meta->file_length;
  }
  nlohmann::json j{{"store", catalog.dir()},
          {"store_id", catalog.store_id()},
          {"guest_bytes", catalog.guest_pages() * snap::format::kPageSize},
          {"epochs", catalog.entries().size()},
          {"unreadable_epochs", unreadable},
          {"oldest", catalog.entries().begin()->first},
          {"newest", *catalog.newest()},
          {"pages_written", total.data_pages + total.zero_pages},
          {"zero_pages", total.zero_pages},
          {"raw_bytes", total.raw_bytes},
          {"stored_bytes", total.stored_bytes},
          {"file_bytes", file_bytes},
          {"compression_ratio", compression_ratio(total.raw_bytes, file_bytes)},
          {"state_bytes", total.state_bytes}};
  // Only for stores with disks: the output of stores without them stays as it was.
  nlohmann::json disks = disk_totals(catalog);
  if (!disks.empty()) j["disks"] = disks;
  return j;
}

nlohmann::json epoch_detail(uint64_t epoch, const snap::CatalogEntry& entry) {
  nlohmann::json j = control::epoch_summary_json(epoch, entry);
  if (!entry.meta) return j;
  std::map<std::string, uint64_t> codecs;
  for (const snap::BlockRef& b : entry.meta->blocks) {
    if (b.data_pages > 0) ++codecs[b.codec == snap::Codec::kZstd ? "zstd" : "raw"];
  }
  j["blocks_by_codec"] = codecs;
  j["compression_ratio"] = compression_ratio(entry.meta->stats.raw_bytes, entry.meta->file_length);
  nlohmann::json states = nlohmann::json::array();
  for (const snap::StateBlob& s : entry.meta->states) states.push_back({{"name", s.name}, {"bytes", s.data.size()}});
  j["state"] = states;
  if (!entry.meta->disks.empty()) {
    nlohmann::json disks = nlohmann::json::array();
    for (const snap::DiskSpace& d : entry.meta->disks) disks.push_back(disk_json(d, d.stats));
    j["disks"] = disks;
  }
  return j;
}

// "disk 1             'disk0' 64.0 MiB (16384 blocks), read-write: 120 data blocks, 30 zero blocks, stored ..."
void print_disks(const nlohmann::json& disks) {
  for (const auto& d : disks) {
    std::string name = printable(d["name"].get<std::string>());
    std::string label = "disk " + std::to_string(d["id"].get<uint32_t>());
    uint64_t stored = d["stored_bytes"].get<uint64_t>();
    std::printf("%-18s '%s' %s (%s blocks), %s: %s data blocks, %s zero blocks, stored %s (%llu)\n", label.c_str(),
                name.c_str(), human_bytes(d["size_bytes"].get<uint64_t>()).c_str(),
                group_digits(d["blocks"].get<uint64_t>()).c_str(),
                d["read_only"].get<bool>() ? "read-only" : "read-write",
                group_digits(d["data_blocks"].get<uint64_t>()).c_str(),
                group_digits(d["zero_blocks"].get<uint64_t>()).c_str(), human_bytes(stored).c_str(),
                static_cast<unsigned long long>(stored));
  }
}

void print_human(const nlohmann::json& j) {
  for (const auto& [key, value] : j.items()) {
    if (key == "disks" && value.is_array()) {
      print_disks(value);
      continue;
    }
    // Strings (the store path) escaped for the terminal; anything else as ASCII-only JSON, escaped the same way.
    std::string text = value.is_string() ? printable(value.get<std::string>())
                                         : value.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    if ((key.find("bytes") != std::string::npos) && value.is_number_unsigned()) {
      text = human_bytes(value.get<uint64_t>()) + " (" + value.dump() + ")";
    }
    std::printf("%-18s %s\n", key.c_str(), text.c_str());
  }
}

int run_inspect(const std::string& dir, std::optional<uint64_t> epoch, bool json) {
  auto fs = open_read_fs();
  auto catalog = load_catalog(*fs, dir);
  if (!catalog.is_ok()) return report_error("inspect", catalog.status(), json);
  nlohmann::json out;
  if (epoch) {
    auto it = catalog->entries().find(*epoch);
    if (it == catalog->entries().end()) {
      return report_error("inspect", not_found("epoch " + std::to_string(*epoch) + " is not in store " + dir), json);
    }
    out = epoch_detail(*epoch, it->second);
  } else {
    out = store_totals(*catalog);
  }
  if (json) {
    print_json(out);
  } else {
    print_human(out);
  }
  return kExitOk;
}

}  // namespace

void add_inspect_command(CLI::App& app, int* exit_code) {
  auto* cmd =
      app.add_subcommand("inspect", "Show a store's totals, or one epoch's blocks, sizes and state blobs (offline)");
  cmd->footer(
      "Examples:\n"
      "  ckpt inspect --store /var/lib/ckptd\n"
      "  ckpt inspect --store /var/lib/ckptd --epoch 42 --json\n");
  auto dir = std::make_shared<std::string>();
  auto epoch = std::make_shared<std::optional<uint64_t>>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--store", *dir, "Store directory")->required()->type_name("DIR");
  cmd->add_option("--epoch", *epoch, "Inspect this epoch instead of the whole store")
      ->type_name("N")
      ->transform(whole_number());
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([=] { *exit_code = run_inspect(*dir, *epoch, *json); });
}

}  // namespace ckpt::cli
