#include "vigil/store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "encoding.h"

namespace vigil::store {

using namespace encoding;

namespace {

std::string offset_key(std::string_view stream, int32_t partition) {
  std::string k = "offset/";
  k += stream;
  k += '\0';
  put_u32(k, static_cast<uint32_t>(partition));
  return k;
}

// Outbox value: kind:u8 | key_len:u32 key | value_len:u32 value | n:u32 (name_len:u32 name
// value_len:u32 value)*n
std::string encode_outbox(const OutboxRecord& r) {
  std::string out;
  out.reserve(1 + 12 + r.message_key.size() + r.value.size() + r.headers.size() * 32);
  out += static_cast<char>(r.kind);
  put_u32(out, static_cast<uint32_t>(r.message_key.size()));
  out += r.message_key;
  put_u32(out, static_cast<uint32_t>(r.value.size()));
  out += r.value;
  put_u32(out, static_cast<uint32_t>(r.headers.size()));
  for (const auto& [k, v] : r.headers) {
    put_u32(out, static_cast<uint32_t>(k.size()));
    out += k;
    put_u32(out, static_cast<uint32_t>(v.size()));
    out += v;
  }
  return out;
}

bool decode_outbox(std::string_view in, OutboxRecord& r) {
  size_t pos = 0;
  auto u32 = [&](uint32_t& v) {
    if (in.size() - pos < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
    pos += 4;
    return true;
  };
  auto str = [&](std::string& s) {
    uint32_t n = 0;
    if (!u32(n) || in.size() - pos < n) return false;
    s.assign(in.substr(pos, n));
    pos += n;
    return true;
  };
  if (in.empty()) return false;
  const auto kind = static_cast<uint8_t>(in[pos++]);
  if (kind < 1 || kind > 3) return false;
  r.kind = static_cast<OutboxRecord::Kind>(kind);
  uint32_t n = 0;
  if (!str(r.message_key) || !str(r.value) || !u32(n) || n > in.size()) return false;
  r.headers.resize(n);
  for (auto& [k, v] : r.headers) {
    if (!str(k) || !str(v)) return false;
  }
  return pos == in.size();
}

}  // namespace

AlertId AlertId::derive(std::string_view stream, int32_t partition, int64_t offset,
                        std::string_view rule_id) {
  std::string material;
  material.reserve(stream.size() + rule_id.size() + 16);
  material += stream;
  material += '\0';
  put_u32(material, static_cast<uint32_t>(partition));
  put_u64(material, static_cast<uint64_t>(offset));
  material += rule_id;
  const XXH128_hash_t h = XXH3_128bits(material.data(), material.size());
  AlertId id;
  for (int i = 0; i < 8; ++i) {
    id.bytes[i] = static_cast<uint8_t>(h.high64 >> (56 - 8 * i));
    id.bytes[8 + i] = static_cast<uint8_t>(h.low64 >> (56 - 8 * i));
  }
  return id;
}

std::optional<AlertId> AlertId::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  auto raw = encoding::from_hex(hex);
  if (!raw) return std::nullopt;
  AlertId id;
  std::memcpy(id.bytes, raw->data(), 16);
  return id;
}

std::string AlertId::hex() const { return to_hex({reinterpret_cast<const char*>(bytes), 16}); }

std::optional<AlertLevel> parse_alert_level(std::string_view name) {
  static constexpr std::string_view kNames[] = {"informational", "low", "medium", "high",
                                                "critical"};
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (iequals(name, kNames[i])) return static_cast<AlertLevel>(i + 1);
  }
  return std::nullopt;
}

std::string_view alert_level_name(AlertLevel level) {
  switch (level) {
    case AlertLevel::kInformational:
      return "informational";
    case AlertLevel::kLow:
      return "low";
    case AlertLevel::kMedium:
      return "medium";
    case AlertLevel::kHigh:
      return "high";
    case AlertLevel::kCritical:
      return "critical";
    case AlertLevel::kUnknown:
      break;
  }
  return "unknown";
}

Status Store::scrub() {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  auto s = db_->VerifyChecksum(ro);
  if (s.ok()) return Status::ok();
  const std::string what = s.ToString();
  {
    MutexLock lock(damage_mu_);
    damage_ = what;
  }
  return Status::corruption("store '" + path_ + "' is damaged: " + what + "." +
                            " Queries reading the damaged blocks fail; restore from a checkpoint.");
}

std::string Store::damage() const {
  MutexLock lock(damage_mu_);
  return damage_;
}

Store::~Store() {
  if (!db_) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
  db_.reset();
}

// RocksDB's group commit hands one writer's WriteBatch to the thread leading the group,
// through a handshake in its WriteThread that ThreadSanitizer cannot see (RocksDB is not
// instrumented), so TSan reports the leader's copy as a race. TSan builds serialise the
// writes instead, so no batch crosses threads; every other build lets RocksDB group them.
rocksdb::Status Store::db_write(const rocksdb::WriteOptions& options, rocksdb::WriteBatch& batch) {
#if defined(__SANITIZE_THREAD__)
  std::lock_guard lock(tsan_write_mu_);
#endif
  return db_->Write(options, &batch);
}

Status Store::write(rocksdb::WriteBatch& batch) {
  if (!writable_.load()) {
    // After a background error (disk full, I/O error) RocksDB refuses writes until resumed;
    // Resume() is a no-op when there is none.
    auto r = db_->Resume();
    // Busy: RocksDB's own recovery from a full disk is under way (it polls for free space).
    if (r.IsBusy()) return Status::unavailable("store not writable: recovering from a write error");
    if (!r.ok()) return from_rocks(r, "store not writable, resume failed");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  auto s = db_write(wo, batch);
  writable_.store(s.ok());
  return from_rocks(s, "store write failed");
}

Status Store::put_batch(const std::vector<AlertRecord>& alerts,
                        const std::vector<PartitionOffset>& offsets,
                        const std::vector<OutboxRecord>& outbox,
                        const std::vector<EventRecord>& events,
                        const std::vector<StateRecord>& state,
                        const std::vector<DeliveryRecord>& deliveries) {
  rocksdb::WriteBatch batch;
  std::string key, value;
  for (const auto& a : alerts) {
    const std::string ak = alert_key(a.time, a.id);
    encode_alert_value(value, a);
    batch.Put(alerts_, ak, value);
    batch.Put(by_rule_, index_prefix(a.rule_id) + ak, rocksdb::Slice());
    if (!a.host.empty()) batch.Put(by_host_, index_prefix(a.host) + ak, rocksdb::Slice());
    batch.Put(alert_ids_, rocksdb::Slice(reinterpret_cast<const char*>(a.id.bytes), 16),
              rocksdb::Slice(ak.data(), 8));
  }
  put_events(batch, events);
  for (const auto& o : offsets) {
    value.clear();
    put_u64(value, static_cast<uint64_t>(o.next_offset));
    batch.Put(meta_, offset_key(o.stream, o.partition), value);
  }
  for (const auto& r : outbox) batch.Put(outbox_, alert_key(r.time, r.id), encode_outbox(r));
  for (const auto& st : state) {
    if (!st.erase_to.empty())
      batch.DeleteRange(state_, st.key, st.erase_to);
    else if (st.erase)
      batch.Delete(state_, st.key);
    else
      batch.Put(state_, st.key, st.value);
  }
  for (const auto& d : deliveries) {
    key.clear();
    put_u64(key, d.output);
    key += alert_key(d.queued, d.id);
    batch.Put(deliveries_, key, rocksdb::Slice(d.json.data(), d.json.size()));
  }
  Status s = write(batch);
  if (s && !alerts.empty()) alerts_version_.fetch_add(1, std::memory_order_release);
  return s;
}

Expected<bool> Store::has_state(std::string_view key) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), state_, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return from_rocks(s, "state read failed");
  return true;
}

Expected<std::vector<std::pair<std::string, std::string>>> Store::load_state(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) return from_rocks(it->status(), "state scan failed");
  return out;
}

Status Store::put_meta(const std::vector<std::pair<std::string, std::string>>& puts,
                       const std::vector<std::string>& deletes) {
  rocksdb::WriteBatch batch;
  for (const auto& k : deletes) batch.Delete(meta_, k);
  for (const auto& [k, v] : puts) batch.Put(meta_, k, v);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = db_write(wo, batch);
  if (!s.ok()) return from_rocks(s, "meta write failed");
  return Status::ok();
}

Expected<std::optional<std::string>> Store::get_meta(std::string_view key) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), meta_, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "meta read failed");
  return std::optional<std::string>(std::move(value));
}

Expected<std::vector<std::pair<std::string, std::string>>> Store::scan_meta(std::string_view prefix,
                                                                            size_t max,
                                                                            bool reverse) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  if (!reverse) {
    for (it->Seek(p); it->Valid() && it->key().starts_with(p) && out.size() < max; it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
  } else {
    // The first key past every key with the prefix: the prefix with its last byte raised.
    std::string end(prefix);
    while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
    if (end.empty()) {
      it->SeekToLast();
    } else {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      it->SeekForPrev(end);
      if (it->Valid() && it->key() == rocksdb::Slice(end)) it->Prev();
    }
    for (; it->Valid() && it->key().starts_with(p) && out.size() < max; it->Prev()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
  }
  if (!it->status().ok()) return from_rocks(it->status(), "meta scan failed");
  return out;
}

Expected<std::optional<int64_t>> Store::next_offset(std::string_view stream,
                                                    int32_t partition) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), meta_, offset_key(stream, partition), &value);
  if (s.IsNotFound()) return std::optional<int64_t>();
  if (!s.ok()) return from_rocks(s, "offset read failed");
  if (value.size() != 8)
    return Status::corruption("offset value of " + std::string(stream) + "/" +
                              std::to_string(partition) + " has the wrong size");
  return std::optional<int64_t>(static_cast<int64_t>(get_u64(value.data())));
}

Expected<std::vector<OutboxEntry>> Store::read_outbox(std::string_view after, size_t max) const {
  std::vector<OutboxEntry> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  if (after.empty()) {
    it->SeekToFirst();
  } else {
    it->Seek(rocksdb::Slice(after.data(), after.size()));
    if (it->Valid() && it->key() == rocksdb::Slice(after.data(), after.size())) it->Next();
  }
  for (; it->Valid() && out.size() < max; it->Next()) {
    OutboxEntry& e = out.emplace_back();
    e.store_key.assign(it->key().data(), it->key().size());
    if (e.store_key.size() != 24 ||
        !decode_outbox(std::string_view(it->value().data(), it->value().size()), e.record)) {
      e.record = {};
      e.corrupt = true;
      continue;
    }
    e.record.time = time_from_key(e.store_key.data());
    std::memcpy(e.record.id.bytes, e.store_key.data() + 8, 16);
  }
  if (!it->status().ok()) return from_rocks(it->status(), "outbox scan failed");
  return out;
}

Status Store::delete_outbox(const std::vector<std::string>& store_keys) {
  if (store_keys.empty()) return Status::ok();
  rocksdb::WriteBatch batch;
  for (const auto& k : store_keys) batch.Delete(outbox_, k);
  return write(batch);
}

namespace {

// Delivery keys: output:u64 | queued:u64 | alert id:16, big-endian numbers.
constexpr size_t kDeliveryKeySize = 32;
std::string delivery_prefix(uint64_t output) {
  std::string p;
  put_u64(p, output);
  return p;
}
uint64_t u64_at(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

Expected<std::vector<DeliveryEntry>> Store::read_deliveries(uint64_t output, std::string_view after,
                                                            size_t max) const {
  std::vector<DeliveryEntry> out;
  const std::string prefix = delivery_prefix(output);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), deliveries_));
  if (after.empty()) {
    it->Seek(prefix);
  } else {
    it->Seek(rocksdb::Slice(after.data(), after.size()));
    if (it->Valid() && it->key() == rocksdb::Slice(after.data(), after.size())) it->Next();
  }
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < max; it->Next()) {
    if (it->key().size() != kDeliveryKeySize) continue;  // not ours: never written so
    DeliveryEntry& e = out.emplace_back();
    e.store_key.assign(it->key().data(), it->key().size());
    e.queued = time_from_key(e.store_key.data() + 8);
    std::memcpy(e.id.bytes, e.store_key.data() + 16, 16);
    e.json.assign(it->value().data(), it->value().size());
  }
  if (!it->status().ok()) return from_rocks(it->status(), "delivery queue scan failed");
  return out;
}

Status Store::delete_deliveries(const std::vector<std::string>& store_keys) {
  if (store_keys.empty()) return Status::ok();
  rocksdb::WriteBatch batch;
  for (const auto& k : store_keys) batch.Delete(deliveries_, k);
  return write(batch);
}

Expected<uint64_t> Store::count_deliveries(uint64_t output) const {
  const std::string prefix = delivery_prefix(output);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), deliveries_));
  uint64_t n = 0;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
  if (!it->status().ok()) return from_rocks(it->status(), "delivery queue scan failed");
  return n;
}

Expected<uint64_t> Store::drop_oldest_deliveries(uint64_t output, uint64_t n) {
  const std::string prefix = delivery_prefix(output);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), deliveries_));
  rocksdb::WriteBatch batch;
  uint64_t dropped = 0;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && dropped < n; it->Next()) {
    batch.Delete(deliveries_, it->key());
    ++dropped;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "delivery queue scan failed");
  if (auto s = write(batch); !s) return s;
  return dropped;
}

Expected<std::vector<uint64_t>> Store::delivery_queues() const {
  std::vector<uint64_t> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), deliveries_));
  for (it->SeekToFirst(); it->Valid();) {
    if (it->key().size() < 8) {
      it->Next();
      continue;
    }
    const uint64_t output = u64_at(it->key().data());
    out.push_back(output);
    if (output == UINT64_MAX) break;
    it->Seek(delivery_prefix(output + 1));  // the next queue
  }
  if (!it->status().ok()) return from_rocks(it->status(), "delivery queue scan failed");
  return out;
}

Status Store::drop_delivery_queue(uint64_t output) {
  const std::string from = delivery_prefix(output);
  std::string to = delivery_prefix(output + 1);
  if (output == UINT64_MAX) to = std::string(9, '\xff');
  auto s = db_->DeleteRange(rocksdb::WriteOptions(), deliveries_, from, to);
  return from_rocks(s, "dropping a delivery queue failed");
}

uint64_t Store::outbox_estimate() const {
  uint64_t n = 0;
  db_->GetIntProperty(outbox_, "rocksdb.estimate-num-keys", &n);
  return n;
}

namespace {

bool alert_passes(const AlertQuery& q, const AlertValue& v, bool check_rule, bool check_host) {
  if (check_rule && v.rule_id != q.rule_id) return false;
  if (check_host && v.host != q.host) return false;
  if (q.levels && !(q.levels & (1u << static_cast<unsigned>(v.level)))) return false;
  if (!q.tag.empty() && !any_tag(v.tags, [&](std::string_view t) { return iequals(t, q.tag); }))
    return false;
  if (!q.text.empty() && !icontains(v.title, q.text)) return false;
  return true;
}

}  // namespace

Expected<AlertPage> Store::query_alerts(const AlertQuery& q) const {
  std::vector<std::string> documents;
  auto page =
      query_alerts(q, [&documents](const StoredAlert& a) { documents.emplace_back(a.json); });
  if (page) page->alerts = std::move(documents);
  return page;
}

Expected<AlertPage> Store::query_alerts(const AlertQuery& q,
                                        const std::function<void(const StoredAlert&)>& sink) const {
  if (q.limit == 0) return AlertPage{};
  if (q.since >= q.until) return AlertPage{};
  // Iterate the most selective index (rule, then host, then time), newest first, within
  // [since, until); the other filters are checked on each entry's header.
  rocksdb::ColumnFamilyHandle* cf = alerts_;
  std::string prefix;
  if (!q.rule_id.empty()) {
    cf = by_rule_;
    prefix = index_prefix(q.rule_id);
  } else if (!q.host.empty()) {
    cf = by_host_;
    prefix = index_prefix(q.host);
  }
  const bool check_host = cf == by_rule_ && !q.host.empty();
  const bool filtered = check_host || q.levels || !q.tag.empty() || !q.text.empty();
  std::string lower = prefix, upper = prefix;
  put_u64(lower, time_key(q.since));
  put_u64(upper, time_key(q.until));

  std::string start = upper;
  bool skip_start = false;
  if (!q.cursor.empty()) {
    auto raw = from_hex(q.cursor);
    if (!raw || raw->size() != prefix.size() + 24 || raw->compare(0, prefix.size(), prefix) != 0) {
      return Status::invalid("cursor is not valid for this query");
    }
    if (*raw < start) start = *raw;
    skip_start = true;
  }

  rocksdb::ReadOptions ro;
  rocksdb::Slice lower_slice(lower);
  ro.iterate_lower_bound = &lower_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
  it->SeekForPrev(start);
  if (it->Valid() &&
      (it->key() == rocksdb::Slice(upper) || (skip_start && it->key() == rocksdb::Slice(start))))
    it->Prev();

  AlertPage page;
  std::string last_key;
  AlertValue v;
  bool more = false;  // entries left unexamined after last_key
  if (cf == alerts_) {
    for (; it->Valid() && page.count < q.limit; it->Prev()) {
      if (filtered && page.scanned >= q.max_scan) {
        page.partial = true;
        break;
      }
      const rocksdb::Slice k = it->key();
      if (k.size() != 24) continue;
      ++page.scanned;
      last_key.assign(k.data(), k.size());
      if (!decode_alert_value(std::string_view(it->value().data(), it->value().size()), v)) {
        return Status::corruption("alert entry " + to_hex(last_key) + " cannot be decoded");
      }
      if (filtered && !alert_passes(q, v, false, check_host)) continue;
      sink(StoredAlert{v.json, v.summary_head});
      ++page.count;
    }
    more = it->Valid();
  } else {
    // Index entries in chunks, their alerts read with one MultiGet per chunk.
    std::vector<std::string> index_keys;
    std::vector<rocksdb::Slice> alert_keys;
    std::vector<rocksdb::PinnableSlice> values;
    std::vector<rocksdb::Status> statuses;
    while (it->Valid() && page.count < q.limit && !page.partial) {
      const size_t want =
          filtered ? std::max<size_t>(64, q.limit - page.count) : q.limit - page.count;
      index_keys.clear();
      for (; it->Valid() && index_keys.size() < want; it->Prev()) {
        if (filtered && page.scanned >= q.max_scan) {
          page.partial = true;
          break;
        }
        const rocksdb::Slice k = it->key();
        if (k.size() != prefix.size() + 24 || !k.starts_with(prefix)) continue;
        ++page.scanned;
        index_keys.emplace_back(k.data(), k.size());
      }
      if (index_keys.empty()) break;
      alert_keys.clear();
      for (const auto& k : index_keys) alert_keys.emplace_back(k.data() + prefix.size(), 24);
      values.clear();
      values.resize(index_keys.size());
      statuses.assign(index_keys.size(), rocksdb::Status());
      db_->MultiGet(ro, alerts_, alert_keys.size(), alert_keys.data(), values.data(),
                    statuses.data(), /*sorted_input=*/false);
      size_t i = 0;
      for (; i < index_keys.size() && page.count < q.limit; ++i) {
        last_key = index_keys[i];
        if (statuses[i].IsNotFound()) continue;  // index entry of an expired alert
        if (!statuses[i].ok()) return from_rocks(statuses[i], "alert read failed");
        if (!decode_alert_value(std::string_view(values[i].data(), values[i].size()), v)) {
          return Status::corruption("alert entry " + to_hex(last_key) + " cannot be decoded");
        }
        if (filtered && !alert_passes(q, v, false, check_host)) continue;
        sink(StoredAlert{v.json, v.summary_head});
        ++page.count;
      }
      more = i < index_keys.size() || it->Valid();
    }
  }
  if (!it->status().ok()) return from_rocks(it->status(), "alert scan failed");
  if ((page.count == q.limit || page.partial) && more && !last_key.empty())
    page.next_cursor = to_hex(last_key);
  return page;
}

Expected<std::optional<std::string>> Store::get_alert(const AlertId& id, TimeMs time) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), alerts_, alert_key(time, id), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "alert read failed");
  AlertValue v;
  if (!decode_alert_value(value, v))
    return Status::corruption("alert " + id.hex() + " cannot be decoded");
  return std::optional<std::string>(std::string(v.json));
}

Expected<std::optional<std::string>> Store::get_alert(const AlertId& id) const {
  std::string time;
  auto s = db_->Get(rocksdb::ReadOptions(), alert_ids_,
                    rocksdb::Slice(reinterpret_cast<const char*>(id.bytes), 16), &time);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "alert id read failed");
  if (time.size() != 8)
    return Status::corruption("alert id entry " + id.hex() + " has the wrong size");
  return get_alert(id, time_from_key(time.data()));
}

Expected<uint64_t> Store::count_alerts() const {
  uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), alerts_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  if (!it->status().ok()) return from_rocks(it->status(), "alert count failed");
  return n;
}

Expected<VerifyReport> Store::verify() const {
  VerifyReport r;
  rocksdb::ReadOptions ro;
  std::string scratch;
  auto exists = [&](rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key) -> Expected<bool> {
    auto s = db_->Get(ro, cf, key, &scratch);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return from_rocks(s, "verify read failed");
    return true;
  };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, alerts_));
  AlertValue v;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++r.alerts;
    const rocksdb::Slice k = it->key();
    if (k.size() != 24 ||
        !decode_alert_value(std::string_view(it->value().data(), it->value().size()), v)) {
      ++r.undecodable;
      continue;
    }
    if (!v.has_header) continue;  // format 1: its rule and host are not recorded beside it
    bool indexed = true;
    for (auto [cf, value] : {std::pair{by_rule_, v.rule_id}, std::pair{by_host_, v.host}}) {
      if (cf == by_host_ && value.empty()) continue;
      auto e = exists(cf, index_prefix(value) + k.ToString());
      if (!e) return e.status();
      indexed &= *e;
    }
    auto id = exists(alert_ids_, rocksdb::Slice(k.data() + 8, 16));
    if (!id) return id.status();
    indexed &= *id;
    if (!indexed) ++r.alerts_missing_index;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "verify scan failed");
  for (auto* cf : {by_rule_, by_host_}) {
    it.reset(db_->NewIterator(ro, cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++r.index_entries;
      const rocksdb::Slice k = it->key();
      if (k.size() < 25) {
        ++r.undecodable;
        continue;
      }
      auto e = exists(alerts_, rocksdb::Slice(k.data() + k.size() - 24, 24));
      if (!e) return e.status();
      if (!*e) ++r.dangling_index;
    }
    if (!it->status().ok()) return from_rocks(it->status(), "verify scan failed");
  }
  it.reset(db_->NewIterator(ro, events_));
  std::vector<EventEntry> entries;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key(), val = it->value();
    entries.clear();
    if (decode_events_record({k.data(), k.size()}, {val.data(), val.size()}, entries))
      r.events += entries.size();
    else
      ++r.undecodable;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "verify scan failed");
  return r;
}

Status Store::checkpoint(const std::string& dir) const {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec))
    return Status::invalid("checkpoint directory '" + dir + "' already exists");
  rocksdb::Checkpoint* raw = nullptr;
  auto s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!s.ok()) return from_rocks(s, "cannot create checkpoint");
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  // The WAL is flushed into the checkpoint so that it holds every acknowledged write.
  return from_rocks(cp->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                    "checkpoint to '" + dir + "' failed");
}

Status Store::flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  auto s = db_->Flush(fo, handles_);
  if (!s.ok()) return from_rocks(s, "flush failed");
  return from_rocks(db_->FlushWAL(true), "WAL sync failed");
}

}  // namespace vigil::store
