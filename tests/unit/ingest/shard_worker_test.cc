#include "vigil/ingest/shard_worker.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "support/full_disk.h"
#include "support/temp_dir.h"
#include "vigil/ingest/correlation_hit.h"

namespace vigil::ingest {
namespace {

namespace fs = std::filesystem;

constexpr char kMapping[] = R"(
name: test
host_field: host
time_field: ts
logsources:
  - name: all
    match: {category: process_creation}
)";

class ShardWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override { make_worker({}); }
  void make_worker(ShardOptions so, const std::string& mapping_yaml = kMapping) {
    worker_.reset();
    store_.reset();
    auto s = store::Store::open({tmp_ / "data"});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    auto mapping = match::FieldMapping::parse(mapping_yaml, "m.yml");
    ASSERT_TRUE(mapping);
    std::vector<match::SigmaRule> rules;
    for (const char* def :
         {"id: r-a\ntitle: A\ntags: [t.a]\nlevel: high\n", "id: r-b\ntitle: B\nlevel: low\n"}) {
      const std::string token = std::string(def).substr(4, 3);  // r-a / r-b
      auto r = match::parse_sigma(
          std::string(def) +
              "logsource: {category: process_creation}\ndetection:\n  sel:\n    cmd|contains: '" +
              token + "'\n  condition: sel\n",
          "r.yml");
      ASSERT_TRUE(r) << r.status().to_string();
      rules.push_back(*r);
    }
    match::CompileReport report;
    auto rs = match::RuleSet::compile(rules, *mapping, report);
    ASSERT_TRUE(rs);
    so.max_event_bytes = 4096;
    auto w = ShardWorker::create(*rs, *store_, metrics_, clock_, so);
    ASSERT_TRUE(w) << w.status().to_string();
    worker_ = std::move(*w);
    worker_->set_cluster_id("c1");
  }
  // A worker whose rules are r-a (name rule_a) and c-1: three r-a matches from one host
  // within 10 minutes. The store is reopened on the same directory, on `fs` if given.
  void build_correlating(std::shared_ptr<rocksdb::FileSystem> fs = nullptr,
                         const ShardOptions& options = {}) {
    worker_.reset();
    store_.reset();
    store::StoreOptions so;
    so.path = tmp_ / "data";
    so.file_system = std::move(fs);
    auto s = store::Store::open(so);
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    auto m = match::FieldMapping::parse(kMapping, "m.yml");
    ASSERT_TRUE(m);
    std::vector<match::SigmaRule> rules;
    for (const char* def :
         {"title: A\nid: r-a\nname: rule_a\nlevel: low\nlogsource: {category: process_creation}\n"
          "detection:\n  sel:\n    cmd|contains: r-a\n  condition: sel\n",
          "title: Repeated A\nid: c-1\nlevel: high\ncorrelation:\n  type: event_count\n  rules: "
          "[rule_a]\n"
          "  group-by: [host]\n  timespan: 10m\n  condition: {gte: 3}\n  generate: true\n"}) {
      auto r = match::parse_sigma(def, "r.yml");
      ASSERT_TRUE(r) << r.status().to_string();
      rules.push_back(*r);
    }
    match::CompileReport report;
    auto rs = match::RuleSet::compile(rules, *m, report);
    ASSERT_TRUE(rs);
    ASSERT_EQ((*rs)->correlations().size(), 1u);
    auto w = ShardWorker::create(*rs, *store_, metrics_, clock_, options);
    ASSERT_TRUE(w);
    worker_ = std::move(*w);
    worker_->set_cluster_id("c1");
    ASSERT_TRUE(worker_->reload_partition("events", 0).is_ok());
  }
  static std::string correlated_event(int minute, const char* host) {
    return std::string(R"({"cmd":"r-a","host":")") + host + R"(","ts":"2026-11-24T16:)" +
           (minute < 10 ? "0" : "") + std::to_string(minute) + R"(:00Z"})";
  }
  std::vector<std::string> correlation_alerts() {
    store::AlertQuery q;
    q.rule_id = "c-1";
    auto page = store_->query_alerts(q);
    EXPECT_TRUE(page);
    return page ? page->alerts : std::vector<std::string>{};
  }
  void TearDown() override {
    worker_.reset();
    store_.reset();
  }
  test::TempDir tmp_{"worker"};
  std::unique_ptr<store::Store> store_;
  MetricsRegistry metrics_;
  ManualClock clock_{1795539600000};
  std::unique_ptr<ShardWorker> worker_;
};

TEST_F(ShardWorkerTest, PersistsAlertsAndOffsetsAndCountsBadEvents) {
  const std::string big = R"({"cmd":")" + std::string(5000, 'x') + R"("})";
  const std::vector<std::string> payloads = {
      R"({"cmd":"run r-a now","host":"h1","ts":"2026-11-24T16:00:00Z"})",  // 0: rule A, event time
      R"({"cmd":"nothing"})",                                              // 1
      R"({"cmd":"r-a and r-b","host":"h2"})",                              // 2: both rules
      "{not json",                                                         // 3
      "{\"cmd\":\"\xff\"}",                                                // 4
      big,                                                                 // 5
      "[1]",                                                               // 6
  };
  std::vector<MessageView> batch;
  for (size_t i = 0; i < payloads.size(); ++i) {
    batch.push_back({"events", static_cast<int32_t>(i % 2), static_cast<int64_t>(100 + i),
                     1795539000000, payloads[i]});
  }
  auto r = worker_->process(batch);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->events, 7u);
  EXPECT_EQ(r->invalid, 4u);
  EXPECT_EQ(r->alerts, 3u);
  EXPECT_EQ(metrics_.counter_sum("vigil_events_invalid_total", {{"reason", "malformed_json"}}), 1u);
  EXPECT_EQ(metrics_.counter_sum("vigil_events_invalid_total", {{"reason", "invalid_utf8"}}), 1u);
  EXPECT_EQ(metrics_.counter_sum("vigil_events_invalid_total", {{"reason", "too_large"}}), 1u);
  EXPECT_EQ(metrics_.counter_sum("vigil_events_invalid_total", {{"reason", "not_an_object"}}), 1u);
  EXPECT_EQ(metrics_.counter_sum("vigil_alerts_total"), 3u);
  EXPECT_EQ(metrics_.counter_sum("vigil_alerts_by_level_total", {{"level", "high"}}), 2u);  // A
  EXPECT_EQ(metrics_.counter_sum("vigil_alerts_by_level_total", {{"level", "low"}}), 1u);   // B
  EXPECT_EQ(metrics_.counter_sum("vigil_alerts_by_level_total", {{"level", "medium"}}), 0u);
  // Next offsets per partition: partition 0 saw 100,102,104,106; partition 1 saw 101,103,105.
  EXPECT_EQ(store_->next_offset("c1/events", 0)->value(), 107);
  EXPECT_EQ(store_->next_offset("c1/events", 1)->value(), 106);

  auto page = store_->query_alerts({});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->alerts.size(), 3u);
  // Newest first: the two alerts at the Kafka timestamp, then the one at its own event time.
  rapidjson::Document oldest;
  oldest.Parse(page->alerts[2].c_str());
  ASSERT_FALSE(oldest.HasParseError());
  EXPECT_STREQ(oldest["rule"]["id"].GetString(), "r-a");
  EXPECT_STREQ(oldest["rule"]["tags"][0].GetString(), "t.a");
  EXPECT_STREQ(oldest["time"].GetString(), "2026-11-24T16:00:00.000Z");
  EXPECT_STREQ(oldest["host"].GetString(), "h1");
  EXPECT_EQ(oldest["source"]["offset"].GetInt64(), 100);
  EXPECT_STREQ(oldest["source"]["cluster"].GetString(), "c1");
  EXPECT_STREQ(oldest["source"]["topic"].GetString(), "events");
  EXPECT_STREQ(oldest["event"]["cmd"].GetString(), "run r-a now");
  EXPECT_EQ(std::string(oldest["id"].GetString()),
            store::AlertId::derive("c1/events", 0, 100, "r-a").hex());
  // The field that made it match, with its value.
  ASSERT_TRUE(oldest["matched"].IsArray());
  ASSERT_EQ(oldest["matched"].Size(), 1u);
  EXPECT_STREQ(oldest["matched"][0]["field"].GetString(), "cmd");
  EXPECT_STREQ(oldest["matched"][0]["value"].GetString(), "run r-a now");
  EXPECT_FALSE(oldest["matched"][0].HasMember("truncated"));

  // Its summary (what lists show) is the document without matched fields and event.
  std::vector<std::string> summaries;
  ASSERT_TRUE(store_->query_alerts({}, [&](const store::StoredAlert& a) {
    ASSERT_FALSE(a.summary_head.empty());
    summaries.push_back(std::string(a.summary_head) + "}");
  }));
  ASSERT_EQ(summaries.size(), 3u);
  rapidjson::Document summary;
  summary.Parse(summaries[2].c_str());
  ASSERT_FALSE(summary.HasParseError()) << summaries[2];
  EXPECT_STREQ(summary["id"].GetString(), oldest["id"].GetString());
  EXPECT_STREQ(summary["rule"]["id"].GetString(), "r-a");
  EXPECT_EQ(summary["source"]["offset"].GetInt64(), 100);
  EXPECT_FALSE(summary.HasMember("matched"));
  EXPECT_FALSE(summary.HasMember("event"));

  // Replaying the batch (as after a crash before the Kafka commit) adds nothing.
  ASSERT_TRUE(worker_->process(batch));
  EXPECT_EQ(*store_->count_alerts(), 3u);
}

// The scan memo's counts reach the metrics per field (a repeated command line is looked up
// and, from its third sighting, found), and the same alerts are written with it off.
TEST_F(ShardWorkerTest, TheScanMemoCountsLookupsAndHitsPerField) {
  for (const size_t memo : {size_t{0}, size_t{1} << 20}) {
    ShardOptions so;
    so.shard = memo == 0 ? 4 : 5;
    so.memo_bytes = memo;
    make_worker(so);
    std::vector<MessageView> batch;
    const std::string e = R"({"cmd":"C:\\Windows\\r-a.exe","host":"h1"})";
    for (int i = 0; i < 5; ++i) batch.push_back({"events", 0, 100 + i, 1795539000000, e});
    auto r = worker_->process(batch);
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(r->alerts, 5u);
    const Labels labels{{"shard", std::to_string(so.shard)}, {"field", "cmd"}};
    if (memo == 0) {
      EXPECT_EQ(metrics_.counter_value("vigil_match_memo_lookups_total", labels), 0u);
      continue;
    }
    EXPECT_EQ(metrics_.counter_value("vigil_match_memo_lookups_total", labels), 5u);
    EXPECT_EQ(metrics_.counter_value("vigil_match_memo_hits_total", labels), 3u);
    // Counted once: a second batch adds only its own.
    const std::vector<MessageView> one{{"events", 0, 105, 1795539000000, e}};
    ASSERT_TRUE(worker_->process(one));
    EXPECT_EQ(metrics_.counter_value("vigil_match_memo_hits_total", labels), 4u);
  }
}

TEST_F(ShardWorkerTest, LongMatchedValuesAreCutOnACharacterBoundary) {
  // 1,023 bytes of ASCII, then two-byte characters: the cut at 1,024 bytes falls inside one.
  std::string cmd = "r-a " + std::string(1019, 'x');
  for (int i = 0; i < 100; ++i) cmd += "\xc3\xa9";  // é
  const std::string payload = R"({"cmd":")" + cmd + R"("})";
  std::vector<MessageView> batch = {{"events", 0, 1, 1795539000000, payload}};
  auto r = worker_->process(batch);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->alerts, 1u);
  auto page = store_->query_alerts({});
  ASSERT_TRUE(page);
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(page->alerts[0].c_str());
  ASSERT_FALSE(d.HasParseError()) << "not valid UTF-8 JSON";
  const auto& m = d["matched"][0];
  EXPECT_EQ(std::string(m["value"].GetString()), cmd.substr(0, 1023));
  EXPECT_TRUE(m["truncated"].GetBool());
  EXPECT_EQ(std::string(d["event"]["cmd"].GetString()), cmd);  // the event keeps it whole
}

TEST_F(ShardWorkerTest, EventWithInvalidJsonInAnUnreadFieldIsKeptAsString) {
  // simdjson on-demand skips fields it does not need without validating them fully.
  const std::string payload = R"({"cmd":"r-b","junk":[1,2,}})";
  std::vector<MessageView> batch = {{"events", 0, 1, 1795539000000, payload}};
  auto r = worker_->process(batch);
  ASSERT_TRUE(r);
  // The fields the rules need parse, so the event matches; the alert must still be valid
  // JSON, so the event is embedded as a string instead of as an object.
  ASSERT_EQ(r->alerts, 1u);
  EXPECT_EQ(r->invalid, 0u);
  auto page = store_->query_alerts({});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->alerts.size(), 1u);
  rapidjson::Document d;
  d.Parse(page->alerts[0].c_str());
  ASSERT_FALSE(d.HasParseError()) << page->alerts[0];
  EXPECT_FALSE(d.HasMember("event"));
  EXPECT_STREQ(d["event_raw"].GetString(), payload.c_str());
}

TEST_F(ShardWorkerTest, DeadLettersAndAlertsGoToTheOutboxWithTheirBatch) {
  ShardOptions so;
  so.shard = 3;
  so.publish_alerts = true;
  so.dead_letters = true;
  so.dead_letter_unmapped = true;
  so.dead_letter_max_bytes = 8;
  make_worker(so, std::string(kMapping) + "    where: {kind: proc}\n");
  const std::vector<std::string> payloads = {
      R"({"kind":"proc","cmd":"r-a","host":"h1"})",  // alert
      "{not json",                                   // malformed, longer than 8 bytes: truncated
      R"({"kind":"file","cmd":"r-a"})",  // valid, but no logsource of the rule set accepts it
      "[1]",                             // not an object
  };
  std::vector<MessageView> batch;
  for (size_t i = 0; i < payloads.size(); ++i) {
    batch.push_back({"events", 2, static_cast<int64_t>(10 + i),
                     1795539000000 + static_cast<int64_t>(i), payloads[i], "k"});
  }
  auto r = worker_->process(batch);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->alerts, 1u);
  EXPECT_EQ(r->dead_letters, 3u);
  EXPECT_EQ(metrics_.counter_value("vigil_dead_letters_total",
                                   {{"reason", "malformed_json"}, {"shard", "3"}}),
            1u);
  EXPECT_EQ(metrics_.counter_value("vigil_dead_letters_total",
                                   {{"reason", "no_logsource"}, {"shard", "3"}}),
            1u);
  EXPECT_EQ(metrics_.counter_value("vigil_dead_letters_total",
                                   {{"reason", "not_an_object"}, {"shard", "3"}}),
            1u);
  EXPECT_EQ(metrics_.counter_value("vigil_events_consumed_total", {{"shard", "3"}}), 4u);

  auto outbox = store_->read_outbox("", 100);
  ASSERT_TRUE(outbox);
  ASSERT_EQ(outbox->size(), 4u);
  std::map<std::string, const store::OutboxRecord*> by_reason;
  const store::OutboxRecord* alert = nullptr;
  for (const auto& e : *outbox) {
    if (e.record.kind == store::OutboxRecord::Kind::kAlert) {
      alert = &e.record;
      continue;
    }
    std::map<std::string, std::string> h(e.record.headers.begin(), e.record.headers.end());
    EXPECT_EQ(h["vigil.source.cluster"], "c1");
    EXPECT_EQ(h["vigil.source.topic"], "events");
    EXPECT_EQ(h["vigil.source.partition"], "2");
    EXPECT_EQ(e.record.message_key, "k");
    by_reason[h["vigil.reason"]] = &e.record;
    if (h["vigil.reason"] == "malformed_json") {
      EXPECT_EQ(h["vigil.source.offset"], "11");
      EXPECT_EQ(h["vigil.truncated"], "9");
      EXPECT_EQ(e.record.value, "{not jso");
    }
  }
  EXPECT_EQ(by_reason.size(), 3u);
  EXPECT_TRUE(by_reason.count("no_logsource"));
  EXPECT_EQ(by_reason["no_logsource"]->value, R"({"kind":)");  // truncated to 8 bytes
  ASSERT_NE(alert, nullptr);
  EXPECT_EQ(alert->message_key, store::AlertId::derive("c1/events", 2, 10, "r-a").hex());
  rapidjson::Document d;
  d.Parse(alert->value.c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["rule"]["id"].GetString(), "r-a");

  // A replay rewrites the same outbox entries.
  ASSERT_TRUE(worker_->process(batch));
  EXPECT_EQ(store_->read_outbox("", 100)->size(), 4u);
}

// An alert record larger than Kafka takes leaves without its event, marked and counted;
// the stored alert keeps the event whole (issue: alerts silently missing from the topic).
TEST_F(ShardWorkerTest, AnAlertTooLargeForKafkaIsPublishedWithoutItsEvent) {
  ShardOptions so;
  so.shard = 1;
  so.publish_alerts = true;
  so.max_alert_record_bytes = 1000;
  make_worker(so);
  const std::string big = R"({"cmd":"r-a )" + std::string(3000, 'x') + R"(","host":"h1"})";
  const std::string small = R"({"cmd":"r-b","host":"h2"})";
  std::vector<MessageView> batch = {{"events", 0, 1, 1795539000000, big},
                                    {"events", 0, 2, 1795539000001, small}};
  auto r = worker_->process(batch);
  ASSERT_TRUE(r) << r.status().to_string();
  ASSERT_EQ(r->alerts, 2u);
  EXPECT_EQ(metrics_.counter_value("vigil_alert_records_truncated_total", {{"shard", "1"}}), 1u);
  auto outbox = store_->read_outbox("", 10);
  ASSERT_TRUE(outbox);
  ASSERT_EQ(outbox->size(), 2u);
  size_t truncated = 0;
  for (const auto& e : *outbox) {
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(e.record.value.c_str());
    ASSERT_FALSE(d.HasParseError()) << e.record.value;
    EXPECT_LE(e.record.value.size(), so.max_alert_record_bytes);
    std::map<std::string, std::string> h(e.record.headers.begin(), e.record.headers.end());
    if (d.HasMember("event_truncated")) {
      ++truncated;
      EXPECT_TRUE(d["event_truncated"].GetBool());
      EXPECT_EQ(d["event_bytes"].GetUint64(), big.size());
      EXPECT_FALSE(d.HasMember("event"));
      EXPECT_STREQ(d["rule"]["id"].GetString(), "r-a");
      EXPECT_TRUE(h.count("vigil.truncated"));
    } else {
      EXPECT_STREQ(d["event"]["host"].GetString(), "h2");
      EXPECT_FALSE(h.count("vigil.truncated"));
    }
  }
  EXPECT_EQ(truncated, 1u);
  auto stored = store_->get_alert(store::AlertId::derive("c1/events", 0, 1, "r-a"));
  ASSERT_TRUE(stored && *stored) << "the stored alert";
  rapidjson::Document full;
  full.Parse((**stored).c_str());
  ASSERT_FALSE(full.HasParseError());
  EXPECT_EQ(std::string(full["event"]["cmd"].GetString()).size(), 3004u);
}

TEST_F(ShardWorkerTest, WithoutDeadLetterTopicBadEventsAreCountedOnly) {
  std::vector<std::string> payloads = {"{bad", R"({"other":1})"};
  std::vector<MessageView> batch;
  for (size_t i = 0; i < payloads.size(); ++i)
    batch.push_back({"events", 0, static_cast<int64_t>(i), -1, payloads[i]});
  auto r = worker_->process(batch);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dead_letters, 0u);
  EXPECT_EQ(r->invalid, 1u);
  EXPECT_TRUE(store_->read_outbox("", 10)->empty());
  EXPECT_EQ(store_->next_offset("c1/events", 0)->value(), 2);
}

TEST_F(ShardWorkerTest, KeepsEventsAsConfiguredWithTheirAlertsTimeAndLevels) {
  const std::vector<std::string> payloads = {
      R"({"cmd":"run r-a now","host":"h1","ts":"2026-11-24T16:00:00Z"})",  // matched, own time
      R"({"cmd":"nothing","host":"h1"})",                                  // unmatched, Kafka time
      "{not json",                                                         // invalid: never kept
  };
  std::vector<MessageView> batch;
  for (size_t i = 0; i < payloads.size(); ++i)
    batch.push_back({"events", 0, static_cast<int64_t>(i), 1795539000000, payloads[i]});
  for (const auto& [mode, kept] :
       std::vector<std::pair<EventRetention, std::vector<int64_t>>>{{EventRetention::kAll, {1, 0}},
                                                                    {EventRetention::kMatched, {0}},
                                                                    {EventRetention::kNone, {}}}) {
    ShardOptions so;
    so.retain_events = mode;
    fs::remove_all(tmp_ / "data");
    make_worker(so);
    ASSERT_TRUE(worker_->process(batch));
    auto events = store_->query_events({});
    ASSERT_TRUE(events);
    std::vector<int64_t> offsets;
    for (const auto& e : events->events) offsets.push_back(e.offset);
    EXPECT_EQ(offsets, kept) << static_cast<int>(mode);
    if (mode == EventRetention::kAll) {
      // The event sits at the alert's time, so an alert leads to its event.
      EXPECT_EQ(events->events[1].time, *parse_rfc3339("2026-11-24T16:00:00Z"));
      EXPECT_EQ(events->events[1].stream, "c1/events");
      EXPECT_EQ(events->events[0].time, 1795539000000);
      auto e = store_->get_event("c1/events", 0, 0, *parse_rfc3339("2026-11-24T16:00:00Z"));
      ASSERT_TRUE(e && e->has_value());
      EXPECT_EQ((*e)->payload, payloads[0]);
    }
  }
  // Alerts carry the rule's level, title and tags for the store's filters.
  store::AlertQuery q;
  q.levels = 1u << static_cast<unsigned>(store::AlertLevel::kHigh);
  q.tag = "t.a";
  q.text = "a";
  EXPECT_EQ(store_->query_alerts(q)->alerts.size(), 1u);
  q.levels = 1u << static_cast<unsigned>(store::AlertLevel::kLow);
  EXPECT_TRUE(store_->query_alerts(q)->alerts.empty());
}

// Cluster mode: a correlation not grouped by the partition key is fed through the
// repartition topic; its matches leave in the outbox and come back as that topic's messages.
TEST_F(ShardWorkerTest, RepartitionedMatchesLeaveThroughTheOutboxAndCountOnce) {
  ShardOptions so;
  so.repartition_topic = "rp";
  build_correlating(nullptr, so);
  ASSERT_TRUE(worker_->reload_partition("rp", 0).is_ok());
  // Three matches of h1 on two partitions: none is judged here.
  const std::vector<std::string> p = {correlated_event(0, "h1"), correlated_event(1, "h1"),
                                      correlated_event(2, "h1")};
  std::vector<MessageView> events = {
      {"events", 0, 10, -1, p[0]}, {"events", 1, 20, -1, p[1]}, {"events", 0, 11, -1, p[2]}};
  auto r = worker_->process(events);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->correlation_hits, 3u);
  EXPECT_TRUE(correlation_alerts().empty());
  auto outbox = store_->read_outbox("", 100);
  ASSERT_TRUE(outbox);
  std::vector<std::string> records, keys;
  for (const auto& e : *outbox) {
    if (e.record.kind != store::OutboxRecord::Kind::kCorrelationHit) continue;
    records.push_back(e.record.value);
    keys.push_back(e.record.message_key);
  }
  ASSERT_EQ(records.size(), 3u);
  for (const auto& k : keys) EXPECT_EQ(k, std::string("c-1\x1f") + "h1");
  // Back through the topic: the third fires; the same records again (a publisher's repeat)
  // count once; a record that does not parse is counted.
  std::vector<MessageView> hits;
  for (size_t i = 0; i < records.size(); ++i)
    hits.push_back({"rp", 0, static_cast<int64_t>(i), -1, records[i]});
  ASSERT_TRUE(worker_->process(hits));
  EXPECT_EQ(correlation_alerts().size(), 1u);
  hits.clear();
  for (size_t i = 0; i < records.size(); ++i)
    hits.push_back({"rp", 0, static_cast<int64_t>(3 + i), -1, records[i]});
  hits.push_back({"rp", 0, 6, -1, "{nope"});
  build_correlating(nullptr, so);  // a restart between: the seen matches are in the store
  ASSERT_TRUE(worker_->reload_partition("rp", 0).is_ok());
  ASSERT_TRUE(worker_->process(hits));
  EXPECT_EQ(correlation_alerts().size(), 1u);
  EXPECT_EQ(metrics_.counter_sum("vigil_correlation_hits_total", {{"outcome", "observed"}}), 3u);
  EXPECT_EQ(metrics_.counter_sum("vigil_correlation_hits_total", {{"outcome", "duplicate"}}), 3u);
  EXPECT_EQ(metrics_.counter_sum("vigil_correlation_hits_total", {{"outcome", "invalid"}}), 1u);
  EXPECT_EQ(*store_->next_offset("c1/rp", 0), 7);

  // A match dated decades ahead (an event's own time is the sensor's word) is judged like any
  // other, and does not make the matches after it "late".
  CorrelationHitRecord future;
  future.id = store::AlertId::derive("c1/events", 9, 1, "future").hex();
  future.correlation = "c-1";
  future.rule = "r-a";
  future.group = "h9";
  future.time = 4102444800000;  // 2100-01-01
  const std::string future_record = encode_correlation_hit(future);
  hits = {{"rp", 0, 7, -1, future_record}};
  ASSERT_TRUE(worker_->process(hits));
  for (int minute = 0; minute < 3; ++minute) {
    CorrelationHitRecord h = future;
    h.id = store::AlertId::derive("c1/events", 9, 10 + minute, "now").hex();
    h.group = "h3";
    h.time = 1795536000000 + minute * 60000;  // 2026-11-24T16:0m, before the clock
    const std::string record = encode_correlation_hit(h);
    std::vector<MessageView> one = {{"rp", 0, 8 + minute, -1, record}};
    ASSERT_TRUE(worker_->process(one));
  }
  EXPECT_EQ(metrics_.counter_sum("vigil_correlation_hits_total", {{"outcome", "late"}}), 0u);
  EXPECT_EQ(correlation_alerts().size(), 2u);  // h1's and h3's

  // Grouped by the partition key (host): the local path, nothing queued.
  so.partition_key_fields = {"host"};
  build_correlating(nullptr, so);
  const std::vector<std::string> q = {correlated_event(3, "h2"), correlated_event(4, "h2"),
                                      correlated_event(5, "h2")};
  events = {{"events", 2, 0, -1, q[0]}, {"events", 2, 1, -1, q[1]}, {"events", 2, 2, -1, q[2]}};
  ASSERT_TRUE(worker_->reload_partition("events", 2).is_ok());
  r = worker_->process(events);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->correlation_hits, 0u);
  EXPECT_EQ(correlation_alerts().size(), 3u);
}

TEST_F(ShardWorkerTest, CorrelationWindowsPersistWithTheirBatchAndSurviveARestart) {
  // Three matches of rule r-a from one host within 10 minutes make a correlation alert.
  auto build = [&] { build_correlating(); };
  auto ev = correlated_event;
  const std::vector<std::string> p = {ev(0, "h1"), ev(1, "h1"), ev(2, "h2"), ev(3, "h1"),
                                      ev(4, "h1")};
  auto batch = [&](size_t from, size_t to) {
    std::vector<MessageView> b;
    for (size_t i = from; i < to; ++i)
      b.push_back({"events", 0, static_cast<int64_t>(i), -1, p[i]});
    return b;
  };

  build();
  ASSERT_TRUE(worker_->process(batch(0, 3)));  // h1 twice, h2 once: no correlation yet
  EXPECT_TRUE(correlation_alerts().empty());

  build();  // a restart: the windows come back from the store with the partition
  ASSERT_TRUE(
      worker_->process(batch(3, 5)));  // h1's third match completes it; the fourth starts anew
  auto alerts = correlation_alerts();
  ASSERT_EQ(alerts.size(), 1u);
  rapidjson::Document d;
  d.Parse(alerts[0].c_str());
  ASSERT_FALSE(d.HasParseError()) << alerts[0];
  EXPECT_STREQ(d["rule"]["correlation"].GetString(), "event_count");
  EXPECT_STREQ(d["group"]["host"].GetString(), "h1");
  EXPECT_EQ(d["value"].GetInt(), 3);
  EXPECT_EQ(d["base_alerts"].Size(), 3u);
  EXPECT_STREQ(d["first"].GetString(), "2026-11-24T16:00:00.000Z");
  EXPECT_STREQ(d["last"].GetString(), "2026-11-24T16:03:00.000Z");
  EXPECT_EQ(d["source"]["offset"].GetInt(), 3);

  // The state is written with the offsets, so a restart never replays what it counted; a
  // replay of the whole partition from nothing (another store) gives the same alert id.
  const std::string id = d["id"].GetString();
  worker_.reset();
  store_.reset();
  fs::remove_all(tmp_ / "data");
  build();
  ASSERT_TRUE(worker_->process(batch(0, 5)));
  alerts = correlation_alerts();
  ASSERT_EQ(alerts.size(), 1u);
  d.Parse(alerts[0].c_str());
  EXPECT_EQ(d["id"].GetString(), id);
}

TEST_F(ShardWorkerTest, AFailedWriteLeavesCorrelationWindowsAsBeforeTheBatch) {
  // The batch that completes a correlation fails to persist (disk full) and is processed
  // again, as the pipeline does: its matches count once, the correlation fires once.
  auto disk = std::make_shared<test::FullDisk>(rocksdb::FileSystem::Default());
  build_correlating(disk);
  const std::vector<std::string> p = {correlated_event(0, "h1"), correlated_event(1, "h1"),
                                      correlated_event(2, "h1"), correlated_event(3, "h1"),
                                      correlated_event(4, "h1")};
  auto batch = [&](size_t from, size_t to) {
    std::vector<MessageView> b;
    for (size_t i = from; i < to; ++i)
      b.push_back({"events", 0, static_cast<int64_t>(i), -1, p[i]});
    return b;
  };
  ASSERT_TRUE(worker_->process(batch(0, 2)));
  disk->full = true;
  for (int attempt = 0; attempt < 3; ++attempt) EXPECT_FALSE(worker_->process(batch(2, 4)));
  disk->full = false;
  bool done = false;
  for (int attempt = 0; attempt < 200 && !done; ++attempt) {
    done = static_cast<bool>(worker_->process(batch(2, 4)));
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(done);
  auto alerts = correlation_alerts();
  ASSERT_EQ(alerts.size(), 1u);
  rapidjson::Document d;
  d.Parse(alerts[0].c_str());
  EXPECT_EQ(d["value"].GetInt(), 3);
  EXPECT_EQ(d["source"]["offset"].GetInt(), 2);
  EXPECT_STREQ(d["last"].GetString(), "2026-11-24T16:02:00.000Z");

  // The window that started after the alert holds the fourth match only: two more make a
  // second alert, one more does not.
  ASSERT_TRUE(worker_->process(batch(4, 5)));
  EXPECT_EQ(correlation_alerts().size(), 1u);
  build_correlating();  // and so does the store, across a restart
  const std::string more[] = {correlated_event(5, "h1")};
  ASSERT_TRUE(worker_->process(std::vector<MessageView>{{"events", 0, 5, -1, more[0]}}));
  EXPECT_EQ(correlation_alerts().size(), 2u);
}

}  // namespace
}  // namespace vigil::ingest

namespace vigil::ingest {
namespace {

TEST(CorrelationHitTest, ReadsBackWhatItWritesAndRefusesWhatIsNotOne) {
  CorrelationHitRecord h;
  h.id = store::AlertId::derive("c/events", 1, 2, "x").hex();
  h.correlation = "c-1";
  h.rule = "r-a";
  h.base = 2;
  h.group = std::string("alice\x1f") + "10.0.0.1\x1f" + "\xc3\xa9";
  h.value = "v \"q\"";
  h.time = -5;
  h.ref = "ref";
  auto back = decode_correlation_hit(encode_correlation_hit(h));
  ASSERT_TRUE(back) << back.status().to_string();
  EXPECT_EQ(back->id, h.id);
  EXPECT_EQ(back->group, h.group);
  EXPECT_EQ(back->value, h.value);
  EXPECT_EQ(back->time, h.time);
  EXPECT_EQ(back->base, 2u);
  EXPECT_EQ(back->ref, h.ref);
  EXPECT_EQ(correlation_hit_key("c-1", "alice"), std::string("c-1\x1f") + "alice");
  const std::string good = encode_correlation_hit(h);
  auto without = [&](const std::string& key) {
    std::string s = good;
    const size_t at = s.find("\"" + key + "\":");
    const size_t end = s.find(",\"", at + 1);
    return s.erase(at, end - at + 1);
  };
  for (const std::string& bad :
       {std::string("{"), std::string("[]"), std::string("null"), without("id"),
        without("correlation"), without("rule"), without("base"), without("time"), without("group"),
        std::string(R"({"v":2})"),
        good.substr(0, good.find("\"group\"")) + R"("group":[],"time":1})",
        good.substr(0, good.find("\"group\"")) + R"("group":[1],"time":1})"}) {
    EXPECT_FALSE(decode_correlation_hit(bad)) << bad;
  }
}

}  // namespace
}  // namespace vigil::ingest
