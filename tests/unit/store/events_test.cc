// Retained events (hunts, retention by age and size) and the store's behaviour when its disk
// refuses writes.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "encoding.h"
#include "support/full_disk.h"
#include "support/temp_dir.h"
#include "vigil/store/store.h"

namespace vigil::store {
namespace {

constexpr TimeMs kHour = 3600 * 1000;
constexpr TimeMs kT0 = 1795539600000;  // 2026-11-24T... (a bucket boundary: multiple of 1 h)

class EventsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open(RetentionOptions r = {}) {
    StoreOptions o;
    o.path = (tmp_.path() / "data").string();
    o.retention = r;
    auto s = Store::open(o);
    EXPECT_TRUE(s) << s.status().to_string();
    return s ? std::move(*s) : nullptr;
  }
  // Writes `n` events per hour for `hours` hours starting at kT0, offsets counting up.
  static void fill(Store& store, int hours, int n, size_t pad = 0) {
    std::vector<std::string> payloads;
    std::vector<EventRecord> events;
    int64_t offset = 0;
    for (int h = 0; h < hours; ++h) {
      payloads.clear();
      events.clear();
      payloads.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        payloads.push_back(R"({"host":"h)" + std::to_string(i % 4) + R"(","cmd":"run )" +
                           std::to_string(offset) + R"(","pad":")" + std::string(pad, 'x') +
                           R"("})");
        events.push_back({kT0 + h * kHour + i, "c/events", static_cast<int32_t>(i % 2), offset++,
                          payloads.back()});
      }
      ASSERT_TRUE(store.put_batch({}, {{"c/events", 0, offset}}, {}, events).is_ok());
    }
  }
  static std::vector<int64_t> offsets(Store& store, EventQuery q) {
    std::vector<int64_t> out;
    for (int page = 0; page < 10000; ++page) {
      auto p = store.query_events(q);
      EXPECT_TRUE(p) << p.status().to_string();
      if (!p) break;
      for (const auto& e : p->events) out.push_back(e.offset);
      if (p->next_cursor.empty()) break;
      q.cursor = p->next_cursor;
    }
    return out;
  }
  // Writes into the store's directory with RocksDB alone (the column families of format 3),
  // as an older vigil or a damaged disk would have left it.
  void with_raw_db(const std::function<void(rocksdb::DB&, rocksdb::ColumnFamilyHandle* meta,
                                            rocksdb::ColumnFamilyHandle* events)>& write) {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n : {"default", "alerts", "alerts_by_rule", "alerts_by_host", "meta", "outbox",
                          "alert_ids", "events", "state", "deliveries"}) {
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, (tmp_.path() / "data").string(), cfs, &h, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    write(*db, h[4], h[7]);
    for (auto* x : h) db->DestroyColumnFamilyHandle(x);
  }
  test::TempDir tmp_{"events"};
};

TEST_F(EventsTest, HuntsNewestFirstWithFiltersAndPages) {
  auto store = open();
  fill(*store, 3, 10);
  EventQuery all;
  all.limit = 7;
  auto got = offsets(*store, all);
  ASSERT_EQ(got.size(), 30u);
  EXPECT_EQ(got.front(), 29);
  EXPECT_EQ(got.back(), 0);
  EXPECT_TRUE(std::is_sorted(got.rbegin(), got.rend()));

  EventQuery range;
  range.since = kT0 + kHour;      // inclusive
  range.until = kT0 + 2 * kHour;  // exclusive
  EXPECT_EQ(offsets(*store, range), (std::vector<int64_t>{19, 18, 17, 16, 15, 14, 13, 12, 11, 10}));

  EventQuery eq;
  eq.filters = {{"host", EventFilter::Op::kEquals, "H1"}};
  EXPECT_EQ(offsets(*store, eq), (std::vector<int64_t>{29, 25, 21, 19, 15, 11, 9, 5, 1}));
  eq.filters.push_back({"cmd", EventFilter::Op::kContains, "UN 2"});
  EXPECT_EQ(offsets(*store, eq), (std::vector<int64_t>{29, 25, 21}));
  EventQuery exists;
  exists.filters = {{"pad", EventFilter::Op::kExists, ""}};
  EXPECT_EQ(offsets(*store, exists).size(), 30u);
  exists.filters = {{"missing.field", EventFilter::Op::kExists, ""}};
  EXPECT_TRUE(offsets(*store, exists).empty());

  // The scan budget bounds a page; paging on still finds every match once.
  EventQuery budget = eq;
  budget.max_scan = 5;
  auto first = store->query_events(budget);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->partial);
  EXPECT_EQ(offsets(*store, budget), (std::vector<int64_t>{29, 25, 21}));

  auto one = store->get_event("c/events", 1, 13, kT0 + kHour + 3);
  ASSERT_TRUE(one);
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->stream, "c/events");
  EXPECT_NE((*one)->payload.find("run 13"), std::string::npos);
  EXPECT_FALSE(store->get_event("other/events", 1, 13, kT0 + kHour + 3)->has_value());

  EventQuery bad;
  bad.cursor = "abc";
  EXPECT_EQ(store->query_events(bad).status().code(), Code::kInvalidArgument);
}

TEST_F(EventsTest, RetentionByAgeDropsWholeBuckets) {
  auto store = open({/*max_age_ms=*/2 * kHour, /*max_bytes=*/0, /*bucket_ms=*/kHour});
  fill(*store, 5, 10);  // hours 0..4
  // At kT0 + 4.5 h the age limit is kT0 + 2.5 h: buckets 0 and 1 end before it and go;
  // bucket 2 (kT0 + 2 h .. 3 h) holds events younger than the limit, so it stays whole.
  auto r = store->expire_events(kT0 + 4 * kHour + kHour / 2);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->buckets_dropped, 2u);
  EXPECT_EQ(r->oldest_kept, kT0 + 2 * kHour);
  auto left = offsets(*store, {});
  ASSERT_EQ(left.size(), 30u);
  EXPECT_EQ(left.back(), 20);
  // Idempotent.
  r = store->expire_events(kT0 + 4 * kHour + kHour / 2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->buckets_dropped, 0u);
  EXPECT_EQ(offsets(*store, {}).size(), 30u);
}

TEST_F(EventsTest, RetentionBySizeDropsOldestBucketsAndKeepsTheNewest) {
  auto store = open({/*max_age_ms=*/0, /*max_bytes=*/0, /*bucket_ms=*/kHour});
  fill(*store, 8, 400, 600);  // 3200 events of ~650 bytes
  ASSERT_TRUE(store->flush().is_ok());
  ASSERT_TRUE(store->compact_events().is_ok());
  const uint64_t full = store->events_bytes();
  ASSERT_GT(full, 0u);
  store.reset();

  // Room for about half: the oldest buckets go, the newest stay whole.
  store = open({0, full / 2, kHour});
  auto r = store->expire_events(kT0 + 8 * kHour);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_GE(r->buckets_dropped, 3u);
  EXPECT_LE(r->buckets_dropped, 5u);
  EXPECT_LE(store->events_bytes(), full / 2 + full / 8);
  auto left = offsets(*store, {});
  ASSERT_FALSE(left.empty());
  EXPECT_EQ(left.front(), 3199);
  EXPECT_EQ(left.size() % 400, 0u);  // whole buckets only
  EXPECT_EQ(left.back(), static_cast<int64_t>(3200 - left.size()));

  // A limit below one bucket keeps the newest bucket anyway.
  store.reset();
  store = open({0, 1, kHour});
  ASSERT_TRUE(store->expire_events(kT0 + 8 * kHour));
  EXPECT_EQ(offsets(*store, {}).size(), 400u);
}

TEST_F(EventsTest, AFullDiskStopsWritesWithoutAdvancingOffsetsAndRecovers) {
  auto disk = std::make_shared<test::FullDisk>(rocksdb::FileSystem::Default());
  StoreOptions o;
  o.path = (tmp_.path() / "data").string();
  auto opened = Store::open([&] {
    o.file_system = disk;
    return o;
  }());
  ASSERT_TRUE(opened) << opened.status().to_string();
  auto& store = **opened;
  const std::string payload = R"({"a":1})";
  ASSERT_TRUE(store.put_batch({}, {{"s", 0, 1}}, {}, {{kT0, "s", 0, 0, payload}}).is_ok());
  EXPECT_TRUE(store.writable());

  disk->full = true;
  auto failed = store.put_batch({}, {{"s", 0, 2}}, {}, {{kT0 + 1, "s", 0, 1, payload}});
  EXPECT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.code(), Code::kIoError) << failed.to_string();
  EXPECT_FALSE(store.writable());
  // Still full: refused again, the offset stays where the data is.
  EXPECT_FALSE(store.put_batch({}, {{"s", 0, 2}}, {}, {{kT0 + 1, "s", 0, 1, payload}}).is_ok());
  EXPECT_EQ(store.next_offset("s", 0)->value(), 1);

  disk->full = false;  // room again: a write succeeds once RocksDB resumed
  Status last;
  EXPECT_TRUE(test::wait_for(
      [&] {
        last = store.put_batch({}, {{"s", 0, 2}}, {}, {{kT0 + 1, "s", 0, 1, payload}});
        return last.is_ok();
      },
      std::chrono::seconds(40), std::chrono::milliseconds(200)))
      << last.to_string();
  EXPECT_TRUE(store.writable());
  EXPECT_EQ(store.next_offset("s", 0)->value(), 2);
  EXPECT_EQ(offsets(store, {}), (std::vector<int64_t>{1, 0}));
}

}  // namespace
}  // namespace vigil::store

namespace vigil::store {
namespace {

TEST_F(EventsTest, ScanGoesOldestFirstWithinTheWindowAndStopsWhenAsked) {
  auto store = open();
  fill(*store, 3, 10);
  std::vector<int64_t> seen;
  ASSERT_TRUE(store
                  ->scan_events(kT0 + kHour, kT0 + 2 * kHour + 5,
                                [&](const StoredEvent& e) {
                                  EXPECT_FALSE(e.payload.empty());
                                  EXPECT_EQ(e.stream, "c/events");
                                  seen.push_back(e.offset);
                                  return true;
                                })
                  .is_ok());
  std::vector<int64_t> want;
  for (int64_t o = 10; o < 25; ++o) want.push_back(o);
  EXPECT_EQ(seen, want);
  seen.clear();
  ASSERT_TRUE(store
                  ->scan_events(INT64_MIN, INT64_MAX,
                                [&](const StoredEvent& e) {
                                  seen.push_back(e.offset);
                                  return seen.size() < 4;
                                })
                  .is_ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(EventsTest, MetaRecordsArePutReadAndScannedBothWays) {
  auto store = open();
  ASSERT_TRUE(store
                  ->put_meta({{"content/a/1", "x"},
                              {"content/a/2", "y"},
                              {"content/a/3", "z"},
                              {"content/b", "w"}})
                  .is_ok());
  auto v = store->get_meta("content/a/2");
  ASSERT_TRUE(v && *v);
  EXPECT_EQ(**v, "y");
  auto none = store->get_meta("content/none");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto fwd = store->scan_meta("content/a/");
  ASSERT_TRUE(fwd);
  ASSERT_EQ(fwd->size(), 3u);
  EXPECT_EQ((*fwd)[0].second, "x");
  auto last = store->scan_meta("content/a/", 1, true);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ(last->front().first, "content/a/3");
  ASSERT_TRUE(store->put_meta({}, {"content/a/3"}).is_ok());
  last = store->scan_meta("content/a/", 1, true);
  EXPECT_EQ(last->front().first, "content/a/2");
  // Offsets share the cf and never show under content/.
  ASSERT_TRUE(store->put_batch({}, {{"c/events", 0, 5}}).is_ok());
  auto all = store->scan_meta("content/");
  EXPECT_EQ(all->size(), 3u);
}

// Events of two streams and four partitions, times out of offset order, written in batches of
// varying size: every hunt, scan and lookup returns each event once, in time order.
struct Written {
  TimeMs time;
  std::string stream;
  int32_t partition;
  int64_t offset;
  std::string payload;
};

std::vector<Written> make_events(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Written> out;
  std::map<std::pair<std::string, int32_t>, int64_t> next;
  for (size_t i = 0; i < n; ++i) {
    std::string stream = rng() % 3 == 0 ? "c/b" : "c/a";
    const auto partition = static_cast<int32_t>(rng() % 4);
    const int64_t offset = next[{stream, partition}]++;
    const TimeMs time = kT0 + static_cast<TimeMs>(rng() % 2000);
    out.push_back({time, stream, partition, offset,
                   R"({"n":)" + std::to_string(i) + R"(,"s":")" + stream + R"(","pad":")" +
                       std::string(rng() % 300, 'p') + "\"}"});
  }
  return out;
}

void write_in_batches(Store& store, const std::vector<Written>& events, uint32_t seed) {
  std::mt19937 rng(seed);
  for (size_t i = 0; i < events.size();) {
    const size_t n = std::min<size_t>(events.size() - i, 1 + rng() % 400);
    std::vector<EventRecord> batch;
    for (size_t j = i; j < i + n; ++j) {
      batch.push_back({events[j].time, events[j].stream, events[j].partition, events[j].offset,
                       events[j].payload});
    }
    ASSERT_TRUE(store.put_batch({}, {}, {}, batch).is_ok());
    i += n;
  }
}

using Id = std::tuple<std::string, int32_t, int64_t>;

TEST_F(EventsTest, BlocksComeBackOnceInTimeOrderThroughHuntsScansAndLookups) {
  auto store = open();
  const auto events = make_events(3000, 7);
  write_in_batches(*store, events, 11);
  std::multiset<Id> want;
  for (const auto& e : events) want.insert({e.stream, e.partition, e.offset});

  // Newest first over every window, in pages that end mid-window.
  EventQuery all;
  all.limit = 37;
  std::multiset<Id> got;
  TimeMs prev = INT64_MAX;
  size_t pages = 0;
  for (; pages < 1000; ++pages) {
    auto p = store->query_events(all);
    ASSERT_TRUE(p) << p.status().to_string();
    for (const auto& e : p->events) {
      EXPECT_LE(e.time, prev);
      prev = e.time;
      got.insert({e.stream, e.partition, e.offset});
    }
    if (p->next_cursor.empty()) break;
    all.cursor = p->next_cursor;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(pages, 3000u / 37);

  // A range that cuts windows, through a hunt and through a scan.
  const TimeMs since = kT0 + 150, until = kT0 + 1234;
  std::multiset<Id> in_range;
  for (const auto& e : events) {
    if (e.time >= since && e.time < until) in_range.insert({e.stream, e.partition, e.offset});
  }
  EventQuery range;
  range.since = since;
  range.until = until;
  range.limit = 1000;
  got.clear();
  for (int page = 0; page < 100; ++page) {
    auto p = store->query_events(range);
    ASSERT_TRUE(p);
    for (const auto& e : p->events) got.insert({e.stream, e.partition, e.offset});
    if (p->next_cursor.empty()) break;
    range.cursor = p->next_cursor;
  }
  EXPECT_EQ(got, in_range);
  got.clear();
  prev = INT64_MIN;
  ASSERT_TRUE(store
                  ->scan_events(since, until,
                                [&](const StoredEvent& e) {
                                  EXPECT_GE(e.time, prev);
                                  prev = e.time;
                                  got.insert({e.stream, e.partition, e.offset});
                                  return true;
                                })
                  .is_ok());
  EXPECT_EQ(got, in_range);

  // Every event by its coordinates; the wrong time or stream finds nothing.
  for (const auto& e : events) {
    auto one = store->get_event(e.stream, e.partition, e.offset, e.time);
    ASSERT_TRUE(one) << one.status().to_string();
    ASSERT_TRUE(one->has_value()) << e.stream << " " << e.partition << " " << e.offset;
    EXPECT_EQ((*one)->payload, e.payload);
  }
  EXPECT_FALSE(store->get_event("c/a", 0, 0, events[0].time + 5000)->has_value());
  EXPECT_FALSE(store->get_event("c/none", 0, 0, events[0].time)->has_value());

  auto report = store->verify();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->events, 3000u);
  EXPECT_EQ(report->undecodable, 0u);
}

TEST_F(EventsTest, AReplayCutIntoOtherBatchesAddsNoDuplicate) {
  auto store = open();
  const auto events = make_events(2000, 3);
  write_in_batches(*store, events, 1);
  // A restart before the offsets were stored replays the tail, cut differently.
  write_in_batches(*store, std::vector<Written>(events.begin() + 700, events.end()), 99);
  EventQuery all;
  all.limit = 2500;
  auto p = store->query_events(all);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->events.size(), 2000u);
  EXPECT_TRUE(p->next_cursor.empty());
  size_t scanned = 0;
  ASSERT_TRUE(
      store->scan_events(INT64_MIN, INT64_MAX, [&](const StoredEvent&) { return ++scanned, true; })
          .is_ok());
  EXPECT_EQ(scanned, 2000u);
  for (size_t i = 0; i < events.size(); i += 7) {
    auto one =
        store->get_event(events[i].stream, events[i].partition, events[i].offset, events[i].time);
    ASSERT_TRUE(one && one->has_value()) << i;
    EXPECT_EQ((*one)->payload, events[i].payload);
  }
}

TEST_F(EventsTest, ABatchOfOnePartitionAndWindowIsSplitIntoBoundedBlocks) {
  auto store = open();
  std::vector<std::string> payloads;
  for (int i = 0; i < 40; ++i)
    payloads.push_back(R"({"i":)" + std::to_string(i) + R"(,"pad":")" + std::string(20000, 'q') +
                       "\"}");
  std::vector<EventRecord> batch;
  for (int i = 0; i < 40; ++i)
    batch.push_back({kT0 + 10 + (i % 50), "s", 0, 100 + i, payloads[static_cast<size_t>(i)]});
  ASSERT_TRUE(store->put_batch({}, {}, {}, batch).is_ok());
  for (int i = 0; i < 40; ++i) {
    auto one = store->get_event("s", 0, 100 + i, kT0 + 10 + (i % 50));
    ASSERT_TRUE(one && one->has_value()) << i;
    EXPECT_EQ((*one)->payload, payloads[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(offsets(*store, {}).size(), 40u);
}

TEST_F(EventsTest, AFormat2StoreKeepsItsEventsReadableBesideNewBlocks) {
  // A store as format 2 wrote it: one record per event.
  with_raw_db(
      [](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* meta, rocksdb::ColumnFamilyHandle* events) {
        ASSERT_TRUE(db.Put({}, meta, "format", "vigil-store-2").ok());
        for (int64_t off : {0, 1, 2}) {
          std::string key, value;
          encoding::event_key(key, kT0 + off * 40, "c/events", 0, off);
          encoding::put_u16(value, 8);
          value += "c/events";
          value += R"({"old":)" + std::to_string(off) + "}";
          ASSERT_TRUE(db.Put({}, events, key, value).ok());
        }
      });
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(**store->get_meta("format"), "vigil-store-3");
  const std::string payload = R"({"new":3})";
  ASSERT_TRUE(store
                  ->put_batch({}, {}, {},
                              {{kT0 + 30, "c/events", 0, 3, payload},
                               {kT0 + 130, "c/events", 0, 4, payload}})
                  .is_ok());
  // Times 0, 40, 80 (old), 30, 130 (new): newest first 4, 2, 1, 3, 0.
  EventQuery q;
  q.limit = 2;
  EXPECT_EQ(offsets(*store, q), (std::vector<int64_t>{4, 2, 1, 3, 0}));
  auto old = store->get_event("c/events", 0, 1, kT0 + 40);
  ASSERT_TRUE(old && old->has_value());
  EXPECT_EQ((*old)->payload, R"({"old":1})");
  std::vector<int64_t> scanned;
  ASSERT_TRUE(
      store
          ->scan_events(kT0, kT0 + 1000,
                        [&](const StoredEvent& e) { return scanned.push_back(e.offset), true; })
          .is_ok());
  EXPECT_EQ(scanned, (std::vector<int64_t>{0, 3, 1, 2, 4}));
  EXPECT_EQ(store->verify()->events, 5u);
}

TEST_F(EventsTest, ADamagedEventRecordIsReportedNotServed) {
  { auto store = open(); }
  with_raw_db(
      [](rocksdb::DB& db, rocksdb::ColumnFamilyHandle*, rocksdb::ColumnFamilyHandle* events) {
        std::string key = encoding::time_prefix(kT0);
        key += std::string(17, '\x01');  // a block key whose value is no block
        ASSERT_TRUE(db.Put({}, events, key, "\xB1garbage").ok());
        ASSERT_TRUE(db.Put({}, events, "abc", "short key").ok());
      });
  auto store = open();
  ASSERT_TRUE(store);
  auto page = store->query_events({});
  ASSERT_FALSE(page);
  EXPECT_EQ(page.status().code(), Code::kCorruption) << page.status().to_string();
  EXPECT_EQ(
      store->scan_events(INT64_MIN, INT64_MAX, [](const StoredEvent&) { return true; }).code(),
      Code::kCorruption);
  auto report = store->verify();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->undecodable, 2u);
}

TEST_F(EventsTest, ARetentionBucketMustHoldWholeWindows) {
  StoreOptions o;
  o.path = (tmp_.path() / "data").string();
  o.retention.bucket_ms = 1050;
  auto s = Store::open(o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace vigil::store
