// Opening a store: its options, and the checks that refuse a damaged one before RocksDB's own
// open could delete what its MANIFEST no longer lists.

#include <fcntl.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>

#include "encoding.h"
#include "vigil/core/mutex.h"
#include "vigil/store/store.h"

namespace vigil::store {

using namespace encoding;

namespace {

constexpr char kFormat[] = "vigil-store-3";
constexpr char kFormat2[] = "vigil-store-2";
constexpr char kFormat1[] = "vigil-store-1";
constexpr char kFormatKey[] = "format";
// A table file's number ("000123.sst" -> 123), or -1 for any other file name.
int64_t table_number(const std::string& name) {
  if (!name.ends_with(".sst") || name.size() <= 4) return -1;
  int64_t n = 0;
  for (size_t i = 0; i + 4 < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

constexpr char kRestoreHint[] =
    " Nothing was changed. Restore the data directory from a checkpoint (POST /api/v1/checkpoints "
    "or `vigil checkpoint`; see docs/security.md) or move it aside to start with an empty store.";

// The highest sequence number RocksDB has made durable in a table file, kept beside the store
// in this file. A MANIFEST that lost the end of its history (truncated, or an older copy put
// back) still lists a consistent earlier state, and the table files it no longer lists look
// like the outputs of a flush a crash interrupted; but it opens at a lower sequence number
// than one this store had already made durable, which this file remembers.
constexpr char kDurableSequenceFile[] = "VIGIL-DURABLE-SEQUENCE";

std::optional<uint64_t> read_durable_sequence(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / kDurableSequenceFile);
  uint64_t seq = 0;
  if (!(in >> seq)) return std::nullopt;
  return seq;
}

// Writes the file after each flush RocksDB has installed (the flush's table file and MANIFEST
// edit are synced by then): a new file, synced, renamed over the old one, so that the file
// never names a sequence number the store cannot open at.
class DurableSequenceRecorder final : public rocksdb::EventListener {
 public:
  explicit DurableSequenceRecorder(std::string dir) : dir_(std::move(dir)) {}

  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo& info) override {
    MutexLock lock(mu_);
    if (info.largest_seqno <= written_) return;
    const std::string path = (std::filesystem::path(dir_) / kDurableSequenceFile).string();
    const std::string tmp = path + ".tmp";
    const std::string text = std::to_string(info.largest_seqno) + "\n";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;  // the check is then weaker, never wrong: the old value stays
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                    ::fsync(fd) == 0;
    ::close(fd);
    if (ok && ::rename(tmp.c_str(), path.c_str()) == 0) written_ = info.largest_seqno;
  }

 private:
  const std::string dir_;
  Mutex mu_;
  uint64_t written_ VIGIL_GUARDED_BY(mu_) = 0;
};

}  // namespace

// RocksDB's read-write open recovers what its MANIFEST describes and deletes every other
// table file as obsolete. A MANIFEST cut short still reads as a valid, shorter history, so
// that open would quietly discard the data it no longer lists (a truncated MANIFEST started
// as an empty store). So an existing store is opened read-only first, which writes and
// deletes nothing, and refused if what it describes does not account for the directory:
// no vigil format marker while table files exist, a table file it lists that is gone (the
// read-only open fails), or a last sequence number below one the store had made durable (see
// kDurableSequenceFile). Unlisted table files are otherwise what a crash leaves behind, and
// RocksDB removing them is normal recovery: outputs of a flush or compaction not yet
// installed (newer than the files listed), or inputs of an installed compaction not yet
// deleted (older). A store without the durable sequence record (made before it existed) has
// only the shape of its files to go by: there, unlisted files older than every listed one are
// taken as a lost history, at the price of refusing the rare crash that leaves compaction
// inputs behind.
Status Store::check_before_open(const std::string& path, rocksdb::Env* env) {
  namespace fs = std::filesystem;
  rocksdb::DBOptions ro;
  if (env != nullptr) ro.env = env;
  std::vector<std::string> names;
  auto s = rocksdb::DB::ListColumnFamilies(ro, path, &names);
  if (!s.ok())
    return Status::corruption("store '" + path + "' is damaged: " + s.ToString() + "." +
                              kRestoreHint);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(ro, path, descs, &handles, &raw);
  if (!s.ok())
    return Status::corruption("store '" + path + "' is damaged: " + s.ToString() + "." +
                              kRestoreHint);
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string format;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "meta") (void)db->Get(rocksdb::ReadOptions(), handles[i], kFormatKey, &format);
  }
  std::vector<rocksdb::LiveFileMetaData> live;
  db->GetLiveFilesMetaData(&live);
  const uint64_t last_sequence = db->GetLatestSequenceNumber();
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  db.reset();

  int64_t oldest_live = INT64_MAX;
  std::set<std::string> live_names;
  for (const auto& f : live) {
    const std::string name = fs::path(f.name).filename().string();
    live_names.insert(name);
    oldest_live = std::min(oldest_live, table_number(name));
  }
  size_t tables = 0, unlisted = 0, older = 0;
  std::string example;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    const int64_t n = table_number(name);
    if (n < 0) continue;
    ++tables;
    if (live_names.count(name)) continue;
    ++unlisted;
    if (n < oldest_live) {
      ++older;
      if (example.empty()) example = name;
    }
  }
  if (format.empty() && tables > 0) {
    return Status::corruption(
        "store '" + path + "' is damaged: its MANIFEST describes no vigil store (no format " +
        "marker, " + std::to_string(names.size()) + " column famil" +
        (names.size() == 1 ? "y" : "ies") + ") but the directory holds " + std::to_string(tables) +
        " table files (" + std::to_string(unlisted) +
        " of them not listed): the MANIFEST was truncated or replaced." + kRestoreHint);
  }
  const auto durable = read_durable_sequence(path);
  if (durable && last_sequence < *durable) {
    return Status::corruption(
        "store '" + path + "' is damaged: its MANIFEST and logs end at sequence number " +
        std::to_string(last_sequence) + ", but the store had made sequence number " +
        std::to_string(*durable) + " durable (" + kDurableSequenceFile + "): the MANIFEST lost " +
        "part of its history (" + std::to_string(unlisted) + " table files it does not list)." +
        kRestoreHint + " (If this directory was restored from an older copy on purpose, delete " +
        kDurableSequenceFile + " from it.)");
  }
  if (older > 0 && !durable) {
    return Status::corruption(
        "store '" + path + "' is damaged: " + std::to_string(older) +
        " table files older than every file its MANIFEST lists are not listed (" + example +
        ", ...): the MANIFEST lost part of its history." + kRestoreHint);
  }
  return Status::ok();
}

namespace {

// The column families and their options, over one shared block cache. Point lookups (alert
// by key or id) get bloom filters; the events cf is read by range only, compressed hardest, in
// larger blocks.
std::vector<std::pair<std::string, rocksdb::ColumnFamilyOptions>> column_families(
    const std::shared_ptr<rocksdb::Cache>& cache) {
  auto table_options = [&](bool bloom, size_t block_size) {
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = cache;
    t.block_size = block_size;
    if (bloom) t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    return rocksdb::NewBlockBasedTableFactory(t);
  };
  rocksdb::ColumnFamilyOptions point;
  point.table_factory.reset(table_options(true, 4096));
  // LZ4 at every level: an alert page is up to a hundred point reads, each decompressing a
  // block, and LZ4 decompresses several times faster than zstd. The bulk (events) is zstd.
  point.compression = rocksdb::kLZ4Compression;
  point.bottommost_compression = rocksdb::kLZ4Compression;
  rocksdb::ColumnFamilyOptions scan = point;
  scan.table_factory.reset(table_options(false, 4096));
  // Alerts are read mostly in pages of up to a thousand consecutive ~1 KB values: 16 KB
  // blocks make a page a few block lookups instead of dozens (a newest-first page of 100
  // costs ~2/3 of the time it takes with 4 KB blocks), for a slightly costlier point read.
  rocksdb::ColumnFamilyOptions alerts = point;
  alerts.table_factory.reset(table_options(true, 16 << 10));
  rocksdb::ColumnFamilyOptions events;
  events.table_factory.reset(table_options(false, 64 << 10));
  events.compression = rocksdb::kZSTD;
  events.bottommost_compression = rocksdb::kZSTD;
  events.bottommost_compression_opts.enabled = true;
  events.bottommost_compression_opts.max_dict_bytes = 16 << 10;
  events.bottommost_compression_opts.zstd_max_train_bytes = 1600 << 10;
  events.write_buffer_size = 64 << 20;

  return {{rocksdb::kDefaultColumnFamilyName, scan},
          {"alerts", alerts},
          {"alerts_by_rule", scan},
          {"alerts_by_host", scan},
          {"meta", point},
          {"outbox", scan},
          {"alert_ids", point},
          {"events", events},
          {"state", point},
          {"deliveries", scan}};
}

}  // namespace

Expected<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options.path, ec);
  if (ec)
    return Status::io_error("cannot create data directory '" + options.path + "': " + ec.message());
  const bool has_db = fs::exists(fs::path(options.path) / "CURRENT", ec);
  if (!has_db && !fs::is_empty(options.path, ec)) {
    return Status::corruption("data directory '" + options.path +
                              "' is not empty and holds no vigil store; refusing to use it");
  }
  if (options.retention.bucket_ms <= 0 || options.retention.bucket_ms % kEventWindowMs != 0) {
    return Status::invalid("retention bucket must be a positive multiple of " +
                           std::to_string(kEventWindowMs) + " ms");
  }

  // Chooses (and checks) RocksDB's CRC32C before the first log record needs it; this call
  // also links src/crc32c.cc, and with it the faster Extend, into every binary with a store.
  (void)crc32c_implementation();

  std::unique_ptr<Store> store(new Store());
  store->path_ = options.path;
  store->sync_writes_ = options.sync_writes;
  store->retention_ = options.retention;
  store->alert_retention_ = options.alert_retention;
  store->cache_ = rocksdb::NewLRUCache(options.block_cache_bytes);

  const auto cfs = column_families(store->cache_);
  if (has_db) {
    std::vector<std::string> existing;
    auto s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options.path, &existing);
    if (!s.ok()) return from_rocks(s, "cannot read data directory '" + options.path + "'");
    for (const auto& e : existing) {
      if (std::none_of(cfs.begin(), cfs.end(), [&](const auto& c) { return c.first == e; })) {
        return Status::corruption("data directory '" + options.path +
                                  "' has an unknown column family '" + e +
                                  "': not a vigil store, or one of a newer format");
      }
    }
  }

  std::unique_ptr<rocksdb::Env> env;
  if (options.file_system) env = rocksdb::NewCompositeEnv(options.file_system);
  if (has_db) {
    if (auto st = check_before_open(options.path, env.get()); !st) return st;
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& [name, o] : cfs) descs.emplace_back(name, o);
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.IncreaseParallelism(2);
  dbo.max_background_jobs = 2;
  dbo.max_total_wal_size = 256 << 20;
  dbo.listeners.push_back(std::make_shared<DurableSequenceRecorder>(options.path));
  if (env) dbo.env = env.get();

  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(dbo, options.path, descs, &store->handles_, &raw);
  if (!s.ok()) return from_rocks(s, "cannot open store '" + options.path + "'");
  store->env_ = std::move(env);
  store->db_.reset(raw);
  store->alerts_ = store->handles_[1];
  store->by_rule_ = store->handles_[2];
  store->by_host_ = store->handles_[3];
  store->meta_ = store->handles_[4];
  store->outbox_ = store->handles_[5];
  store->alert_ids_ = store->handles_[6];
  store->events_ = store->handles_[7];
  store->state_ = store->handles_[8];
  store->deliveries_ = store->handles_[9];

  std::string format;
  s = store->db_->Get(rocksdb::ReadOptions(), store->meta_, kFormatKey, &format);
  if (s.IsNotFound()) {
    // Without the marker, a database that holds nothing is a first start interrupted
    // between RocksDB's creation and the marker's write (a kill, a crash): it is taken on.
    // One that holds data is someone else's.
    if (has_db) {
      for (auto* h : store->handles_) {
        std::unique_ptr<rocksdb::Iterator> it(store->db_->NewIterator(rocksdb::ReadOptions(), h));
        it->SeekToFirst();
        if (it->Valid() || !it->status().ok()) {
          return Status::corruption("data directory '" + options.path +
                                    "' is a RocksDB without a vigil format marker");
        }
      }
    }
  } else if (!s.ok()) {
    return from_rocks(s, "cannot read store format");
  } else if (format != kFormat && format != kFormat2 && format != kFormat1) {
    return Status::corruption("data directory '" + options.path + "' has store format '" + format +
                              "'; this build reads '" + kFormat + "'");
  }
  if (format != kFormat) {
    // A new store, a format-1 store whose new column families were just created, or a
    // format-2 store (its single-event records stay readable beside format 3's blocks).
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = store->db_->Put(wo, store->meta_, kFormatKey, kFormat);
    if (!s.ok()) return from_rocks(s, "cannot initialise store");
  }
  return store;
}

}  // namespace vigil::store
