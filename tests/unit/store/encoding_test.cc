// The store's key and value encodings: round trips, and key order equal to the order the
// queries need (time first, chronological, negative times before positive ones).

#include "encoding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <random>

namespace vigil::store::encoding {
namespace {

TEST(Encoding, IntegersAreBigEndianAndRoundTrip) {
  std::string s;
  put_u64(s, 0x0102030405060708ULL);
  put_u32(s, 0x090a0b0cU);
  put_u16(s, 0x0d0e);
  ASSERT_EQ(s.size(), 14u);
  EXPECT_EQ(s[0], 0x01);
  EXPECT_EQ(s[7], 0x08);
  EXPECT_EQ(get_u64(s.data()), 0x0102030405060708ULL);
  EXPECT_EQ(get_u32(s.data() + 8), 0x090a0b0cU);
  EXPECT_EQ(get_u16(s.data() + 12), 0x0d0e);
}

TEST(Encoding, TimeKeysSortChronologicallyAndRoundTrip) {
  std::vector<TimeMs> times = {LLONG_MIN, -86400000, -1, 0, 1, 1795539600000, LLONG_MAX};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; ++i) times.push_back(static_cast<TimeMs>(rng()));
  std::vector<std::string> keys;
  for (TimeMs t : times) {
    keys.push_back(time_prefix(t));
    EXPECT_EQ(time_from_key(keys.back().data()), t);
  }
  std::vector<size_t> by_key(times.size()), by_time(times.size());
  for (size_t i = 0; i < times.size(); ++i) by_key[i] = by_time[i] = i;
  std::sort(by_key.begin(), by_key.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::sort(by_time.begin(), by_time.end(),
            [&](size_t a, size_t b) { return times[a] < times[b]; });
  for (size_t i = 0; i < times.size(); ++i) EXPECT_EQ(times[by_key[i]], times[by_time[i]]);
}

TEST(Encoding, AlertKeysOrderByTimeThenId) {
  const AlertId a = AlertId::derive("c/t", 0, 1, "r"), b = AlertId::derive("c/t", 0, 2, "r");
  const std::string early_a = alert_key(-5, a), late_a = alert_key(10, a),
                    late_b = alert_key(10, b);
  ASSERT_EQ(early_a.size(), 24u);
  EXPECT_LT(early_a, late_a);
  EXPECT_EQ(late_a < late_b, std::memcmp(a.bytes, b.bytes, 16) < 0);
  EXPECT_EQ(time_from_key(late_b.data()), 10);
  EXPECT_EQ(std::memcmp(late_b.data() + 8, b.bytes, 16), 0);
  EXPECT_EQ(late_a.compare(0, 8, time_prefix(10)), 0);  // a time prefix seeks to its alerts
}

TEST(Encoding, EventKeysOrderByTimeStreamPartitionOffset) {
  std::string k1, k2, k3, k4;
  event_key(k1, 100, "c/t", 3, 9);
  event_key(k2, 100, "c/t", 3, 10);
  event_key(k3, 100, "c/t", 4, 0);
  event_key(k4, 101, "c/t", 0, 0);
  ASSERT_EQ(k1.size(), kEventKeySize);
  EXPECT_LT(k1, k2);
  EXPECT_LT(k2, k3);
  EXPECT_LT(k3, k4);
  EXPECT_EQ(time_from_key(k1.data()), 100);
  EXPECT_EQ(get_u32(k1.data() + 8), stream_hash("c/t"));
  EXPECT_EQ(get_u32(k1.data() + 12), 3u);
  EXPECT_EQ(get_u64(k1.data() + 16), 9u);
  EXPECT_NE(stream_hash("c/t"), stream_hash("c/u"));
}

TEST(Encoding, AlertValuesRoundTripWithTheirTags) {
  const std::vector<std::string> tags = {"attack.t1059", "", "attack.execution"};
  const std::string title = "Encoded PowerShell";
  AlertRecord a;
  a.rule_id = "r-1";
  a.host = "WS-0001";
  a.level = AlertLevel::kHigh;
  a.title = title;
  a.tags = tags;
  a.json = R"({"rule":"r-1"})";
  std::string v;
  encode_alert_value(v, a);
  AlertValue out;
  ASSERT_TRUE(decode_alert_value(v, out));
  EXPECT_TRUE(out.has_header);
  EXPECT_EQ(out.level, AlertLevel::kHigh);
  EXPECT_EQ(out.rule_id, "r-1");
  EXPECT_EQ(out.host, "WS-0001");
  EXPECT_EQ(out.title, title);
  EXPECT_EQ(out.json, a.json);
  std::vector<std::string> seen;
  EXPECT_FALSE(any_tag(out.tags, [&](std::string_view t) {
    seen.emplace_back(t);
    return false;
  }));
  EXPECT_EQ(seen, tags);
  EXPECT_TRUE(any_tag(out.tags, [](std::string_view t) { return t == "attack.execution"; }));
}

TEST(Encoding, LongStringsAreCutAndFormatOneValuesStillRead) {
  const std::string title(70000, 't');
  AlertRecord a;
  a.title = title;
  a.json = "{}";
  std::string v;
  encode_alert_value(v, a);
  AlertValue out;
  ASSERT_TRUE(decode_alert_value(v, out));
  EXPECT_EQ(out.title.size(), 65535u);
  EXPECT_EQ(out.json, "{}");
  ASSERT_TRUE(decode_alert_value(R"({"format":1})", out));
  EXPECT_FALSE(out.has_header);
  EXPECT_EQ(out.json, R"({"format":1})");
}

TEST(Encoding, TruncatedOrForeignValuesAreRefusedNotRead) {
  AlertRecord a;
  a.rule_id = "rule";
  a.host = "host";
  a.json = "{}";
  const std::vector<std::string> tags = {"x", "y"};
  a.tags = tags;
  std::string v;
  encode_alert_value(v, a);
  AlertValue out;
  // Every cut inside the header fails cleanly.
  const size_t header = v.size() - a.json.size();
  for (size_t n = 0; n < header; ++n)
    EXPECT_FALSE(decode_alert_value(std::string_view(v).substr(0, n), out)) << n;
  EXPECT_FALSE(decode_alert_value(std::string("\x03", 1) + v.substr(1), out));  // unknown version
  std::string bad_level = v;
  bad_level[1] = 9;
  EXPECT_FALSE(decode_alert_value(bad_level, out));
  EXPECT_FALSE(any_tag(std::string_view("\x00\x05\x00", 3), [](std::string_view) { return true; }));
}

TEST(Encoding, AlertSummariesAreAPrefixOfTheDocument) {
  AlertRecord a;
  a.rule_id = "r";
  a.json = R"({"id":"a","host":"h","matched":[],"event":{"x":1}})";
  a.summary_size = a.json.find(R"(,"matched")");
  std::string v;
  encode_alert_value(v, a);
  AlertValue out;
  ASSERT_TRUE(decode_alert_value(v, out));
  EXPECT_EQ(out.json, a.json);
  EXPECT_EQ(std::string(out.summary_head) + "}", R"({"id":"a","host":"h"})");

  // Without a summary (0, or a size that is not a proper prefix): none is stored.
  for (size_t size : {size_t{0}, size_t{1}, a.json.size(), a.json.size() + 5}) {
    a.summary_size = size;
    encode_alert_value(v, a);
    ASSERT_TRUE(decode_alert_value(v, out)) << size;
    EXPECT_TRUE(out.summary_head.empty()) << size;
    EXPECT_EQ(out.json, a.json);
  }

  // A stored size past the document is refused, not served.
  a.summary_size = 10;
  encode_alert_value(v, a);
  std::string bad = v;
  const size_t at = v.size() - a.json.size() - 4;
  bad[at] = bad[at + 1] = bad[at + 2] = bad[at + 3] = '\x7f';
  EXPECT_FALSE(decode_alert_value(bad, out));

  // Values written before summaries (version 0x01: no size field) still read, whole.
  std::string v1;
  v1 += '\x01';
  v1 += static_cast<char>(AlertLevel::kLow);
  for (const char* s : {"r", "h", "t"}) {
    v1 += '\0';
    v1 += static_cast<char>(std::strlen(s));
    v1 += s;
  }
  v1 += std::string("\0\0", 2);  // no tags
  v1 += R"({"old":true})";
  ASSERT_TRUE(decode_alert_value(v1, out));
  EXPECT_EQ(out.level, AlertLevel::kLow);
  EXPECT_EQ(out.title, "t");
  EXPECT_EQ(out.json, R"({"old":true})");
  EXPECT_TRUE(out.summary_head.empty());
}

TEST(Encoding, HexRoundTripsAndRefusesNonHex) {
  const std::string bytes("\x00\x01\xab\xff", 4);
  EXPECT_EQ(to_hex(bytes), "0001abff");
  EXPECT_EQ(from_hex("0001abff"), bytes);
  EXPECT_EQ(from_hex("0001ABFF"), bytes);
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
  const AlertId id = AlertId::derive("c/t", 1, 2, "r");
  auto back = AlertId::from_hex(id.hex());
  ASSERT_TRUE(back);
  EXPECT_EQ(std::memcmp(back->bytes, id.bytes, 16), 0);
}

TEST(Encoding, EventBlocksRoundTripAndSortWithTheirWindow) {
  const std::string p1 = R"({"a":1})", p2 = "", p3 = std::string(70000, 'x');
  const std::vector<EventRecord> recs = {{1795539600007, "c/events", 3, 40, p1},
                                         {1795539600099, "c/events", 3, 41, p2},
                                         {1795539600000, "c/events", 3, 45, p3}};
  const EventRecord* ptrs[] = {&recs[0], &recs[1], &recs[2]};
  std::string key, value;
  encode_event_block(key, value, 1795539600000, "c/events", 3, ptrs, 3);
  ASSERT_EQ(key.size(), kEventBlockKeySize);
  EXPECT_EQ(time_from_key(key.data()), 1795539600000);
  std::vector<EventEntry> out;
  ASSERT_TRUE(decode_events_record(key, value, out));
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].time, recs[i].time);
    EXPECT_EQ(out[i].offset, recs[i].offset);
    EXPECT_EQ(out[i].partition, 3);
    EXPECT_EQ(out[i].stream, "c/events");
    EXPECT_EQ(out[i].payload, recs[i].payload);
    EXPECT_EQ(out[i].hash, stream_hash("c/events"));
  }
  // A block sorts after the window's format-2 records of its first millisecond with a lower
  // stream hash, and before every record of the next window.
  std::string next;
  event_key(next, 1795539600100, "c/events", 0, 0);
  EXPECT_LT(key, next);
  // A cursor is a format-2 key: positions round-trip through it.
  auto pos = decode_position(encode_position(out[1]));
  ASSERT_TRUE(pos);
  EXPECT_EQ(pos->position(), out[1].position());
  EXPECT_FALSE(decode_position("short"));
}

TEST(Encoding, DamagedEventBlocksAreRefusedNotRead) {
  const std::string p1 = R"({"a":1})", p2 = R"({"b":2})";
  const std::vector<EventRecord> recs = {{1000, "s", 0, 1, p1}, {1050, "s", 0, 2, p2}};
  const EventRecord* ptrs[] = {&recs[0], &recs[1]};
  std::string key, value;
  encode_event_block(key, value, 1000, "s", 0, ptrs, 2);
  std::vector<EventEntry> out;
  // Every truncation, and one byte more, is refused and appends nothing.
  for (size_t n = 0; n < value.size(); ++n) {
    EXPECT_FALSE(decode_events_record(key, std::string_view(value).substr(0, n), out)) << n;
  }
  EXPECT_FALSE(decode_events_record(key, value + "x", out));
  EXPECT_FALSE(decode_events_record(key.substr(0, 20), value, out));
  std::string other_version = value;
  other_version[0] = 'B';
  EXPECT_FALSE(decode_events_record(key, other_version, out));
  // An entry whose time lies outside the key's window.
  std::string moved = key;
  moved.replace(0, 8, time_prefix(1100));
  EXPECT_FALSE(decode_events_record(moved, value, out));
  // A count that claims more entries than the value holds.
  std::string count = value;
  count[1 + 2 + 1 + 3] = 0x7f;
  EXPECT_FALSE(decode_events_record(key, count, out));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(decode_events_record(key, value, out));
  EXPECT_EQ(out.size(), 2u);
}

}  // namespace
}  // namespace vigil::store::encoding
