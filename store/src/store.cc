#include "vigil/store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>

namespace vigil::store {
namespace {

constexpr char kFormat[] = "vigil-store-1";
constexpr char kFormatKey[] = "format";

void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
// Order-preserving encoding of a signed time.
uint64_t time_key(TimeMs t) { return static_cast<uint64_t>(t) ^ (1ULL << 63); }

std::string alert_key(TimeMs t, const AlertId& id) {
  std::string k;
  k.reserve(24);
  put_u64(k, time_key(t));
  k.append(reinterpret_cast<const char*>(id.bytes), 16);
  return k;
}

std::string index_prefix(std::string_view value) {
  std::string k(value);
  k += '\0';
  return k;
}

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
  if (kind != 1 && kind != 2) return false;
  r.kind = static_cast<OutboxRecord::Kind>(kind);
  uint32_t n = 0;
  if (!str(r.message_key) || !str(r.value) || !u32(n) || n > in.size()) return false;
  r.headers.resize(n);
  for (auto& [k, v] : r.headers) {
    if (!str(k) || !str(v)) return false;
  }
  return pos == in.size();
}

Status from_rocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::ok();
  if (s.IsCorruption()) return Status::corruption(what + ": " + s.ToString());
  if (s.IsNoSpace() || s.IsIOError()) return Status::io_error(what + ": " + s.ToString());
  return Status::internal(what + ": " + s.ToString());
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

}  // namespace

AlertId AlertId::derive(std::string_view stream, int32_t partition, int64_t offset, std::string_view rule_id) {
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
  auto raw = store::from_hex(hex);
  if (!raw) return std::nullopt;
  AlertId id;
  std::memcpy(id.bytes, raw->data(), 16);
  return id;
}

std::string AlertId::hex() const { return to_hex({reinterpret_cast<const char*>(bytes), 16}); }

Expected<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options.path, ec);
  if (ec) return Status::io_error("cannot create data directory '" + options.path + "': " + ec.message());
  const bool has_db = fs::exists(fs::path(options.path) / "CURRENT", ec);
  if (!has_db && !fs::is_empty(options.path, ec)) {
    return Status::corruption("data directory '" + options.path +
                              "' is not empty and holds no vigil store; refusing to use it");
  }

  auto table = rocksdb::BlockBasedTableOptions();
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kLZ4Compression;
  cf.bottommost_compression = rocksdb::kZSTD;

  const std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName, "alerts", "alerts_by_rule",
                                          "alerts_by_host", "meta", "outbox"};
  if (has_db) {
    std::vector<std::string> existing;
    auto s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options.path, &existing);
    if (!s.ok()) return from_rocks(s, "cannot read data directory '" + options.path + "'");
    for (const auto& e : existing) {
      if (std::find(names.begin(), names.end(), e) == names.end()) {
        return Status::corruption("data directory '" + options.path + "' has an unknown column family '" + e +
                                  "': not a vigil store, or one of a newer format");
      }
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, cf);
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.IncreaseParallelism(2);
  dbo.max_background_jobs = 2;

  std::unique_ptr<Store> store(new Store());
  store->path_ = options.path;
  store->sync_writes_ = options.sync_writes;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(dbo, options.path, descs, &store->handles_, &raw);
  if (!s.ok()) return from_rocks(s, "cannot open store '" + options.path + "'");
  store->db_.reset(raw);
  store->alerts_ = store->handles_[1];
  store->by_rule_ = store->handles_[2];
  store->by_host_ = store->handles_[3];
  store->meta_ = store->handles_[4];
  store->outbox_ = store->handles_[5];

  std::string format;
  s = store->db_->Get(rocksdb::ReadOptions(), store->meta_, kFormatKey, &format);
  if (s.IsNotFound()) {
    if (has_db) {
      return Status::corruption("data directory '" + options.path + "' is a RocksDB without a vigil format marker");
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = store->db_->Put(wo, store->meta_, kFormatKey, kFormat);
    if (!s.ok()) return from_rocks(s, "cannot initialise store");
  } else if (!s.ok()) {
    return from_rocks(s, "cannot read store format");
  } else if (format != kFormat) {
    return Status::corruption("data directory '" + options.path + "' has store format '" + format + "'; this build reads '" +
                              kFormat + "'");
  }
  return store;
}

Store::~Store() {
  if (!db_) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

Status Store::put_batch(const std::vector<AlertRecord>& alerts, const std::vector<PartitionOffset>& offsets,
                        const std::vector<OutboxRecord>& outbox) {
  rocksdb::WriteBatch batch;
  std::string key;
  for (const auto& a : alerts) {
    const std::string ak = alert_key(a.time, a.id);
    batch.Put(alerts_, ak, a.json);
    batch.Put(by_rule_, index_prefix(a.rule_id) + ak, rocksdb::Slice());
    if (!a.host.empty()) batch.Put(by_host_, index_prefix(a.host) + ak, rocksdb::Slice());
  }
  std::string value;
  for (const auto& o : offsets) {
    value.clear();
    put_u64(value, static_cast<uint64_t>(o.next_offset));
    batch.Put(meta_, offset_key(o.stream, o.partition), value);
  }
  for (const auto& r : outbox) batch.Put(outbox_, alert_key(r.time, r.id), encode_outbox(r));
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  return from_rocks(db_->Write(wo, &batch), "store write failed");
}

Expected<std::optional<int64_t>> Store::next_offset(std::string_view stream, int32_t partition) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), meta_, offset_key(stream, partition), &value);
  if (s.IsNotFound()) return std::optional<int64_t>();
  if (!s.ok()) return from_rocks(s, "offset read failed");
  if (value.size() != 8) return Status::corruption("offset value of " + std::string(stream) + "/" + std::to_string(partition) + " has the wrong size");
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
    if (e.store_key.size() != 24 || !decode_outbox(std::string_view(it->value().data(), it->value().size()), e.record)) {
      e.record = {};
      e.corrupt = true;
      continue;
    }
    e.record.time = static_cast<TimeMs>(get_u64(e.store_key.data()) ^ (1ULL << 63));
    std::memcpy(e.record.id.bytes, e.store_key.data() + 8, 16);
  }
  if (!it->status().ok()) return from_rocks(it->status(), "outbox scan failed");
  return out;
}

Status Store::delete_outbox(const std::vector<std::string>& store_keys) {
  if (store_keys.empty()) return Status::ok();
  rocksdb::WriteBatch batch;
  for (const auto& k : store_keys) batch.Delete(outbox_, k);
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  return from_rocks(db_->Write(wo, &batch), "outbox delete failed");
}

uint64_t Store::outbox_estimate() const {
  uint64_t n = 0;
  db_->GetIntProperty(outbox_, "rocksdb.estimate-num-keys", &n);
  return n;
}

Expected<AlertPage> Store::query_alerts(const AlertQuery& q) const {
  if (q.limit == 0) return AlertPage{};
  // Iterate either the alerts cf or one index, newest first, within [since, until).
  rocksdb::ColumnFamilyHandle* cf = alerts_;
  std::string prefix;
  if (!q.rule_id.empty()) {
    cf = by_rule_;
    prefix = index_prefix(q.rule_id);
  } else if (!q.host.empty()) {
    cf = by_host_;
    prefix = index_prefix(q.host);
  }
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
  if (it->Valid() && (it->key() == rocksdb::Slice(upper) || (skip_start && it->key() == rocksdb::Slice(start)))) it->Prev();

  AlertPage page;
  std::string last_key;
  std::string value;
  for (; it->Valid() && page.alerts.size() < q.limit; it->Prev()) {
    const rocksdb::Slice k = it->key();
    if (k.size() != prefix.size() + 24 || !k.starts_with(prefix)) continue;
    if (cf == alerts_) {
      page.alerts.emplace_back(it->value().data(), it->value().size());
    } else {
      const rocksdb::Slice ak(k.data() + prefix.size(), 24);
      auto s = db_->Get(ro, alerts_, ak, &value);
      if (s.IsNotFound()) continue;  // index entry of an expired alert
      if (!s.ok()) return from_rocks(s, "alert read failed");
      page.alerts.push_back(value);
    }
    last_key.assign(k.data(), k.size());
  }
  if (!it->status().ok()) return from_rocks(it->status(), "alert scan failed");
  if (page.alerts.size() == q.limit && it->Valid()) page.next_cursor = to_hex(last_key);
  return page;
}

Expected<std::optional<std::string>> Store::get_alert(const AlertId& id, TimeMs time) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), alerts_, alert_key(time, id), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "alert read failed");
  return std::optional<std::string>(std::move(value));
}

Expected<uint64_t> Store::count_alerts() const {
  uint64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), alerts_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  if (!it->status().ok()) return from_rocks(it->status(), "alert count failed");
  return n;
}

Status Store::flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  auto s = db_->Flush(fo, handles_);
  if (!s.ok()) return from_rocks(s, "flush failed");
  return from_rocks(db_->FlushWAL(true), "WAL sync failed");
}

}  // namespace vigil::store
