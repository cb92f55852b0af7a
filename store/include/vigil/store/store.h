#pragma once
// vigil's RocksDB store: alerts with their indexes and the consumed Kafka offsets.
//
// Column families and key encoding (format "vigil-store-1"; all integers big-endian so that
// byte order is chronological order):
//   alerts          time_ms:u64 | alert_id:16          -> alert JSON
//   alerts_by_rule  rule_id | 0x00 | time_ms | alert_id -> ""
//   alerts_by_host  host | 0x00 | time_ms | alert_id    -> ""
//   outbox          time_ms:u64 | record_id:16         -> OutboxRecord (see encode_outbox)
//   meta            "format"                            -> "vigil-store-1"
//                   "offset/" stream | 0x00 | partition:u32 -> next offset to read:u64
//
// A stream names where offsets count from: ingest uses "<Kafka cluster id>/<topic>", so
// that offsets and alert ids of one cluster are never applied to another (a new embedded
// cluster, a failover to another cluster).
//
// Alerts and the offsets of the batch that produced them are written in one WriteBatch, so
// after a crash the store never holds an alert without its offset, nor an offset past an
// alert it has not stored. Alert ids are derived from (topic, partition, offset, rule), so
// replaying a message writes the same keys again instead of a second alert.
//
// The outbox holds what must still be produced to Kafka (alerts for the alerts topic, dead
// letters): it is written in the same batch as the alerts and offsets, and an entry is
// deleted only once Kafka acknowledged it, so a crash can repeat a publication (with the
// same key) but never lose one.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/core/time.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace vigil::store {

// 16-byte deterministic alert id, printed as 32 lowercase hex digits.
struct AlertId {
  uint8_t bytes[16];
  static AlertId derive(std::string_view stream, int32_t partition, int64_t offset, std::string_view rule_id);
  static std::optional<AlertId> from_hex(std::string_view hex);
  std::string hex() const;
};

struct AlertRecord {
  AlertId id;
  TimeMs time = 0;
  std::string rule_id;
  std::string host;
  std::string json;  // the alert document served by the API
};

struct PartitionOffset {
  std::string stream;  // "<Kafka cluster id>/<topic>"
  int32_t partition = 0;
  int64_t next_offset = 0;  // the first offset not yet consumed
};

// A message waiting in the outbox for its Kafka topic.
struct OutboxRecord {
  enum class Kind : uint8_t { kAlert = 1, kDeadLetter = 2 };
  Kind kind = Kind::kAlert;
  TimeMs time = 0;  // orders the outbox (oldest first)
  AlertId id{};     // deterministic, so a replayed batch rewrites the same entry
  std::string message_key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct OutboxEntry {
  std::string store_key;  // pass to delete_outbox() once published
  OutboxRecord record;
  bool corrupt = false;   // the stored value could not be decoded; `record` is empty
};

struct AlertQuery {
  TimeMs since = 0;                   // inclusive
  TimeMs until = INT64_MAX;           // exclusive
  std::string rule_id;                // empty: any rule
  std::string host;                   // empty: any host
  size_t limit = 100;
  std::string cursor;                 // from a previous page's next_cursor; empty: first page
};

struct AlertPage {
  std::vector<std::string> alerts;  // alert JSON documents, newest first
  std::string next_cursor;          // empty when there is nothing more
};

struct StoreOptions {
  std::string path;
  size_t block_cache_bytes = 64 << 20;
  bool sync_writes = false;  // fsync the WAL on every batch
};

class Store {
 public:
  // Opens or creates the store. A directory that holds something other than a vigil store
  // (another RocksDB, unknown column families, a newer format) is refused.
  static Expected<std::unique_ptr<Store>> open(const StoreOptions& options);
  ~Store();

  // Atomically writes the alerts, their index entries, the offsets and the outbox records.
  Status put_batch(const std::vector<AlertRecord>& alerts, const std::vector<PartitionOffset>& offsets,
                   const std::vector<OutboxRecord>& outbox = {});

  // Up to `max` outbox entries with a store key after `after` (empty: from the first), in
  // key order. An entry that cannot be decoded is returned with `corrupt` set, so that one bad
  // entry never blocks the others.
  Expected<std::vector<OutboxEntry>> read_outbox(std::string_view after, size_t max) const;
  Status delete_outbox(const std::vector<std::string>& store_keys);
  // RocksDB's estimate of the outbox's entry count (cheap; for metrics).
  uint64_t outbox_estimate() const;

  // The next offset to read for a partition, if one was stored.
  Expected<std::optional<int64_t>> next_offset(std::string_view stream, int32_t partition) const;

  Expected<AlertPage> query_alerts(const AlertQuery& query) const;
  Expected<std::optional<std::string>> get_alert(const AlertId& id, TimeMs time) const;
  Expected<uint64_t> count_alerts() const;

  Status flush();
  const std::string& path() const { return path_; }

 private:
  Store() = default;
  std::string path_;
  bool sync_writes_ = false;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* alerts_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_rule_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_host_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;
};

}  // namespace vigil::store
