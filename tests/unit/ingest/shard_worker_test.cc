#include "vigil/ingest/shard_worker.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "support/temp_dir.h"

#include <filesystem>
#include <random>

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
  void SetUp() override {
    auto s = store::Store::open({tmp_ / "data"});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    auto mapping = match::FieldMapping::parse(kMapping, "m.yml");
    ASSERT_TRUE(mapping);
    std::vector<match::SigmaRule> rules;
    for (const char* def : {"id: r-a\ntitle: A\ntags: [t.a]\nlevel: high\n", "id: r-b\ntitle: B\nlevel: low\n"}) {
      const std::string token = std::string(def).substr(4, 3);  // r-a / r-b
      auto r = match::parse_sigma(std::string(def) + "logsource: {category: process_creation}\ndetection:\n  sel:\n    cmd|contains: '" +
                                      token + "'\n  condition: sel\n",
                                  "r.yml");
      ASSERT_TRUE(r) << r.status().to_string();
      rules.push_back(*r);
    }
    match::CompileReport report;
    auto rs = match::RuleSet::compile(rules, *mapping, report);
    ASSERT_TRUE(rs);
    ShardOptions so;
    so.max_event_bytes = 4096;
    auto w = ShardWorker::create(*rs, *store_, metrics_, clock_, so);
    ASSERT_TRUE(w) << w.status().to_string();
    worker_ = std::move(*w);
    worker_->set_cluster_id("c1");
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
    batch.push_back({"events", static_cast<int32_t>(i % 2), static_cast<int64_t>(100 + i), 1795539000000, payloads[i]});
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
  EXPECT_EQ(std::string(oldest["id"].GetString()), store::AlertId::derive("c1/events", 0, 100, "r-a").hex());

  // Replaying the batch (as after a crash before the Kafka commit) adds nothing.
  ASSERT_TRUE(worker_->process(batch));
  EXPECT_EQ(*store_->count_alerts(), 3u);
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

}  // namespace
}  // namespace vigil::ingest
