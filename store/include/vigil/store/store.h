#pragma once
// vigil's RocksDB store: alerts with their indexes, retained events, and the consumed Kafka
// offsets.
//
// Column families and key encoding, format "vigil-store-3" (integers big-endian, times as
// u64 with the sign bit flipped, so that byte order is chronological order):
//   alerts          time:u64 | alert_id:16                -> AlertValue: 0x02 | level:u8 |
//                                                            str rule_id | str host | str title |
//                                                            n:u16 (str tag)*n |
//                                                            summary_size:u32 | alert JSON
//                                                            (str = len:u16 bytes; 0x01 values
//                                                            have no summary_size, format 1
//                                                            values are the bare JSON)
//   alerts_by_rule  rule_id | 0x00 | time | alert_id      -> ""
//   alerts_by_host  host | 0x00 | time | alert_id         -> ""
//   alert_ids       alert_id:16                           -> time:u64 (alert by id)
//   events          window:u64 | stream_hash:u32 | partition:u32 | first offset:u64 | 0x01
//                                                         -> 0xB1 | len:u16 stream | n:u32 |
//                                                            n x (offset:u64 time:u64 size:u32) |
//                                                            the n raw events
//                   (a block: the events of one batch from one partition whose times fall in one
//                   100 ms window; format 2's single events, time:u64 | stream_hash:u32 |
//                   partition:u32 | offset:u64 -> len:u16 stream | raw event, are read as well)
//   outbox          time:u64 | record_id:16               -> OutboxRecord (see encode_outbox)
//   state           scope | 0x00 | correlation id | 0x00 | group -> encoded correlation window
//                   scope | 0x01 | time:u64 (sign flipped) | hit id -> "" (a repartitioned
//                   match seen: counted once; ingest/src/shard_worker_repartition.cc)
//                   scope | 0x02                                -> time:u64: seen entries
//                   before it dropped
//                                                            (match::Correlator::encode)
//   meta            "format"                              -> "vigil-store-3"
//                   "offset/" stream | 0x00 | partition:u32 -> next offset to read:u64
//                   "content/..."                          -> rule bundles, rollout state, audit
//                                                            and boot logs
//                                                            (ingest/src/rollout_records.h)
// Format 1 (without alert_ids, events and state) is upgraded in place at open: the new column
// families are created and old alert values stay readable. Format 2 (one record per retained
// event) is taken as it is: its records are read beside the blocks format 3 writes.
//
// Retained events go in blocks because RocksDB's cost is per record as much as per byte: a
// batch of 2,000 events from 32 partitions becomes ~30-60 records instead of 2,000 (a worker
// spends ~20% less time per event, docs/perf-log.md). Hunts read a window's records at once and
// order its events by (time, stream hash, partition, offset), dropping the duplicates a
// replay cut into other batches may have written; cursors are such positions.
//
// Events are kept in time buckets (RetentionOptions::bucket_ms, a multiple of the 100 ms
// block window): retention drops whole
// buckets, oldest first, by age and by size (DeleteFilesInRange + DeleteRange + compaction
// of the range), never by scanning keys. The events cf is zstd-compressed with a trained
// dictionary at the bottommost level; alerts, indexes and state are LZ4 at every level (a
// page of alerts is many point reads, and LZ4 decompresses several times faster); point-read
// cfs (alerts, alert_ids, meta, state) have bloom filters; the block cache is shared by
// every cf.
//
// A stream names where offsets count from: ingest uses "<Kafka cluster id>/<topic>", so
// that offsets and alert ids of one cluster are never applied to another (a new embedded
// cluster, a failover to another cluster).
//
// Alerts, retained events and the offsets of the batch that produced them are written in
// one WriteBatch, so after a crash the store never holds an alert without its offset, nor
// an offset past data it has not stored. Alert ids are derived from (topic, partition,
// offset, rule), so replaying a message writes the same keys again instead of a second
// alert.
//
// The outbox holds what must still be produced to Kafka (alerts for the alerts topic, dead
// letters): it is written in the same batch as the alerts and offsets, and an entry is
// deleted only once Kafka acknowledged it, so a crash can repeat a publication (with the
// same key) but never lose one.
//
// A failed write (disk full, I/O error) leaves the store unwritable: writable() turns false
// and every later write first asks RocksDB to resume, so the store recovers by itself
// once the disk has room again.
//
// Thread safety: every method may be called from any thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/core/mutex.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Cache;
class FileSystem;
class WriteBatch;
class Env;
struct WriteOptions;
class Status;
}  // namespace rocksdb

namespace vigil::store {

// 16-byte deterministic alert id, printed as 32 lowercase hex digits.
struct AlertId {
  uint8_t bytes[16];
  static AlertId derive(std::string_view stream, int32_t partition, int64_t offset,
                        std::string_view rule_id);
  static std::optional<AlertId> from_hex(std::string_view hex);
  std::string hex() const;
};

// Sigma levels, ordered by severity.
enum class AlertLevel : uint8_t { kUnknown = 0, kInformational, kLow, kMedium, kHigh, kCritical };
std::optional<AlertLevel> parse_alert_level(std::string_view name);  // "high" -> kHigh
std::string_view alert_level_name(AlertLevel level);

// RocksDB's CRC32C (write-ahead log, blocks) as vigil runs it: "sse4.2" (the CPU's crc32
// instruction, in place of the table-driven code of a portable librocksdb build; see
// src/crc32c.cc), "rocksdb" (the library's own) or "bitwise". Chosen at the first call.
std::string_view crc32c_implementation();
// That CRC32C of `data` continued from `crc` (RocksDB's crc32c::Extend).
uint32_t crc32c_extend(uint32_t crc, const char* data, size_t n);

struct AlertRecord {
  AlertId id;
  TimeMs time = 0;
  std::string rule_id;
  std::string host;
  AlertLevel level = AlertLevel::kUnknown;
  std::string_view title;             // must outlive the write
  std::span<const std::string> tags;  // idem
  std::string json;                   // the alert document served by the API
  // Bytes of `json` that, closed with '}', are the alert's summary (what lists show: all but
  // the matched fields and the event); 0: the whole document is its summary.
  size_t summary_size = 0;
};

// A stored alert as a query hands it over: valid during the call only.
struct StoredAlert {
  std::string_view json;
  std::string_view summary_head;  // the summary without its closing '}'; empty: json is the summary
};

// An event kept for hunts and dry runs. Views must outlive the write.
struct EventRecord {
  TimeMs time = 0;
  std::string_view stream;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view payload;
};

struct PartitionOffset {
  std::string stream;  // "<Kafka cluster id>/<topic>"
  int32_t partition = 0;
  int64_t next_offset = 0;  // the first offset not yet consumed
};

// A message waiting in the outbox for its Kafka topic.
struct OutboxRecord {
  // kCorrelationHit: a base-rule match re-keyed by its correlation group for the
  // repartition topic (cluster mode).
  enum class Kind : uint8_t { kAlert = 1, kDeadLetter = 2, kCorrelationHit = 3 };
  Kind kind = Kind::kAlert;
  TimeMs time = 0;  // orders the outbox (oldest first)
  AlertId id{};     // deterministic, so a replayed batch rewrites the same entry
  std::string message_key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

// An alert queued for one output (a webhook, Splunk HEC, syslog: output/), written in the
// alert's batch so that a crash or a dead destination loses nothing.
struct DeliveryRecord {
  uint64_t output = 0;    // the output's queue (a hash of its name)
  TimeMs queued = 0;      // orders the queue, oldest first
  AlertId id{};           // the alert, and the delivery's idempotency key
  std::string_view json;  // the alert document; must outlive the write
};

struct DeliveryEntry {
  std::string store_key;  // pass to delete_deliveries() once delivered
  TimeMs queued = 0;
  AlertId id{};
  std::string json;
};

// A change of correlation state: `value` set, or erased; with `erase_to` set, every key in
// [key, erase_to) is erased (a range: expired entries of a partition's seen hits).
struct StateRecord {
  std::string key;
  std::string value;
  bool erase = false;
  std::string erase_to;
};

struct OutboxEntry {
  std::string store_key;  // pass to delete_outbox() once published
  OutboxRecord record;
  bool corrupt = false;  // the stored value could not be decoded; `record` is empty
};

struct AlertQuery {
  TimeMs since = INT64_MIN;  // inclusive
  TimeMs until = INT64_MAX;  // exclusive
  std::string rule_id;       // empty: any rule
  std::string host;          // empty: any host
  uint32_t levels = 0;       // bit (1 << AlertLevel) per accepted level; 0: any
  std::string tag;           // exact tag, case-insensitive; empty: any
  std::string text;          // case-insensitive substring of the rule title
  size_t limit = 100;
  std::string cursor;        // from a previous page's next_cursor; empty: first page
  size_t max_scan = 200000;  // entries examined per page at most (filters)
};

struct AlertPage {
  std::vector<std::string> alerts;  // alert JSON documents, newest first (empty with a sink)
  size_t count = 0;                 // documents on the page
  std::string next_cursor;          // empty when there is nothing more
  size_t scanned = 0;               // entries examined
  bool partial = false;             // max_scan reached before the page was full
};

// A field condition of an event hunt. Paths are dotted ("Event.System.Computer").
struct EventFilter {
  enum class Op : uint8_t { kEquals, kContains, kExists };
  std::string path;
  Op op = Op::kEquals;
  std::string value;  // compared case-insensitively with the field's text
};

struct EventQuery {
  TimeMs since = INT64_MIN;          // inclusive
  TimeMs until = INT64_MAX;          // exclusive
  std::vector<EventFilter> filters;  // all must hold
  size_t limit = 100;
  std::string cursor;
  size_t max_scan = 1000000;  // events examined per page at most
};

struct StoredEvent {
  TimeMs time = 0;
  std::string stream;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string payload;
};

struct EventPage {
  std::vector<StoredEvent> events;  // newest first
  std::string next_cursor;
  size_t scanned = 0;
  bool partial = false;
};

// The hunt cursor (EventQuery::cursor) that continues just after this event, newest first:
// the next page starts with the next older event. Positions order events the same way on
// every store, so a deployment-wide hunt resumes each replica where its merge stopped.
std::string event_cursor(TimeMs time, std::string_view stream, int32_t partition, int64_t offset);

// Retained events are packed in blocks of this much event time (see the layout above);
// RetentionOptions::bucket_ms must be a multiple of it, so that retention never splits a block.
inline constexpr int64_t kEventBlockWindowMs = 100;

struct RetentionOptions {
  int64_t max_age_ms = 7LL * 24 * 3600 * 1000;  // 0: no age limit
  uint64_t max_bytes = 0;                       // events cf size on disk; 0: no size limit
  int64_t bucket_ms = 3600 * 1000;              // the unit retention drops
};

// Alert retention (Store::expire_alerts): by age of the alert's time and by the bytes the
// alerts and their indexes take; the oldest go first, with their index entries and ids.
struct AlertRetentionOptions {
  int64_t max_age_ms = 0;  // 0: no age limit
  uint64_t max_bytes = 0;  // alerts and their index column families on disk; 0: no size limit
};

struct AlertRetentionResult {
  uint64_t alerts_deleted = 0;
  TimeMs oldest_kept = 0;  // time of the oldest alert left (0: none)
  uint64_t bytes_before = 0;
};

struct RetentionResult {
  size_t buckets_dropped = 0;
  TimeMs oldest_kept = 0;  // start of the oldest bucket left (0: none)
  uint64_t bytes_before = 0;
};

// What Store::verify() found. A consistent store has no problem counted.
struct VerifyReport {
  uint64_t alerts = 0;
  uint64_t events = 0;
  uint64_t index_entries = 0;
  uint64_t alerts_missing_index = 0;  // an alert without its rule/host/id entries
  uint64_t dangling_index = 0;        // an index entry without its alert
  uint64_t undecodable = 0;           // entries whose key or value cannot be decoded
  bool ok() const { return alerts_missing_index == 0 && dangling_index == 0 && undecodable == 0; }
};

struct StoreOptions {
  std::string path;
  size_t block_cache_bytes = 64 << 20;
  bool sync_writes = false;  // fsync the WAL on every batch
  RetentionOptions retention;
  AlertRetentionOptions alert_retention;
  // Test seam: the file system RocksDB writes through (fault injection). Null: the default.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

class Store {
 public:
  // Opens or creates the store. A directory that holds something other than a vigil store
  // (another RocksDB, unknown column families, a newer format) is refused, and so is a
  // damaged store (a MANIFEST that cannot be read, or that no longer lists table files the
  // directory holds), before anything in the directory is written or deleted.
  static Expected<std::unique_ptr<Store>> open(const StoreOptions& options);
  ~Store();

  // Atomically writes the alerts, their index entries, the offsets, the outbox records and
  // the retained events. On failure nothing is written and writable() turns false.
  Status put_batch(const std::vector<AlertRecord>& alerts,
                   const std::vector<PartitionOffset>& offsets,
                   const std::vector<OutboxRecord>& outbox = {},
                   const std::vector<EventRecord>& events = {},
                   const std::vector<StateRecord>& state = {},
                   const std::vector<DeliveryRecord>& deliveries = {});
  // Whether the state cf holds `key` (a point read).
  Expected<bool> has_state(std::string_view key) const;
  // Every state entry whose key starts with `prefix`, in key order.
  Expected<std::vector<std::pair<std::string, std::string>>> load_state(
      std::string_view prefix) const;
  // False after a failed write until a write succeeds again.
  bool writable() const { return writable_.load(); }
  // Moves on after every write that added alerts (once the write is readable). While it
  // keeps one value, every alert query has one answer: callers may cache answers under it.
  uint64_t alerts_version() const { return alerts_version_.load(std::memory_order_acquire); }

  // Up to `max` outbox entries with a store key after `after` (empty: from the first), in
  // key order. An entry that cannot be decoded is returned with `corrupt` set, so that one bad
  // entry never blocks the others.
  Expected<std::vector<OutboxEntry>> read_outbox(std::string_view after, size_t max) const;
  Status delete_outbox(const std::vector<std::string>& store_keys);
  // RocksDB's estimate of the outbox's entry count (cheap; for metrics).
  uint64_t outbox_estimate() const;

  // Output queues. Up to `max` entries of `output`'s queue after `after` (empty: from its
  // oldest), oldest first.
  Expected<std::vector<DeliveryEntry>> read_deliveries(uint64_t output, std::string_view after,
                                                       size_t max) const;
  Status delete_deliveries(const std::vector<std::string>& store_keys);
  // The entries of `output`'s queue (reads its keys: for starts and tests, not per batch).
  Expected<uint64_t> count_deliveries(uint64_t output) const;
  // Deletes the oldest `n` entries of `output`'s queue (a backlog past its bound); returns how
  // many there were.
  Expected<uint64_t> drop_oldest_deliveries(uint64_t output, uint64_t n);
  // The outputs that have a queue, and dropping one whole (an output no longer configured).
  Expected<std::vector<uint64_t>> delivery_queues() const;
  Status drop_delivery_queue(uint64_t output);

  // The next offset to read for a partition, if one was stored.
  Expected<std::optional<int64_t>> next_offset(std::string_view stream, int32_t partition) const;

  // Alerts newest first. A filter the chosen index cannot serve is checked per entry, at
  // most max_scan entries per page; a page cut short by it is `partial` with a cursor.
  Expected<AlertPage> query_alerts(const AlertQuery& query) const;
  // The same, handing each document to `sink` (newest first) instead of copying it into the
  // page; the view is valid during the call only.
  Expected<AlertPage> query_alerts(const AlertQuery& query,
                                   const std::function<void(const StoredAlert&)>& sink) const;
  Expected<std::optional<std::string>> get_alert(const AlertId& id, TimeMs time) const;
  Expected<std::optional<std::string>> get_alert(const AlertId& id) const;
  Expected<uint64_t> count_alerts() const;

  // A bounded hunt over retained events, newest first (same paging contract as alerts).
  Expected<EventPage> query_events(const EventQuery& query) const;
  Expected<std::optional<StoredEvent>> get_event(std::string_view stream, int32_t partition,
                                                 int64_t offset, TimeMs time) const;

  // Retained events with since <= time < until, oldest first, payloads included; `fn`
  // returns false to stop. For dry runs over a time window.
  Status scan_events(TimeMs since, TimeMs until,
                     const std::function<bool(const StoredEvent&)>& fn) const;

  // Records of the meta cf under "content/" (bundles, rollout state, logs): written
  // atomically together and synced to disk before the call returns, so a record written
  // before a crash is there after it.
  Status put_meta(const std::vector<std::pair<std::string, std::string>>& puts,
                  const std::vector<std::string>& deletes = {});
  Expected<std::optional<std::string>> get_meta(std::string_view key) const;
  // Every record whose key starts with `prefix`, in key order (reverse: last first), at most `max`.
  Expected<std::vector<std::pair<std::string, std::string>>> scan_meta(std::string_view prefix,
                                                                       size_t max = SIZE_MAX,
                                                                       bool reverse = false) const;

  // Drops the event buckets past the retention limits (age relative to `now`, then size).
  Expected<RetentionResult> expire_events(TimeMs now);
  // Bytes the events cf takes on disk (SST files) plus its memtables.
  uint64_t events_bytes() const;
  // Deletes the alerts past the alert retention limits (age relative to `now`, then size),
  // oldest first, each with its rule and host index entries and its id, in batches: a
  // concurrent reader sees an alert with all its entries or none of them.
  Expected<AlertRetentionResult> expire_alerts(TimeMs now);
  // Bytes the alerts and their indexes take on disk plus their memtables.
  uint64_t alerts_bytes() const;

  // A consistent copy of the store in `dir` (must not exist), by RocksDB Checkpoint: hard
  // links where the file system allows. Open it with Store::open to restore.
  Status checkpoint(const std::string& dir) const;

  // Full consistency scan: every alert indexed, every index entry pointing at an alert,
  // every entry decodable. Reads the whole store.
  Expected<VerifyReport> verify() const;

  // Reads every table file of the store and checks its block checksums (a scrub: damage
  // inside a file is otherwise found only by the query that reads it). Damage found is
  // kept and reported by damage() until the process restarts. Any thread; slow (reads
  // everything), meant for a background thread at start and then periodically.
  Status scrub();
  // What the last scrub found wrong, or empty.
  std::string damage() const;

  Status flush();
  Status compact_events();
  // Compacts every column family (benchmarks, after bulk loads).
  Status compact_all();
  const std::string& path() const { return path_; }

 private:
  Store() = default;
  Status write(rocksdb::WriteBatch& batch);
  rocksdb::Status db_write(const rocksdb::WriteOptions& options, rocksdb::WriteBatch& batch);
  static Status check_before_open(const std::string& path, rocksdb::Env* env);
  void put_events(rocksdb::WriteBatch& batch, const std::vector<EventRecord>& events);
  std::string path_;
  bool sync_writes_ = false;
  RetentionOptions retention_;
  AlertRetentionOptions alert_retention_;
  std::atomic<bool> writable_{true};
  std::atomic<uint64_t> alerts_version_{0};
  std::mutex tsan_write_mu_;  // ThreadSanitizer builds only (see db_write)
  mutable Mutex damage_mu_;
  std::string damage_ VIGIL_GUARDED_BY(damage_mu_);
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::Env> env_;  // before db_: destroyed after it
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* alerts_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_rule_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_host_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;
  rocksdb::ColumnFamilyHandle* alert_ids_ = nullptr;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* state_ = nullptr;
  rocksdb::ColumnFamilyHandle* deliveries_ = nullptr;
};

}  // namespace vigil::store
