// The alert mirror (cluster mode) against a real Kafka protocol peer (librdkafka's mock
// cluster): every replica's alerts from the alerts topic land in this store once, under the
// keys their replica used, across restarts; a replica's own alerts are left as they are;
// records in another format or that do not parse are skipped with a counter.

#include "vigil/ingest/alert_mirror.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"
#include "vigil/core/time.h"
#include "vigil/ingest/embedded_kafka.h"

namespace vigil::ingest {
namespace {

using namespace std::chrono_literals;

constexpr TimeMs kT0 = 1795539600000;

// A vigil alert document as a shard worker writes it (ingest/src/shard_worker.cc).
std::string alert_doc(const store::AlertId& id, TimeMs time, const std::string& rule,
                      const std::string& host, bool truncated = false) {
  std::string d =
      R"({"id":")" + id.hex() + R"(","time":")" + format_rfc3339(time) + R"(","detected_at":")" +
      format_rfc3339(time + 5) + R"(","rule":{"id":")" + rule + R"(","title":"Title of )" + rule +
      R"(","level":"high","tags":["attack.execution","attack.t1059"]},"bundle":3,"host":")" + host +
      R"(","source":{"cluster":"c","topic":"vigil.events","partition":1,"offset":7})";
  if (truncated) return d + R"(,"matched":[],"event_truncated":true,"event_bytes":2000000})";
  return d +
         R"(,"matched":[{"field":"CommandLine","value":"x \"matched\": y"}],"event":{"CommandLine":"x"}})";
}

void produce(const std::string& brokers, const std::string& value,
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size());
  for (const auto& [k, v] : headers)
    rd_kafka_header_add(h, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                        static_cast<ssize_t>(v.size()));
  ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("vigil.alerts"),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

bool wait_until(const std::function<bool()>& f) {
  for (int i = 0; i < 200; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

// The store's alert list as an analyst sees it (summaries, newest first).
std::vector<std::string> summaries(const store::Store& st) {
  std::vector<std::string> out;
  store::AlertQuery q;
  q.limit = 1000;
  auto page = st.query_alerts(q, [&](const store::StoredAlert& a) {
    out.push_back(a.summary_head.empty() ? std::string(a.json) : std::string(a.summary_head) + "}");
  });
  EXPECT_TRUE(page) << page.status().to_string();
  return out;
}

TEST(AlertDocumentTest, ReadsWhatTheStoreIndexesAndWhereTheSummaryEnds) {
  const auto id = store::AlertId::derive("c/vigil.events", 1, 7, "r1");
  const std::string doc = alert_doc(id, kT0, "r1", "WS-1");
  auto a = parse_alert_document(doc);
  ASSERT_TRUE(a) << a.status().to_string();
  const store::AlertRecord& r = (*a)->record;
  EXPECT_EQ(r.id.hex(), id.hex());
  EXPECT_EQ(r.time, kT0);
  EXPECT_EQ(r.rule_id, "r1");
  EXPECT_EQ(r.host, "WS-1");
  EXPECT_EQ(r.level, store::AlertLevel::kHigh);
  EXPECT_EQ(r.title, "Title of r1");
  ASSERT_EQ(r.tags.size(), 2u);
  EXPECT_EQ(r.tags[1], "attack.t1059");
  EXPECT_EQ(r.json, doc);
  // The summary is the document before its top-level "matched" (a matched value that holds
  // the text "matched" does not confuse it).
  EXPECT_EQ(doc.substr(0, r.summary_size) + "}", doc.substr(0, doc.find(R"(,"matched":[{)")) + "}");
  EXPECT_FALSE((*a)->truncated);
  auto t = parse_alert_document(alert_doc(id, kT0, "r1", "WS-1", /*truncated=*/true));
  ASSERT_TRUE(t);
  EXPECT_TRUE((*t)->truncated);

  // A correlation alert has no matched fields: the whole document is its summary.
  auto c = parse_alert_document(R"({"id":")" + id.hex() + R"(","time":")" + format_rfc3339(kT0) +
                                R"(","rule":{"id":"corr","title":"T","level":"low","tags":[]},)"
                                R"("host":"","value":5})");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ((*c)->record.summary_size, 0u);

  for (const std::string& bad :
       {std::string("not json"), std::string(R"({"time":"2026-01-01T00:00:00Z"})"),
        R"({"id":")" + id.hex() + R"(","time":"yesterday","rule":{"id":"r"}})",
        R"({"id":")" + id.hex() + R"(","time":"2026-01-01T00:00:00Z","rule":{}})",
        std::string(R"({"id":"x")") + '\0' + "}", std::string(100, '[') + std::string(100, ']'),
        doc + doc}) {
    EXPECT_FALSE(parse_alert_document(bad)) << bad.substr(0, 80);
  }
}

TEST(AlertMirrorTest, StoresEveryReplicasAlertsOnceAndSkipsWhatItCannotRead) {
  // spdlog's registry made here, before two mirrors' threads log at once: it is a static in
  // the uninstrumented libspdlog, whose guarded initialisation ThreadSanitizer cannot see.
  spdlog::default_logger();
  auto kafka = EmbeddedKafka::start(1, "vigil.events", 1);
  ASSERT_TRUE(kafka) << kafka.status().to_string();
  ASSERT_TRUE((*kafka)->create_topic("vigil.alerts", 2).is_ok());
  const std::string brokers = (*kafka)->bootstrap_servers();
  test::TempDir tmp("alert-mirror");
  auto own = store::Store::open({tmp / "own"});      // raised a1 itself
  auto other = store::Store::open({tmp / "other"});  // raised nothing
  ASSERT_TRUE(own && other);

  const auto id1 = store::AlertId::derive("c/vigil.events", 1, 1, "r1");
  const auto id2 = store::AlertId::derive("c/vigil.events", 2, 2, "r2");
  const auto id3 = store::AlertId::derive("c/vigil.events", 3, 3, "r3");
  // a1 as its replica stored it: the whole document; the topic's record was cut to fit Kafka.
  auto a1 = parse_alert_document(alert_doc(id1, kT0 + 1, "r1", "WS-1"));
  ASSERT_TRUE(a1);
  ASSERT_TRUE((*own)->put_batch({(*a1)->record}, {}).is_ok());
  produce(brokers, alert_doc(id1, kT0 + 1, "r1", "WS-1", /*truncated=*/true));
  produce(brokers, alert_doc(id2, kT0 + 2, "r2", "WS-2"));
  produce(brokers, R"({"event":{"kind":"signal"}})", {{"vigil.format", "ecs"}});
  produce(brokers, "{broken");

  MetricsRegistry m_own, m_other;
  AlertMirrorOptions o;
  o.brokers = brokers;
  o.poll_ms = 20;
  {
    auto mo = AlertMirror::create(o, **own, m_own);
    auto mx = AlertMirror::create(o, **other, m_other);
    ASSERT_TRUE(mo && mx);
    (*mo)->start();
    (*mx)->start();
    auto done = [](MetricsRegistry& m) {
      return m.counter_sum("vigil_cluster_alerts_skipped_total") == 2 &&
             m.counter_value("vigil_cluster_alerts_mirrored_total") +
                     m.counter_value("vigil_cluster_alerts_already_stored_total") ==
                 2;
    };
    ASSERT_TRUE(wait_until([&] { return done(m_own) && done(m_other); }));
  }
  EXPECT_EQ(m_own.counter_value("vigil_cluster_alerts_mirrored_total"), 1u);
  EXPECT_EQ(m_own.counter_value("vigil_cluster_alerts_already_stored_total"), 1u);
  EXPECT_EQ(m_other.counter_value("vigil_cluster_alerts_mirrored_total"), 2u);
  EXPECT_EQ(m_other.counter_value("vigil_cluster_alerts_skipped_total", {{"reason", "format"}}),
            1u);
  EXPECT_EQ(m_other.counter_value("vigil_cluster_alerts_skipped_total", {{"reason", "invalid"}}),
            1u);
  // The same list on both, summaries included; the replica that raised a1 keeps its event.
  EXPECT_EQ(summaries(**own), summaries(**other));
  EXPECT_EQ(summaries(**own).size(), 2u);
  auto kept = (*own)->get_alert(id1);
  ASSERT_TRUE(kept && *kept);
  EXPECT_NE((*kept)->find(R"("event":{"CommandLine")"), std::string::npos);

  // A restart reads on from the stored offsets: a3 only.
  produce(brokers, alert_doc(id3, kT0 + 3, "r3", "WS-3"));
  MetricsRegistry m_again;
  {
    auto mx = AlertMirror::create(o, **other, m_again);
    ASSERT_TRUE(mx);
    (*mx)->start();
    ASSERT_TRUE(wait_until(
        [&] { return m_again.counter_value("vigil_cluster_alerts_mirrored_total") == 1; }));
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(m_again.counter_value("vigil_cluster_alerts_mirrored_total"), 1u);
  EXPECT_EQ(m_again.counter_sum("vigil_cluster_alerts_skipped_total"), 0u);
  EXPECT_EQ(summaries(**other).size(), 3u);
  auto verify = (*other)->verify();
  ASSERT_TRUE(verify);
  EXPECT_TRUE(verify->ok());
}

}  // namespace
}  // namespace vigil::ingest
