#include "vigil/store/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <span>

#include "support/temp_dir.h"

namespace vigil::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open() {
    auto s = Store::open({dir_.string()});
    EXPECT_TRUE(s) << s.status().to_string();
    return s ? std::move(*s) : nullptr;
  }
  static AlertRecord alert(int64_t offset, TimeMs time, const std::string& rule,
                           const std::string& host) {
    AlertRecord a;
    a.id = AlertId::derive("events", 0, offset, rule);
    a.time = time;
    a.rule_id = rule;
    a.host = host;
    a.json = R"({"offset":)" + std::to_string(offset) + "}";
    return a;
  }
  static OutboxRecord outbox_record(TimeMs time, int64_t offset, std::string value) {
    OutboxRecord r;
    r.time = time;
    r.id = AlertId::derive("s", 1, offset, "r");
    r.value = std::move(value);
    return r;
  }
  test::TempDir tmp_{"store"};
  const fs::path dir_ = tmp_.path() / "data";
};

TEST_F(StoreTest, AlertIdsAreDeterministicAndDistinct) {
  const AlertId a = AlertId::derive("t", 1, 42, "rule");
  EXPECT_EQ(a.hex(), AlertId::derive("t", 1, 42, "rule").hex());
  EXPECT_NE(a.hex(), AlertId::derive("t", 1, 43, "rule").hex());
  EXPECT_NE(a.hex(), AlertId::derive("t", 2, 42, "rule").hex());
  EXPECT_NE(a.hex(), AlertId::derive("t", 1, 42, "rule2").hex());
  EXPECT_EQ(a.hex().size(), 32u);
  auto parsed = AlertId::from_hex(a.hex());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->hex(), a.hex());
  EXPECT_FALSE(AlertId::from_hex("xyz"));
  EXPECT_FALSE(AlertId::from_hex(std::string(32, 'g')));
}

TEST_F(StoreTest, QueriesNewestFirstWithinRangeAndPages) {
  auto store = open();
  std::vector<AlertRecord> alerts;
  for (int i = 0; i < 25; ++i)
    alerts.push_back(alert(i, 1000 + i * 10, i % 2 ? "odd" : "even", "h" + std::to_string(i % 3)));
  ASSERT_TRUE(store->put_batch(alerts, {}).is_ok());
  EXPECT_EQ(*store->count_alerts(), 25u);

  AlertQuery q;
  q.limit = 10;
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    auto p = store->query_alerts(q);
    ASSERT_TRUE(p) << p.status().to_string();
    for (auto& a : p->alerts) seen.push_back(a);
    if (p->next_cursor.empty()) break;
    q.cursor = p->next_cursor;
  }
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(seen.front(), R"({"offset":24})");
  EXPECT_EQ(seen.back(), R"({"offset":0})");

  AlertQuery range;
  range.since = 1050;  // inclusive
  range.until = 1100;  // exclusive
  auto p = store->query_alerts(range);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->alerts.size(), 5u);
  EXPECT_EQ(p->alerts.front(), R"({"offset":9})");
  EXPECT_EQ(p->alerts.back(), R"({"offset":5})");
  EXPECT_TRUE(p->next_cursor.empty());
}

TEST_F(StoreTest, RuleAndHostIndexes) {
  auto store = open();
  std::vector<AlertRecord> alerts;
  for (int i = 0; i < 12; ++i)
    alerts.push_back(alert(i, 1000 + i, i % 2 ? "odd" : "even", "h" + std::to_string(i % 3)));
  ASSERT_TRUE(store->put_batch(alerts, {}).is_ok());
  AlertQuery q;
  q.rule_id = "odd";
  q.limit = 4;
  auto p = store->query_alerts(q);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->alerts, (std::vector<std::string>{R"({"offset":11})", R"({"offset":9})",
                                                 R"({"offset":7})", R"({"offset":5})"}));
  q.cursor = p->next_cursor;
  p = store->query_alerts(q);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->alerts, (std::vector<std::string>{R"({"offset":3})", R"({"offset":1})"}));
  EXPECT_TRUE(p->next_cursor.empty());

  AlertQuery h;
  h.host = "h0";
  p = store->query_alerts(h);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->alerts.size(), 4u);
  h.host = "nobody";
  EXPECT_TRUE(store->query_alerts(h)->alerts.empty());
}

TEST_F(StoreTest, BadCursorIsInvalidArgument) {
  auto store = open();
  AlertQuery q;
  q.cursor = "zz";
  EXPECT_EQ(store->query_alerts(q).status().code(), Code::kInvalidArgument);
  q.cursor = "00";
  EXPECT_EQ(store->query_alerts(q).status().code(), Code::kInvalidArgument);
  // A cursor of the alerts cf is not valid for a rule index query.
  q.cursor = std::string(48, '0');
  q.rule_id = "r";
  EXPECT_EQ(store->query_alerts(q).status().code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, ReplayingABatchDoesNotDuplicateAlerts) {
  auto store = open();
  std::vector<AlertRecord> alerts = {alert(1, 1000, "r", "h"), alert(2, 1001, "r", "h")};
  ASSERT_TRUE(store->put_batch(alerts, {{"events", 0, 3}}).is_ok());
  ASSERT_TRUE(store->put_batch(alerts, {{"events", 0, 3}}).is_ok());
  EXPECT_EQ(*store->count_alerts(), 2u);
  AlertQuery q;
  q.rule_id = "r";
  EXPECT_EQ(store->query_alerts(q)->alerts.size(), 2u);
}

TEST_F(StoreTest, OffsetsPersistAcrossReopen) {
  {
    auto store = open();
    EXPECT_FALSE(store->next_offset("events", 3)->has_value());
    ASSERT_TRUE(
        store->put_batch({alert(7, 1, "r", "")}, {{"events", 3, 8}, {"other", 3, 100}}).is_ok());
  }
  auto store = open();
  EXPECT_EQ(store->next_offset("events", 3)->value(), 8);
  EXPECT_EQ(store->next_offset("other", 3)->value(), 100);
  EXPECT_FALSE(store->next_offset("events", 4)->has_value());
  EXPECT_EQ(*store->count_alerts(), 1u);
}

TEST_F(StoreTest, RefusesAForeignDirectory) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "something.txt") << "not a store";
  auto s = Store::open({dir_.string()});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.status().code(), Code::kCorruption);
  EXPECT_NE(s.status().message().find("holds no vigil store"), std::string::npos);
}

TEST_F(StoreTest, OutboxKeepsRecordsInTimeOrderUntilDeleted) {
  auto store = open();
  ASSERT_TRUE(store);
  auto record = [](TimeMs t, int64_t offset, OutboxRecord::Kind kind) {
    OutboxRecord r;
    r.kind = kind;
    r.time = t;
    r.id = AlertId::derive("c/events", 0, offset, kind == OutboxRecord::Kind::kAlert ? "rule" : "");
    r.message_key = r.id.hex();
    r.value = std::string("value\0with nul ", 15) + std::to_string(offset);
    r.headers = {{"vigil.reason", "malformed_json"}, {"empty", ""}};
    return r;
  };
  ASSERT_TRUE(store
                  ->put_batch({}, {},
                              {record(3000, 3, OutboxRecord::Kind::kAlert),
                               record(1000, 1, OutboxRecord::Kind::kDeadLetter)})
                  .is_ok());
  ASSERT_TRUE(store->put_batch({}, {}, {record(2000, 2, OutboxRecord::Kind::kAlert)}).is_ok());
  // A replayed batch rewrites the same entry instead of adding one.
  ASSERT_TRUE(store->put_batch({}, {}, {record(2000, 2, OutboxRecord::Kind::kAlert)}).is_ok());

  auto all = store->read_outbox("", 10);
  ASSERT_TRUE(all) << all.status().to_string();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].record.time, 1000);
  EXPECT_EQ((*all)[1].record.time, 2000);
  EXPECT_EQ((*all)[2].record.time, 3000);
  const OutboxRecord& first = (*all)[0].record;
  EXPECT_EQ(first.kind, OutboxRecord::Kind::kDeadLetter);
  EXPECT_EQ(first.value, std::string("value\0with nul 1", 16));
  EXPECT_EQ(first.message_key, AlertId::derive("c/events", 0, 1, "").hex());
  EXPECT_EQ(first.id.hex(), first.message_key);
  ASSERT_EQ(first.headers.size(), 2u);
  EXPECT_EQ(first.headers[0],
            std::make_pair(std::string("vigil.reason"), std::string("malformed_json")));
  EXPECT_EQ(first.headers[1].second, "");

  auto after = store->read_outbox((*all)[0].store_key, 1);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].record.time, 2000);

  ASSERT_TRUE(store->delete_outbox({(*all)[0].store_key, (*all)[2].store_key}).is_ok());
  auto rest = store->read_outbox("", 10);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].record.time, 2000);
  EXPECT_TRUE(store->read_outbox((*rest)[0].store_key, 10)->empty());
}

TEST_F(StoreTest, OutboxSurvivesAReopen) {
  {
    auto store = open();
    ASSERT_TRUE(store->put_batch({}, {{"s", 1, 3}}, {outbox_record(5, 2, "{}")}).is_ok());
  }
  auto store = open();
  auto all = store->read_outbox("", 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].record.value, "{}");
  EXPECT_EQ(store->next_offset("s", 1)->value(), 3);
}

TEST_F(StoreTest, DeliveryQueuesAreKeptPerOutputInOrderUntilDeletedAndSurviveAReopen) {
  const AlertId a = AlertId::derive("s", 0, 1, "r"), b = AlertId::derive("s", 0, 2, "r"),
                c = AlertId::derive("s", 0, 3, "r");
  {
    auto store = open();
    ASSERT_TRUE(store
                    ->put_batch({}, {{"s", 0, 4}}, {}, {}, {},
                                {{7, 2000, b, R"({"id":"b"})"},
                                 {7, 1000, a, R"({"id":"a"})"},
                                 {9, 1500, c, R"({"id":"c"})"},
                                 {UINT64_MAX, 1, a, "last queue"}})
                    .is_ok());
  }
  auto store = open();
  auto q7 = store->read_deliveries(7, "", 10);
  ASSERT_TRUE(q7) << q7.status().to_string();
  ASSERT_EQ(q7->size(), 2u);
  EXPECT_EQ((*q7)[0].json, R"({"id":"a"})");  // oldest first
  EXPECT_EQ((*q7)[0].id.hex(), a.hex());
  EXPECT_EQ((*q7)[0].queued, 1000);
  EXPECT_EQ((*q7)[1].json, R"({"id":"b"})");
  auto after = store->read_deliveries(7, (*q7)[0].store_key, 10);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].json, R"({"id":"b"})");
  EXPECT_EQ(*store->count_deliveries(9), 1u);
  EXPECT_EQ(*store->delivery_queues(), (std::vector<uint64_t>{7, 9, UINT64_MAX}));

  ASSERT_TRUE(store->delete_deliveries({(*q7)[0].store_key}).is_ok());
  EXPECT_EQ(*store->count_deliveries(7), 1u);
  EXPECT_EQ(*store->drop_oldest_deliveries(7, 5), 1u);  // fewer than asked: what there was
  EXPECT_EQ(*store->count_deliveries(7), 0u);
  ASSERT_TRUE(store->drop_delivery_queue(9).is_ok());
  ASSERT_TRUE(store->drop_delivery_queue(UINT64_MAX).is_ok());
  EXPECT_EQ(*store->delivery_queues(), std::vector<uint64_t>{});
}

TEST_F(StoreTest, ACorruptOutboxEntryIsFlaggedAndDoesNotHideTheOthers) {
  {
    auto store = open();
    ASSERT_TRUE(store->put_batch({}, {}, {outbox_record(10, 1, "good")}).is_ok());
  }
  {
    // Damage one entry behind the store's back: a value that is not an outbox record.
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n : {"default", "alerts", "alerts_by_rule", "alerts_by_host", "meta", "outbox",
                          "alert_ids", "events", "state", "deliveries"})
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir_.string(), cfs, &handles, &db).ok());
    std::string key(8, '\0');
    key[0] = static_cast<char>(0x80);  // time 0 in the store's order-preserving encoding
    key += std::string(16, 'x');
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[5], key, "\x07garbage").ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto store = open();
  auto all = store->read_outbox("", 10);
  ASSERT_TRUE(all) << all.status().to_string();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_TRUE((*all)[0].corrupt);
  EXPECT_FALSE((*all)[1].corrupt);
  EXPECT_EQ((*all)[1].record.value, "good");
  ASSERT_TRUE(store->delete_outbox({(*all)[0].store_key}).is_ok());
  EXPECT_EQ(store->read_outbox("", 10)->size(), 1u);
}

namespace filters {

AlertRecord labelled(int64_t offset, TimeMs time, const std::string& rule, const std::string& host,
                     AlertLevel level, std::string_view title, std::span<const std::string> tags) {
  AlertRecord a;
  a.id = AlertId::derive("events", 0, offset, rule);
  a.time = time;
  a.rule_id = rule;
  a.host = host;
  a.level = level;
  a.title = title;
  a.tags = tags;
  a.json = R"({"offset":)" + std::to_string(offset) + "}";
  return a;
}

}  // namespace filters

TEST_F(StoreTest, FiltersBySeverityTagTextAndRuleWithHost) {
  auto store = open();
  const std::vector<std::string> t1 = {"attack.execution", "attack.t1059.001"};
  const std::vector<std::string> t2 = {"attack.persistence"};
  std::vector<AlertRecord> alerts;
  for (int i = 0; i < 30; ++i) {
    const auto level = i % 3 == 0   ? AlertLevel::kHigh
                       : i % 3 == 1 ? AlertLevel::kMedium
                                    : AlertLevel::kCritical;
    alerts.push_back(filters::labelled(
        i, 1000 + i, i % 2 ? "odd" : "even", "h" + std::to_string(i % 5), level,
        i % 2 ? "Suspicious PowerShell Download" : "Run Key Added", i % 2 ? t1 : t2));
  }
  ASSERT_TRUE(store->put_batch(alerts, {}).is_ok());
  auto offsets = [&](AlertQuery q) {
    std::vector<int> out;
    for (int page = 0; page < 100; ++page) {
      auto p = store->query_alerts(q);
      EXPECT_TRUE(p) << p.status().to_string();
      if (!p) break;
      for (const auto& a : p->alerts) out.push_back(std::stoi(a.substr(10)));
      if (p->next_cursor.empty()) break;
      q.cursor = p->next_cursor;
    }
    return out;
  };
  AlertQuery q;
  q.levels = 1u << static_cast<unsigned>(AlertLevel::kHigh);
  EXPECT_EQ(offsets(q), (std::vector<int>{27, 24, 21, 18, 15, 12, 9, 6, 3, 0}));
  q.levels |= 1u << static_cast<unsigned>(AlertLevel::kCritical);
  EXPECT_EQ(offsets(q).size(), 20u);

  AlertQuery tag;
  tag.tag = "ATTACK.T1059.001";  // tags compare case-insensitively
  EXPECT_EQ(offsets(tag).size(), 15u);
  AlertQuery text;
  text.text = "powershell";
  EXPECT_EQ(offsets(text).size(), 15u);
  text.text = "nothing like it";
  EXPECT_TRUE(offsets(text).empty());

  AlertQuery both;  // rule index, host checked per entry
  both.rule_id = "odd";
  both.host = "h3";
  EXPECT_EQ(offsets(both), (std::vector<int>{23, 13, 3}));

  // A page cut short by the scan budget says so and carries on from where it stopped, so
  // paging still returns every match exactly once.
  AlertQuery budget = tag;
  budget.max_scan = 4;
  budget.limit = 100;
  auto first = store->query_alerts(budget);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->partial);
  EXPECT_EQ(first->scanned, 4u);
  EXPECT_FALSE(first->next_cursor.empty());
  std::vector<int> all = offsets(budget);
  EXPECT_EQ(all, offsets(tag));
}

TEST_F(StoreTest, AlertById) {
  auto store = open();
  const auto a = alert(5, 123456, "r", "h");
  ASSERT_TRUE(store->put_batch({a}, {}).is_ok());
  auto found = store->get_alert(a.id);
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, a.json);
  auto missing = store->get_alert(AlertId::derive("events", 0, 6, "r"));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_F(StoreTest, UpgradesAFormat1StoreInPlace) {
  {
    // A store as format 1 wrote it: its column families, its marker, a bare JSON alert.
    rocksdb::Options o;
    o.create_if_missing = true;
    o.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n :
         {"default", "alerts", "alerts_by_rule", "alerts_by_host", "meta", "outbox"})
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir_.string(), cfs, &h, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put({}, h[4], "format", "vigil-store-1").ok());
    std::string key(8, '\0');
    key[0] = static_cast<char>(0x80);  // time 0
    key.append(16, '\x01');
    ASSERT_TRUE(db->Put({}, h[1], key, R"({"old":true})").ok());
    for (auto* x : h) db->DestroyColumnFamilyHandle(x);
  }
  auto store = open();
  ASSERT_TRUE(store);
  AlertQuery q;
  auto p = store->query_alerts(q);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->alerts, (std::vector<std::string>{R"({"old":true})"}));
  ASSERT_TRUE(store->put_batch({alert(1, 5, "r", "h")}, {}).is_ok());
  EXPECT_EQ(store->query_alerts(q)->alerts.size(), 2u);
}

TEST_F(StoreTest, RefusesACorruptedStore) {
  { auto store = open(); }
  std::ofstream(dir_ / "CURRENT", std::ios::trunc) << "MANIFEST-999999\n";
  auto s = Store::open({dir_.string()});
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find(dir_.string()), std::string::npos) << s.status().to_string();
}

TEST_F(StoreTest, AnEmptyRocksDbIsAnInterruptedFirstStartOneWithDataIsRefused) {
  auto make_db = [](const fs::path& dir, bool with_data) {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    if (with_data) {
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "someone", "else's").ok());
    }
  };
  // Killed after RocksDB made its files, before the format marker was written.
  const fs::path empty = tmp_.path() / "empty";
  make_db(empty, false);
  {
    auto s = Store::open({empty.string()});
    ASSERT_TRUE(s) << s.status().to_string();
    ASSERT_TRUE((*s)->put_batch({alert(1, 10, "r", "h")}, {{"events", 0, 2}}).is_ok());
  }
  auto again = Store::open({empty.string()});
  ASSERT_TRUE(again) << again.status().to_string();
  EXPECT_EQ(*(*again)->count_alerts(), 1u);

  const fs::path foreign = tmp_.path() / "foreign";
  make_db(foreign, true);
  auto s = Store::open({foreign.string()});
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find("without a vigil format marker"), std::string::npos)
      << s.status().to_string();
}

// A store with several table files (each flush writes one per column family written).
void fill_with_tables(Store& store, int flushes) {
  for (int f = 0; f < flushes; ++f) {
    std::vector<AlertRecord> batch;
    for (int i = 0; i < 50; ++i) {
      AlertRecord a;
      a.id = AlertId::derive("events", 0, f * 1000 + i, "r");
      a.time = 1000 + f * 1000 + i;
      a.rule_id = "r";
      a.host = "h";
      a.json = R"({"n":)" + std::to_string(i) + "}";
      batch.push_back(std::move(a));
    }
    ASSERT_TRUE(store.put_batch(batch, {{"events", 0, f * 1000 + 50}}).is_ok());
    ASSERT_TRUE(store.flush().is_ok());
  }
}

std::set<std::string> table_files(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".sst") out.insert(e.path().filename().string());
  }
  return out;
}

void truncate_manifest(const fs::path& dir, double keep) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.path().filename().string().starts_with("MANIFEST-")) continue;
    const auto size = fs::file_size(e.path());
    fs::resize_file(e.path(),
                    keep >= 1 ? static_cast<uintmax_t>(keep) : static_cast<uintmax_t>(size * keep));
  }
}

// An older copy of the MANIFEST put back (or one cut exactly after an earlier edit) is a
// consistent earlier history: the table files it does not list look like the outputs of an
// interrupted flush. The store remembers the last sequence number it made durable and refuses
// a MANIFEST that ends before it; deleting that record (a restore on purpose) lets it open.
TEST_F(StoreTest, RefusesAnOlderManifestPutBackAndOpensOnceTheRestoreIsDeclared) {
  fs::remove_all(dir_);
  std::string manifest_name, early;
  {
    // One flush before the copy and one after: two level-0 files, below the compaction
    // trigger, so that the earlier MANIFEST still lists files that exist.
    auto store = open();
    fill_with_tables(*store, 1);
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (!e.path().filename().string().starts_with("MANIFEST-")) continue;
      manifest_name = e.path().filename().string();
      std::ifstream in(e.path(), std::ios::binary);
      early.assign(std::istreambuf_iterator<char>(in), {});
    }
    ASSERT_FALSE(early.empty());
    fill_with_tables(*store, 1);
  }
  ASSERT_TRUE(fs::exists(dir_ / manifest_name)) << "the MANIFEST was rewritten during the run";
  const auto before = table_files(dir_);
  {
    std::ofstream out(dir_ / manifest_name, std::ios::binary | std::ios::trunc);
    out << early;
  }
  auto s = Store::open({dir_.string()});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.status().code(), Code::kCorruption);
  EXPECT_NE(s.status().message().find("VIGIL-DURABLE-SEQUENCE"), std::string::npos)
      << s.status().to_string();
  EXPECT_EQ(table_files(dir_), before);

  fs::remove(dir_ / "VIGIL-DURABLE-SEQUENCE");
  auto restored = Store::open({dir_.string()});
  ASSERT_TRUE(restored) << restored.status().to_string();
}

// A crash after a compaction is installed but before its inputs are deleted leaves table files
// older than every listed one. With the durable sequence record, that is recovery, not damage:
// the store opens and RocksDB deletes them. A store without the record (made before it) has
// only the files' shape to go by and refuses.
TEST_F(StoreTest, CompactionInputsACrashLeftBehindDoNotStopTheOpen) {
  fs::remove_all(dir_);
  {
    auto store = open();
    fill_with_tables(*store, 2);
  }
  const auto tables = table_files(dir_);
  ASSERT_FALSE(tables.empty());
  ASSERT_GT(std::stoll(*tables.begin()), 1);
  const fs::path leftover = dir_ / "000001.sst";
  fs::copy_file(dir_ / *tables.begin(), leftover);
  ASSERT_TRUE(fs::exists(dir_ / "VIGIL-DURABLE-SEQUENCE"));
  {
    auto store = Store::open({dir_.string()});
    ASSERT_TRUE(store) << store.status().to_string();
  }
  EXPECT_FALSE(fs::exists(leftover)) << "RocksDB deletes what no version lists";

  fs::copy_file(dir_ / *table_files(dir_).begin(), leftover);
  fs::remove(dir_ / "VIGIL-DURABLE-SEQUENCE");
  auto legacy = Store::open({dir_.string()});
  ASSERT_FALSE(legacy);
  EXPECT_NE(legacy.status().message().find("older than every file"), std::string::npos)
      << legacy.status().to_string();
}

// A MANIFEST truncated to a few bytes still reads as a valid (empty) history: RocksDB's own
// open would start an empty store and delete every table file. vigil refuses it first, and
// nothing in the directory changes (issue: data deleted on a damaged MANIFEST).
TEST_F(StoreTest, RefusesATruncatedManifestAndDeletesNothing) {
  for (const double keep : {100.0, 0.5}) {
    SCOPED_TRACE(keep);
    fs::remove_all(dir_);
    {
      auto store = open();
      fill_with_tables(*store, 4);
    }
    const auto before = table_files(dir_);
    ASSERT_GE(before.size(), 4u);
    truncate_manifest(dir_, keep);
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto s = Store::open({dir_.string()});
      ASSERT_FALSE(s);
      EXPECT_EQ(s.status().code(), Code::kCorruption) << s.status().to_string();
      EXPECT_NE(s.status().message().find("is damaged"), std::string::npos)
          << s.status().to_string();
      EXPECT_NE(s.status().message().find("checkpoint"), std::string::npos)
          << s.status().to_string();
      EXPECT_EQ(table_files(dir_), before);
    }
  }
}

// A clean restart after writes and flushes is not mistaken for damage.
TEST_F(StoreTest, ReopensAStoreWithManyTableFiles) {
  {
    auto store = open();
    fill_with_tables(*store, 3);
  }
  {
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_EQ(*store->count_alerts(), 150u);
    fill_with_tables(*store, 1);
  }
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->scrub().is_ok());
  EXPECT_EQ(store->damage(), "");
}

// A flipped byte inside a table file: the store opens (RocksDB does not read every block at
// open), and the scrub finds and keeps the damage for /readyz and the metrics.
TEST_F(StoreTest, ScrubFindsAFlippedBlock) {
  {
    auto store = open();
    fill_with_tables(*store, 2);
  }
  fs::path victim;
  uintmax_t largest = 0;
  for (const auto& name : table_files(dir_)) {
    const auto size = fs::file_size(dir_ / name);
    if (size > largest) largest = size, victim = dir_ / name;
  }
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(64);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(64);
    f.write(&c, 1);
  }
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->damage(), "");
  const Status s = store->scrub();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.to_string();
  EXPECT_NE(store->damage(), "");
}

TEST_F(StoreTest, CheckpointIsAConsistentCopyThatOpensAsAStore) {
  auto store = open();
  ASSERT_TRUE(store->put_batch({alert(1, 10, "r", "h")}, {{"events", 0, 2}}).is_ok());
  const std::string cp = (tmp_.path() / "cp1").string();
  ASSERT_TRUE(store->checkpoint(cp).is_ok());
  EXPECT_EQ(store->checkpoint(cp).code(), Code::kInvalidArgument);  // never overwrites
  ASSERT_TRUE(store->put_batch({alert(2, 11, "r", "h")}, {{"events", 0, 3}}).is_ok());

  auto restored = Store::open({cp});
  ASSERT_TRUE(restored) << restored.status().to_string();
  EXPECT_EQ(*(*restored)->count_alerts(), 1u);
  EXPECT_EQ((*restored)->next_offset("events", 0)->value(), 2);
  EXPECT_EQ(*store->count_alerts(), 2u);
}
}  // namespace
}  // namespace vigil::store
