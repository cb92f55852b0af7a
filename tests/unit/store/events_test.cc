// Retained events (hunts, retention by age and size) and the store's behaviour when its disk
// refuses writes.

#include <gtest/gtest.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <filesystem>

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
        payloads.push_back(R"({"host":"h)" + std::to_string(i % 4) + R"(","cmd":"run )" + std::to_string(offset) +
                           R"(","pad":")" + std::string(pad, 'x') + R"("})");
        events.push_back({kT0 + h * kHour + i, "c/events", static_cast<int32_t>(i % 2), offset++, payloads.back()});
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
  auto opened = Store::open([&] { o.file_system = disk; return o; }());
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
  EXPECT_TRUE(test::wait_for([&] {
    last = store.put_batch({}, {{"s", 0, 2}}, {}, {{kT0 + 1, "s", 0, 1, payload}});
    return last.is_ok();
  }, std::chrono::seconds(40), std::chrono::milliseconds(200))) << last.to_string();
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
  ASSERT_TRUE(store->scan_events(kT0 + kHour, kT0 + 2 * kHour + 5, [&](const StoredEvent& e) {
    EXPECT_FALSE(e.payload.empty());
    EXPECT_EQ(e.stream, "c/events");
    seen.push_back(e.offset);
    return true;
  }).is_ok());
  std::vector<int64_t> want;
  for (int64_t o = 10; o < 25; ++o) want.push_back(o);
  EXPECT_EQ(seen, want);
  seen.clear();
  ASSERT_TRUE(store->scan_events(INT64_MIN, INT64_MAX, [&](const StoredEvent& e) {
    seen.push_back(e.offset);
    return seen.size() < 4;
  }).is_ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(EventsTest, MetaRecordsArePutReadAndScannedBothWays) {
  auto store = open();
  ASSERT_TRUE(store->put_meta({{"content/a/1", "x"}, {"content/a/2", "y"}, {"content/a/3", "z"}, {"content/b", "w"}}).is_ok());
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

}  // namespace
}  // namespace vigil::store
