// ckpt inspect --store DIR [--epoch N] [--json]: a store's totals, or one epoch's blocks and state blobs.
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

nlohmann::json store_totals(const snap::Catalog& catalog) {
  snap::EpochStats total;
  uint64_t unreadable = 0;
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
  }
  return {{"store", catalog.dir()},
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
          {"compression_ratio", compression_ratio(total)},
          {"state_bytes", total.state_bytes}};
}

nlohmann::json epoch_detail(uint64_t epoch, const snap::CatalogEntry& entry) {
  nlohmann::json j = control::epoch_summary_json(epoch, entry);
  if (!entry.meta) return j;
  std::map<std::string, uint64_t> codecs;
  for (const snap::BlockRef& b : entry.meta->blocks) {
    if (b.data_pages > 0) ++codecs[b.codec == snap::Codec::kZstd ? "zstd" : "raw"];
  }
  j["blocks_by_codec"] = codecs;
  j["compression_ratio"] = compression_ratio(entry.meta->stats);
  nlohmann::json states = nlohmann::json::array();
  for (const snap::StateBlob& s : entry.meta->states) states.push_back({{"name", s.name}, {"bytes", s.data.size()}});
  j["state"] = states;
  return j;
}

void print_human(const nlohmann::json& j) {
  for (const auto& [key, value] : j.items()) {
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
