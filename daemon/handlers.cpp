#include "daemon/handlers.h"

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/log.h"
#include "daemon/control/epoch_json.h"
#include "daemon/control/protocol.h"
#include "snapshot/catalog.h"
#include "snapshot/format.h"
#include "snapshot/io/file_system.h"

namespace ckpt::daemon {
namespace {

using control::Reply;
using control::Request;
using nlohmann::json;
namespace code = control::error_code;

Reply error_reply(const Status& s) {
  std::string_view c = code::kFailed;
  switch (s.code()) {
    case StatusCode::kNotFound: c = code::kNotFound; break;
    case StatusCode::kCorruption: c = code::kCorruption; break;
    case StatusCode::kBusy: c = code::kBusy; break;
    case StatusCode::kInvalidArgument: c = code::kBadRequest; break;
    default: break;
  }
  return Reply::error(c, s.to_string());
}

// An optional unsigned integer argument; absent gives nullopt, anything but a non-negative integer an error.
Result<std::optional<uint64_t>> u64_arg(const json& args, const char* name) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return std::optional<uint64_t>();
  if (!it->is_number_unsigned()) return invalid_argument(std::string("'") + name + "' must be a non-negative integer");
  return std::optional<uint64_t>(it->get<uint64_t>());
}

Result<uint64_t> required_u64(const json& args, const char* name) {
  CKPT_ASSIGN_OR_RETURN(std::optional<uint64_t> v, u64_arg(args, name));
  if (!v) return invalid_argument(std::string("'") + name + "' is required");
  return *v;
}

json optional_json(const std::optional<uint64_t>& v) { return v ? json(*v) : json(nullptr); }

json status_json(Session& session) {
  DaemonStats s = session.stats();
  SessionInfo info = session.info();
  double seconds = std::max(s.uptime_seconds, 1e-9);
  json pause{{"count", s.pause_ms.count},         {"mean", s.pause_ms.count ? s.pause_ms.sum / s.pause_ms.count : 0},
             {"p50", s.pause_p50_ms},             {"p99", s.pause_p99_ms},
             {"max", s.pause_max_ms},             {"last", s.last_pause_ms}};
  return {{"state", s.state},
          {"vm", {{"backend", s.backend}, {"tracking", s.tracking}, {"memory_bytes", s.memory_bytes},
                  {"vcpus", s.vcpus}, {"guest", s.guest}, {"disks", s.disks}}},
          {"guest_stop", s.guest_stop.empty() ? json(nullptr)
                                              : json{{"reason", s.guest_stop}, {"detail", s.guest_stop_detail}}},
          {"store", info.store_dir},
          {"uptime_seconds", s.uptime_seconds},
          {"epoch_ms", info.epoch_ms},
          {"epochs_paused", info.epochs_paused},
          {"parent_epoch", optional_json(info.parent)},
          {"last_committed_epoch", optional_json(s.last_committed_epoch)},
          {"resumed_from_epoch", optional_json(s.resumed_from_epoch)},
          {"lazy_restore", s.lazy_restore ? json{{"epoch", s.lazy_restore->epoch},
                                                 {"data_pages", s.lazy_restore->data_pages},
                                                 {"installed_pages", s.lazy_restore->installed_pages},
                                                 {"faults", s.lazy_restore->faults},
                                                 {"fault_reads", s.lazy_restore->fault_reads},
                                                 {"prefetch_blocks", s.lazy_restore->prefetch_blocks},
                                                 {"bytes_read", s.lazy_restore->bytes_read},
                                                 {"filled", s.lazy_restore->filled},
                                                 {"seconds", s.lazy_restore->seconds}}
                                          : json(nullptr)},
          {"epochs_committed", s.epochs_committed},
          {"epochs_failed", s.epochs_failed},
          {"epochs_skipped", s.epochs_skipped},
          {"pause_ms", pause},
          {"dirty_pages_total", s.dirty_pages_total},
          {"dirty_pages_per_second", static_cast<double>(s.dirty_pages_total) / seconds},
          {"bytes_raw_total", s.bytes_raw_total},
          {"bytes_stored_total", s.bytes_stored_total},
          {"disk_blocks_total", s.disk_blocks_total},
          {"last_epoch_disk_blocks", s.last_epoch_disk_blocks},
          {"owed_pages", s.owed_pages},
          {"owed_disk_blocks", s.owed_disk_blocks},
          {"writer", {{"backlog_epochs", s.writer_backlog_epochs}, {"lag_ms", s.writer_lag_ms},
                      {"epochs_stretched", s.epochs_stretched}, {"oversized_epochs", s.oversized_epochs},
                      {"staging_bytes", s.staging_capacity_bytes}}},
          {"compaction", {{"store_epochs", s.compaction.store_epochs},
                          {"store_bytes", s.compaction.store_bytes},
                          {"chain_length", s.compaction.chain_length},
                          {"read_amplification", s.compaction.read_amplification},
                          {"rebases", s.compaction.rebases},
                          {"rebase_bytes_written", s.compaction.rebase_bytes_written},
                          {"last_rebase_seconds", s.compaction.last_rebase_seconds},
                          {"retention_removed_epochs", s.compaction.epochs_removed},
                          {"errors", s.compaction.errors}}},
          {"errors_total", s.errors_total},
          {"last_error", s.last_error}};
}

Reply handle_snapshot(Session& session, const Request& r) {
  std::string tag;
  if (auto it = r.args.find("tag"); it != r.args.end() && !it->is_null()) {
    if (!it->is_string()) return Reply::error(code::kBadRequest, "'tag' must be a string");
    tag = it->get<std::string>();
    if (tag.size() > snap::format::kMaxTagLength) {
      return Reply::error(code::kBadRequest, "'tag' is longer than " +
                                                 std::to_string(snap::format::kMaxTagLength) + " bytes");
    }
  }
  Result<EpochCommitted> e = session.snapshot(tag);
  if (!e.is_ok()) return error_reply(e.status());
  return Reply::success({{"epoch", e->epoch}, {"tag", tag}, {"dirty_pages", e->dirty_pages},
                         {"pause_ms", e->pause_ms}, {"stored_bytes", e->stored_bytes},
                         {"file_bytes", e->file_bytes}});
}

// One page: `limit` epochs (at most kListPageMax) above `after`, and where the next page starts.
Reply handle_list(Session& session, const Request& r) {
  Result<std::optional<uint64_t>> after = u64_arg(r.args, "after");
  Result<std::optional<uint64_t>> limit = u64_arg(r.args, "limit");
  if (!after.is_ok()) return error_reply(after.status());
  if (!limit.is_ok()) return error_reply(limit.status());
  if (*limit && (**limit == 0 || **limit > control::kListPageMax)) {
    return Reply::error(code::kBadRequest, "'limit' must be 1.." + std::to_string(control::kListPageMax));
  }
  bool more = false;
  auto page = session.list_epochs(*after, limit->value_or(control::kListPageMax), &more);
  json epochs = json::array();
  for (const auto& [epoch, entry] : page) epochs.push_back(control::epoch_summary_json(epoch, entry));
  json result{{"epochs", std::move(epochs)}, {"more", more}};
  if (more) result["next_after"] = page.back().first;
  return Reply::success(std::move(result));
}

Reply handle_restore(Session& session, const Request& r) {
  Result<uint64_t> epoch = required_u64(r.args, "epoch");
  if (!epoch.is_ok()) return error_reply(epoch.status());
  Result<RestoreOutcome> o = session.restore(*epoch);
  if (!o.is_ok()) return error_reply(o.status());
  return Reply::success(
      {{"restored_epoch", o->restored_epoch}, {"saved_epoch", optional_json(o->saved_epoch)}, {"seconds", o->seconds}});
}

Reply handle_compact(Session& session, const Request& r) {
  Result<uint64_t> epoch = required_u64(r.args, "epoch");
  if (!epoch.is_ok()) return error_reply(epoch.status());
  Status s = session.compact(*epoch);
  if (!s.is_ok()) return error_reply(s);
  return Reply::success({{"base_epoch", *epoch}});
}

Reply handle_retention(Session& session, const Request& r) {
  Result<std::optional<uint64_t>> keep_last = u64_arg(r.args, "keep_last");
  Result<std::optional<uint64_t>> keep_seconds = u64_arg(r.args, "keep_newer_than_seconds");
  if (!keep_last.is_ok()) return error_reply(keep_last.status());
  if (!keep_seconds.is_ok()) return error_reply(keep_seconds.status());
  snap::RetentionPolicy policy;
  policy.keep_last = *keep_last;
  if (*keep_seconds) policy.keep_newer_than_ns = snap::timestamp_seconds_ago(**keep_seconds);
  Result<uint64_t> removed = session.apply_retention(policy);
  if (!removed.is_ok()) return error_reply(removed.status());
  return Reply::success({{"removed_epochs", *removed}});
}

Reply simple(Status s, json result) { return s.is_ok() ? Reply::success(std::move(result)) : error_reply(s); }

}  // namespace

// Input first, so that a read in the same request can already see the guest's echo of it.
Reply handle_console(Console* console, const Request& r) {
  if (!console) return Reply::error(code::kNotFound, "this guest has no console (only a Linux guest has one)");
  Result<std::optional<uint64_t>> after = u64_arg(r.args, "after");
  Result<std::optional<uint64_t>> max = u64_arg(r.args, "max");
  Result<std::optional<uint64_t>> wait_ms = u64_arg(r.args, "wait_ms");
  for (const Status& s : {after.status(), max.status(), wait_ms.status()}) {
    if (!s.is_ok()) return error_reply(s);
  }
  uint64_t max_bytes = max->value_or(control::kConsoleReadDefault);
  if (max_bytes > control::kConsoleReadMax) {
    return Reply::error(code::kBadRequest, "'max' must be 0.." + std::to_string(control::kConsoleReadMax));
  }
  uint64_t wait = wait_ms->value_or(0);
  if (wait > control::kConsoleWaitMaxMs) {
    return Reply::error(code::kBadRequest, "'wait_ms' must be 0.." + std::to_string(control::kConsoleWaitMaxMs));
  }
  size_t accepted = 0;
  if (auto it = r.args.find("input"); it != r.args.end() && !it->is_null()) {
    if (!it->is_string()) return Reply::error(code::kBadRequest, "'input' must be a base64 string");
    Result<std::vector<uint8_t>> bytes = base64_decode(it->get_ref<const std::string&>());
    if (!bytes.is_ok()) return Reply::error(code::kBadRequest, "'input': " + bytes.status().message());
    if (!bytes->empty()) {
      Result<size_t> typed = console->write_input(*bytes);
      if (!typed.is_ok()) return error_reply(typed.status());
      accepted = *typed;
    }
  }
  Result<ConsoleRead> read = console->read(*after, max_bytes, std::chrono::milliseconds(wait));
  if (!read.is_ok()) return error_reply(read.status());
  return Reply::success({{"start", read->start},
                         {"data", base64_encode(read->data)},
                         {"next", read->next},
                         {"lost", read->lost},
                         {"input_accepted", accepted},
                         {"stopping", read->stopping}});
}

std::map<std::string, control::ControlServer::Handler> make_handlers(Session& session,
                                                                     std::function<void()> shutdown) {
  using P = control::PeerCredentials;
  Session* s = &session;
  return {
      {"status", [s](const Request&, const P&) { return Reply::success(status_json(*s)); }},
      {"snapshot", [s](const Request& r, const P&) { return handle_snapshot(*s, r); }},
      {"list", [s](const Request& r, const P&) { return handle_list(*s, r); }},
      {"restore", [s](const Request& r, const P&) { return handle_restore(*s, r); }},
      {"pause", [s](const Request&, const P&) { return simple(s->pause_epochs(), {{"epochs_paused", true}}); }},
      {"resume", [s](const Request&, const P&) { return simple(s->resume_epochs(), {{"epochs_paused", false}}); }},
      {"compact", [s](const Request& r, const P&) { return handle_compact(*s, r); }},
      {"retention", [s](const Request& r, const P&) { return handle_retention(*s, r); }},
      {"console", [s](const Request& r, const P&) { return handle_console(s->console(), r); }},
      {"shutdown",
       [shutdown](const Request&, const P& peer) {
         CKPT_LOG(kInfo) << "shutdown requested over the control socket by pid " << peer.pid << " uid " << peer.uid;
         shutdown();
         return Reply::success({{"stopping", true}});
       }},
  };
}

}  // namespace ckpt::daemon
