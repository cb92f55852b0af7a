// Alert retention: Store::expire_alerts and Store::alerts_bytes.
//
// Alerts are keyed by time, so the expired ones are a prefix of the alerts cf; but their
// index entries (by rule, by host) and ids are keyed by other values, so each alert is
// deleted with its entries, found from its stored record, in batches of a bounded size.

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <simdjson.h>

#include <algorithm>
#include <string>

#include "encoding.h"
#include "vigil/store/store.h"

namespace vigil::store {

using namespace encoding;

namespace {

// Alerts deleted per write: each batch is atomic, so a reader sees an alert with all its
// entries or none of them.
constexpr size_t kExpireBatch = 1000;

uint64_t cf_bytes(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf) {
  uint64_t sst = 0, mem = 0;
  db.GetIntProperty(cf, "rocksdb.live-sst-files-size", &sst);
  db.GetIntProperty(cf, "rocksdb.cur-size-all-mem-tables", &mem);
  return sst + mem;
}

// The rule id and host of a format-1 alert (a bare JSON document): its index keys.
void ids_from_json(std::string_view json, std::string& rule_id, std::string& host) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return;
  std::string_view v;
  if (doc.at_pointer("/rule/id").get_string().get(v) == simdjson::SUCCESS) rule_id = v;
  if (doc.at_pointer("/host").get_string().get(v) == simdjson::SUCCESS) host = v;
}

}  // namespace

uint64_t Store::alerts_bytes() const {
  uint64_t total = 0;
  for (auto* cf : {alerts_, by_rule_, by_host_, alert_ids_}) total += cf_bytes(*db_, cf);
  return total;
}

Expected<AlertRetentionResult> Store::expire_alerts(TimeMs now) {
  AlertRetentionResult result;
  const AlertRetentionOptions& o = alert_retention_;
  if (o.max_age_ms <= 0 && o.max_bytes == 0) return result;
  result.bytes_before = alerts_bytes();
  const TimeMs cutoff = o.max_age_ms > 0 ? now - o.max_age_ms : INT64_MIN;
  // Past the size limit: as many of the oldest alerts as the excess holds at the average
  // size of an alert on disk (compressed, with its index entries and id) go too.
  uint64_t size_quota = 0;
  if (o.max_bytes > 0 && result.bytes_before > o.max_bytes) {
    uint64_t alerts = 0;
    db_->GetIntProperty(alerts_, "rocksdb.estimate-num-keys", &alerts);
    const uint64_t per_alert =
        std::max<uint64_t>(1, result.bytes_before / std::max<uint64_t>(alerts, 1));
    size_quota = (result.bytes_before - o.max_bytes + per_alert - 1) / per_alert;
  }

  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, alerts_));
  rocksdb::WriteBatch batch;
  size_t in_batch = 0;
  std::string rule_id, host, first_deleted, last_deleted;
  AlertValue v;
  auto flush = [&]() -> Status {
    if (in_batch == 0) return Status::ok();
    if (auto s = write(batch); !s) return s;
    alerts_version_.fetch_add(1, std::memory_order_release);
    batch.Clear();
    in_batch = 0;
    return Status::ok();
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() != 24) continue;  // not an alert key: left alone (verify() reports it)
    const TimeMs time = time_from_key(key.data());
    if (time >= cutoff && result.alerts_deleted >= size_quota) {
      result.oldest_kept = time;
      break;
    }
    rule_id.clear();
    host.clear();
    const std::string_view value(it->value().data(), it->value().size());
    if (decode_alert_value(value, v)) {
      rule_id = v.rule_id;
      host = v.host;
      if (rule_id.empty() && !v.json.empty()) ids_from_json(v.json, rule_id, host);
    }
    const std::string k = key.ToString();
    batch.Delete(alerts_, k);
    if (!rule_id.empty()) batch.Delete(by_rule_, index_prefix(rule_id) + k);
    if (!host.empty()) batch.Delete(by_host_, index_prefix(host) + k);
    batch.Delete(alert_ids_, rocksdb::Slice(k.data() + 8, 16));
    if (first_deleted.empty()) first_deleted = k;
    last_deleted = k;
    ++result.alerts_deleted;
    if (++in_batch == kExpireBatch) {
      if (auto s = flush(); !s) return s;
    }
  }
  if (!it->status().ok()) return from_rocks(it->status(), "alert expiry scan failed");
  it.reset();
  if (auto s = flush(); !s) return s;
  if (result.alerts_deleted > 0) {
    // The tombstones are compacted away now, not when the range is next written: the point
    // of a size limit is the disk.
    last_deleted.push_back('\0');
    rocksdb::Slice b(first_deleted), e(last_deleted);
    (void)db_->CompactRange(rocksdb::CompactRangeOptions(), alerts_, &b, &e);
  }
  return result;
}

}  // namespace vigil::store
