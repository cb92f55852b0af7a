// The API's routes (api/src/service*.cc) through the HTTP server: queries, pages, cursors,
// tokens, parameters and errors, and the OpenAPI document. Router-level tests without a
// server are in service_router_test.cc.

#include "vigil/api/service.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <span>
#include <thread>

#include "api_fixture.h"
#include "page_cache.h"
#include "support/http_client.h"
#include "support/temp_dir.h"
#include "vigil/api/auth.h"

namespace vigil::api {
namespace {

namespace fs = std::filesystem;
using test::http_get;
using test::http_raw;
using test_support::ApiTest;
using test_support::numbers;

TEST_F(ApiTest, EventStatsCountPerBucketByLogsourceOrHost) {
  auto r =
      get("/api/v1/events/stats?since=2026-11-24T16:58:00Z&until=2026-11-24T17:02:00Z&bucket=1m");
  ASSERT_EQ(r.status, 200) << r.body;
  rapidjson::Document d;
  d.Parse(r.body.c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_EQ(d["events"].GetUint64() + d["invalid"].GetUint64(), 20u);
  EXPECT_EQ(d["totals"]["low"].GetUint64(), 5u) << r.body;
  ASSERT_EQ(d["buckets"].Size(), 4u);
  EXPECT_STREQ(d["buckets"][2]["start"].GetString(), "2026-11-24T17:00:00.000Z");
  EXPECT_EQ(d["buckets"][2]["events"].GetUint64(), d["events"].GetUint64());
  EXPECT_EQ(d["buckets"][1]["events"].GetUint64(), 0u);

  r = get(
      "/api/v1/events/stats?since=2026-11-24T16:00:00Z&until=2026-11-24T18:00:00Z&by=host&top=1");
  ASSERT_EQ(r.status, 200) << r.body;
  d.Parse(r.body.c_str());
  EXPECT_EQ(d["totals"]["host0"].GetUint64(), 7u) << r.body;
  EXPECT_EQ(d["totals"].MemberCount(), 2u) << r.body;  // host0 and (other)
  EXPECT_EQ(d["totals"]["(other)"].GetUint64() + 7u, d["events"].GetUint64());

  r = get("/api/v1/events/stats?since=2026-11-24T16:00:00Z&until=2026-11-24T18:00:00Z&max_scan=5");
  d.Parse(r.body.c_str());
  EXPECT_TRUE(d["partial"].GetBool());
  EXPECT_EQ(d["scanned"].GetUint64(), 5u);

  expect_problem("/api/v1/events/stats?bucket=30s", 400, "'bucket'");
  expect_problem("/api/v1/events/stats?by=rule", 400, "'by'");
  expect_problem("/api/v1/events/stats?since=30d&bucket=1m", 400, "more than 1000 buckets");
  expect_problem("/api/v1/events/stats?top=0", 400, "'top'");
  expect_problem("/api/v1/events/stats?since=1h&until=2h", 400, "'since' must be before");
  expect_problem("/api/v1/events/stats?field=x", 400, "unknown query parameter 'field'");
}

TEST_F(ApiTest, HealthReadyAndMetrics) {
  auto h = get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, R"({"status":"ok"})");
  EXPECT_EQ(get("/readyz").status, 200);
  ready_ = false;
  expect_problem("/readyz", 503, "not ready");
  auto m = get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m.body.find("vigil_test_total 7"), std::string::npos);
}

TEST_F(ApiTest, AlertsNewestFirstWithLimitAndCursor) {
  auto r = get("/api/v1/alerts?limit=4");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  std::string cursor;
  EXPECT_EQ(numbers(r.body, &cursor), (std::vector<int>{29, 28, 27, 26}));
  ASSERT_FALSE(cursor.empty());
  r = get("/api/v1/alerts?limit=4&cursor=" + cursor);
  EXPECT_EQ(numbers(r.body, &cursor), (std::vector<int>{25, 24, 23, 22}));

  std::vector<int> all;
  std::string next;
  std::string target = "/api/v1/alerts?limit=7";
  for (int i = 0; i < 10; ++i) {
    auto page = numbers(get(target).body, &next);
    all.insert(all.end(), page.begin(), page.end());
    if (next.empty()) break;
    target = "/api/v1/alerts?limit=7&cursor=" + next;
  }
  EXPECT_EQ(all.size(), 30u);
  EXPECT_EQ(all.back(), 0);
}

// A cursor continues only the route and query that returned it: another route's, another
// query's, an edited one and a made-up well-formed one are 400.
TEST_F(ApiTest, CursorsAreBoundToTheirRouteAndQuery) {
  std::string alerts_cursor, events_cursor, rule_cursor;
  numbers(get("/api/v1/alerts?limit=4").body, &alerts_cursor);
  numbers(get("/api/v1/alerts?limit=2&rule=rule-odd").body, &rule_cursor);
  auto ev = get("/api/v1/events?limit=3");
  rapidjson::Document d;
  d.Parse(ev.body.c_str());
  ASSERT_TRUE(d["next_cursor"].IsString()) << ev.body;
  events_cursor = d["next_cursor"].GetString();
  ASSERT_FALSE(alerts_cursor.empty());
  ASSERT_FALSE(rule_cursor.empty());
  EXPECT_EQ(get("/api/v1/alerts?limit=4&cursor=" + alerts_cursor).status, 200);
  EXPECT_EQ(get("/api/v1/alerts?limit=9&view=full&cursor=" + alerts_cursor).status,
            200);  // page size may change
  EXPECT_EQ(get("/api/v1/alerts?limit=2&rule=rule-odd&cursor=" + rule_cursor).status, 200);
  expect_problem("/api/v1/alerts?cursor=" + events_cursor, 400,
                 "not a cursor of this route and query");
  expect_problem("/api/v1/events?cursor=" + alerts_cursor, 400,
                 "not a cursor of this route and query");
  expect_problem("/api/v1/alerts?cursor=" + rule_cursor, 400,
                 "not a cursor of this route and query");
  expect_problem("/api/v1/alerts?rule=rule-even&cursor=" + rule_cursor, 400,
                 "not a cursor of this route and query");
  std::string edited = alerts_cursor;
  edited[3] = edited[3] == '0' ? '1' : '0';
  expect_problem("/api/v1/alerts?cursor=" + edited, 400, "not a cursor of this route and query");
  const std::string made_up =
      alerts_cursor.substr(0, alerts_cursor.find('.')) + "." + std::string(32, 'a');
  expect_problem("/api/v1/alerts?cursor=" + made_up, 400, "not a cursor of this route and query");
}

// A scrub that finds a damaged table file turns /readyz to 503, saying so.
TEST(ApiReadiness, AStoreTheScrubFoundDamagedIsNotReady) {
  test::TempDir tmp{"readyz"};
  const fs::path dir = tmp.path() / "data";
  {
    auto s = store::Store::open({dir.string()});
    ASSERT_TRUE(s);
    std::vector<store::AlertRecord> alerts;
    for (int i = 0; i < 200; ++i) {
      store::AlertRecord a;
      a.id = store::AlertId::derive("events", 0, i, "r");
      a.time = 1795539600000 + i;
      a.rule_id = "r";
      a.json =
          R"({"n":)" + std::to_string(i) + R"(,"pad":")" + std::string(100, 'a' + i % 26) + R"("})";
      alerts.push_back(a);
    }
    ASSERT_TRUE((*s)->put_batch(alerts, {}).is_ok());
    ASSERT_TRUE((*s)->flush().is_ok());
  }
  fs::path victim;
  uintmax_t largest = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".sst" && fs::file_size(e.path()) > largest)
      largest = fs::file_size(e.path()), victim = e.path();
  }
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
    f.seekp(101);
    f.put('\xa5');
  }
  auto s = store::Store::open({dir.string()});
  ASSERT_TRUE(s) << s.status().to_string();
  MetricsRegistry metrics;
  ManualClock clock(1795539600000);
  ApiContext ctx;
  ctx.store = s->get();
  ctx.metrics = &metrics;
  ctx.clock = &clock;
  HttpServerOptions o;
  o.port = 0;
  auto server = HttpServer::start(o, make_router(ctx));
  ASSERT_TRUE(server);
  EXPECT_EQ(http_get("127.0.0.1", (*server)->port(), "/readyz").status, 200);
  EXPECT_FALSE((*s)->scrub().is_ok());
  const auto r = http_get("127.0.0.1", (*server)->port(), "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("the store is damaged"), std::string::npos) << r.body;
}

TEST_F(ApiTest, AlertsTimeRangeRuleAndHost) {
  EXPECT_EQ(
      numbers(get("/api/v1/alerts?since=2026-11-24T17:00:05Z&until=2026-11-24T17:00:08Z").body),
      (std::vector<int>{7, 6, 5}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?since=" + std::to_string(kBase + 28000)).body),
            (std::vector<int>{29, 28}));
  // Relative: the clock is an hour after the first alert, so 59m31s ago is alert 29's time.
  EXPECT_EQ(numbers(get("/api/v1/alerts?since=3571s").body), (std::vector<int>{29}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?rule=rule-odd&limit=3").body),
            (std::vector<int>{29, 27, 25}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?host=host2&limit=2").body), (std::vector<int>{29, 26}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?rule=nope").body), (std::vector<int>{}));
  // Percent-encoded values are decoded.
  EXPECT_EQ(numbers(get("/api/v1/alerts?since=2026-11-24T17%3A00%3A29Z").body),
            (std::vector<int>{29}));
}

TEST_F(ApiTest, AlertsBySeverityTagTextAndRuleWithHost) {
  EXPECT_EQ(numbers(get("/api/v1/alerts?severity=critical").body),
            (std::vector<int>{25, 20, 15, 10, 5, 0}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?severity=critical,medium&limit=3").body),
            (std::vector<int>{29, 28, 27}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?severity=critical&tag=attack.t1059.001").body),
            (std::vector<int>{25, 15, 5}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?q=encoded%20powershell&limit=2").body),
            (std::vector<int>{29, 27}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?rule=rule-odd&host=host0").body),
            (std::vector<int>{27, 21, 15, 9, 3}));
  expect_problem("/api/v1/alerts?severity=urgent", 400, "'severity'");
  expect_problem("/api/v1/alerts?severity=high,", 400, "'severity'");
  expect_problem("/api/v1/alerts?tag=", 400, "'tag'");
  expect_problem("/api/v1/alerts?q=" + std::string(2000, 'a'), 400, "'q'");
}

TEST_F(ApiTest, AlertListsShowSummariesUnlessViewFull) {
  auto r = get("/api/v1/alerts?limit=7");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(
      r.body.find(R"({"alerts":[{"n":29},{"n":28},{"n":27},{"n":26},{"n":25},{"n":24},{"n":23}],)"),
      std::string::npos)
      << r.body;
  r = get("/api/v1/alerts?limit=2&since=2026-11-24T17:00:23Z&view=full");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"([{"n":29},{"n":28}])"), std::string::npos) << r.body;
  r = get("/api/v1/alerts?limit=2&until=2026-11-24T17:00:25Z&view=full");
  EXPECT_NE(
      r.body.find(
          R"([{"n":24,"matched":[{"field":"n"}],"event":{"e":1}},{"n":23,"matched":[{"field":"n"}],"event":{"e":1}}])"),
      std::string::npos)
      << r.body;
  r = get("/api/v1/alerts?limit=2&until=2026-11-24T17:00:25Z&view=summary&rule=rule-even");
  EXPECT_NE(r.body.find(R"([{"n":24},{"n":22}])"), std::string::npos) << r.body;
  EXPECT_EQ(numbers(get("/api/v1/alerts?view=full&host=host0&limit=3").body),
            (std::vector<int>{27, 24, 21}));
  expect_problem("/api/v1/alerts?view=all", 400, "'view'");
  expect_problem("/api/v1/alerts?view=", 400, "'view'");
}

// The page cache answers a repeated query from memory until an alert is written: a new
// alert is in the next answer, and queries differing in any parameter are told apart.
TEST_F(ApiTest, RepeatedAlertPagesAreCachedUntilAnAlertIsWritten) {
  auto hits = [&] { return metrics_.counter_sum("vigil_api_alert_page_cache_hits_total"); };
  const std::string first = get("/api/v1/alerts?limit=3").body;
  EXPECT_EQ(numbers(first), (std::vector<int>{29, 28, 27}));
  EXPECT_EQ(hits(), 0u);
  EXPECT_EQ(get("/api/v1/alerts?limit=3").body, first);
  EXPECT_EQ(hits(), 1u);
  // Same page, other parameters: answered apart.
  EXPECT_EQ(numbers(get("/api/v1/alerts?limit=3&view=full").body), (std::vector<int>{29, 28, 27}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?limit=3&rule=rule-even").body),
            (std::vector<int>{28, 26, 24}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?limit=2").body), (std::vector<int>{29, 28}));
  EXPECT_EQ(hits(), 1u);

  store::AlertRecord a;
  a.id = store::AlertId::derive("events", 0, 30, "rule-even");
  a.time = kBase + 30 * 1000;
  a.rule_id = "rule-even";
  a.host = "host0";
  a.json = R"({"n":30})";
  a.title = kEvenTitle;
  ASSERT_TRUE(store_->put_batch({a}, {}).is_ok());
  EXPECT_EQ(numbers(get("/api/v1/alerts?limit=3").body), (std::vector<int>{30, 29, 28}));
  EXPECT_EQ(numbers(get("/api/v1/alerts?limit=3").body), (std::vector<int>{30, 29, 28}));
  EXPECT_EQ(hits(), 2u);
  // A window relative to now is another range at every request: computed each time.
  get("/api/v1/alerts?limit=3&since=2h");
  get("/api/v1/alerts?limit=3&since=2h");
  EXPECT_EQ(hits(), 2u);
}

TEST(PageCache, AnswersOnlyAtItsVersionAndStaysWithinItsBytes) {
  PageCache cache(64 * 1024);
  cache.insert("a", 1, std::string(1000, 'a'));
  ASSERT_NE(cache.find("a", 1), nullptr);
  EXPECT_EQ(*cache.find("a", 1), std::string(1000, 'a'));
  EXPECT_EQ(cache.find("a", 2), nullptr);  // an alert was written since
  EXPECT_EQ(cache.find("a", 1), nullptr);  // and the stale entry is gone
  EXPECT_EQ(cache.entries(), 0u);
  cache.insert("huge", 1, std::string(8 * 1024, 'h'));  // over a sixteenth of the bound
  EXPECT_EQ(cache.find("huge", 1), nullptr);
  for (int i = 0; i < 40; ++i) cache.insert("k" + std::to_string(i), 1, std::string(3000, 'x'));
  EXPECT_LE(cache.bytes(), 64u * 1024);
  EXPECT_EQ(cache.find("k0", 1), nullptr);  // least recently used: out first
  EXPECT_NE(cache.find("k39", 1), nullptr);
}

TEST_F(ApiTest, AlertById) {
  const auto id = store::AlertId::derive("events", 0, 12, "rule-even");
  auto r = get("/api/v1/alerts/" + id.hex());
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"n":12,"matched":[{"field":"n"}],"event":{"e":1}})");
  expect_problem("/api/v1/alerts/" + store::AlertId::derive("events", 0, 12, "rule-odd").hex(), 404,
                 "no alert");
  expect_problem("/api/v1/alerts/xyz", 400, "32 hexadecimal");
  expect_problem("/api/v1/alerts/" + id.hex() + "?verbose=1", 400, "unknown query parameter");
}

TEST_F(ApiTest, EventHuntWithFieldFiltersAndPages) {
  auto ns = [](const std::string& body, std::string* cursor = nullptr) {
    rapidjson::Document d;
    d.Parse(body.c_str());
    std::vector<int> out;
    if (d.HasParseError() || !d.HasMember("events")) return out;
    for (const auto& e : d["events"].GetArray()) {
      if (e.HasMember("event"))
        out.push_back(e["event"]["n"].GetInt());
      else
        out.push_back(-static_cast<int>(e["offset"].GetInt64()));  // kept as event_raw
    }
    if (cursor) *cursor = d["next_cursor"].IsNull() ? "" : d["next_cursor"].GetString();
    return out;
  };
  auto r = get("/api/v1/events?limit=3");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string cursor;
  EXPECT_EQ(ns(r.body, &cursor), (std::vector<int>{19, 18, 17}));
  EXPECT_EQ(ns(get("/api/v1/events?limit=3&cursor=" + cursor).body),
            (std::vector<int>{16, 15, 14}));
  // Event 7 is not valid JSON past what ingest read: listed as event_raw, matched by no filter.
  EXPECT_EQ(ns(get("/api/v1/events?field=host%3DHOST1").body),
            (std::vector<int>{19, 16, 13, 10, 4, 1}));
  EXPECT_EQ(ns(get("/api/v1/events?since=2026-11-24T17:00:07Z&until=2026-11-24T17:00:08Z").body),
            (std::vector<int>{-7}));
  EXPECT_EQ(ns(get("/api/v1/events?field=host~st2&field=n%3D5").body), (std::vector<int>{5}));
  EXPECT_EQ(ns(get("/api/v1/events?field=nothing.here").body), (std::vector<int>{}));
  EXPECT_EQ(ns(get("/api/v1/events?since=2026-11-24T17:00:02Z&until=2026-11-24T17:00:04Z").body),
            (std::vector<int>{3, 2}));
  expect_problem("/api/v1/events?field=%3Dx", 400, "'field'");
  expect_problem("/api/v1/events?field=a..b%3Dx", 400, "'field'");
  expect_problem("/api/v1/events?cursor=abc", 400, "'cursor'");
  expect_problem("/api/v1/events?limit=0", 400, "'limit'");
  expect_problem("/api/v1/events?host=x", 400, "unknown query parameter 'host'");
}

TEST_F(ApiTest, CheckpointsOnlyUnderTheirDirectoryWithSafeNames) {
  auto post = [&](const std::string& target) {
    return http_raw("127.0.0.1", server_->port(),
                    "POST " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kAdmin +
                        "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  };
  auto raw = post("/api/v1/admin/checkpoints?name=cp-1");
  ASSERT_EQ(raw.rfind("HTTP/1.1 201", 0), 0u) << raw;
  EXPECT_NE(raw.find((tmp_.path() / "checkpoints" / "cp-1").string()), std::string::npos) << raw;
  auto copy = store::Store::open({tmp_ / "checkpoints/cp-1"});
  ASSERT_TRUE(copy) << copy.status().to_string();
  EXPECT_EQ(*(*copy)->count_alerts(), 30u);
  EXPECT_EQ(post("/api/v1/admin/checkpoints?name=cp-1").rfind("HTTP/1.1 409", 0), 0u);
  for (const char* bad : {"..", "../x", "a%2Fb", ".hidden", ""}) {
    raw = post(std::string("/api/v1/admin/checkpoints?name=") + bad);
    EXPECT_EQ(raw.rfind("HTTP/1.1 400", 0), 0u) << bad << ": " << raw;
  }
  EXPECT_EQ(post("/api/v1/admin/checkpoints").rfind("HTTP/1.1 400", 0), 0u);
}

TEST_F(ApiTest, TokensAndRoles) {
  const uint16_t port = server_->port();
  auto status_of = [&](const std::string& target, const std::string& authorization) {
    return http_get("127.0.0.1", port, target,
                    authorization.empty() ? std::vector<std::pair<std::string, std::string>>{}
                                          : std::vector<std::pair<std::string, std::string>>{
                                                {"Authorization", authorization}});
  };
  // No token, a wrong one, a prefix of a right one, another scheme: 401, saying what is wrong.
  auto r = status_of("/api/v1/alerts", "");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body.find("Bearer <token>"), std::string::npos) << r.body;
  EXPECT_EQ(status_of("/api/v1/alerts", "Bearer not-a-token-at-all-000000").status, 401);
  EXPECT_EQ(status_of("/api/v1/alerts", std::string("Bearer ") + std::string(kReader).substr(0, 20))
                .status,
            401);
  EXPECT_EQ(status_of("/api/v1/alerts", std::string("Bearer ") + kReader + "x").status, 401);
  EXPECT_EQ(status_of("/api/v1/alerts", std::string("Basic ") + kReader).status, 401);
  EXPECT_EQ(status_of("/api/v1/alerts/0123", "").status, 401);
  EXPECT_EQ(status_of("/api/v1/events", "").status, 401);
  // The right tokens, any case of the scheme.
  EXPECT_EQ(status_of("/api/v1/alerts", std::string("Bearer ") + kReader).status, 200);
  EXPECT_EQ(status_of("/api/v1/alerts", std::string("bearer ") + kAdmin).status, 200);
  // 401 responses carry the challenge; the token is never echoed.
  const std::string raw = http_raw("127.0.0.1", port,
                                   "GET /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                   "Bearer wrong-token-0123456789\r\nConnection: close\r\n\r\n");
  EXPECT_NE(raw.find("WWW-Authenticate: Bearer realm=\"vigil\", error=\"invalid_token\""),
            std::string::npos)
      << raw;
  EXPECT_EQ(raw.find("wrong-token"), std::string::npos) << raw;
  // Admin routes: a reader token is 403, no token 401, the admin token passes.
  auto post = [&](const std::string& authorization) {
    return http_raw("127.0.0.1", port,
                    "POST /api/v1/admin/checkpoints?name=auth HTTP/1.1\r\nHost: x\r\n" +
                        authorization + "Content-Length: 0\r\nConnection: close\r\n\r\n");
  };
  EXPECT_EQ(post("").rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_EQ(post(std::string("Authorization: Bearer ") + kReader + "\r\n").rfind("HTTP/1.1 403", 0),
            0u);
  EXPECT_FALSE(fs::exists(tmp_.path() / "checkpoints" / "auth"));
  EXPECT_EQ(post(std::string("Authorization: Bearer ") + kAdmin + "\r\n").rfind("HTTP/1.1 201", 0),
            0u);
  // Probes are open by default.
  EXPECT_EQ(status_of("/healthz", "").status, 200);
  EXPECT_EQ(status_of("/readyz", "").status, 200);
  EXPECT_EQ(status_of("/metrics", "").status, 200);
}

TEST_F(ApiTest, ClosedMetricsNeedAToken) {
  TearDown();
  open_metrics_ = false;
  SetUp();
  EXPECT_EQ(http_get("127.0.0.1", server_->port(), "/metrics").status, 401);
  EXPECT_EQ(get("/metrics").status, 200);
  EXPECT_EQ(http_get("127.0.0.1", server_->port(), "/healthz").status, 200);
}

TEST(Tokens, FileAndListFormatsAreCheckedWithoutEchoingTokens) {
  auto set = TokenSet::parse_file_text(
      "# team tokens\nadmin  aaaaaaaaaaaaaaaa1  # ops\n\nreader\tbbbbbbbbbbbbbbbb2\n", "t");
  ASSERT_TRUE(set) << set.status().to_string();
  EXPECT_EQ(set->size(), 2u);
  EXPECT_EQ(set->role_of("aaaaaaaaaaaaaaaa1"), Role::kAdmin);
  EXPECT_EQ(set->role_of("bbbbbbbbbbbbbbbb2"), Role::kReader);
  EXPECT_FALSE(set->role_of("bbbbbbbbbbbbbbbb"));
  EXPECT_FALSE(set->role_of(""));
  auto list = TokenSet::parse_list("reader:cccccccccccccccc3, admin:dddddddddddddddd4", "env");
  ASSERT_TRUE(list) << list.status().to_string();
  EXPECT_EQ(list->role_of("dddddddddddddddd4"), Role::kAdmin);
  for (const char* bad : {"owner eeeeeeeeeeeeeeee5\n", "admin short\n", "admin\n",
                          "admin ffffffffffffffff6\nreader ffffffffffffffff6\n"}) {
    auto r = TokenSet::parse_file_text(bad, "t");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.status().message().find("eeeeeeeeeeeeeeee5"), std::string::npos)
        << r.status().to_string();
    EXPECT_EQ(r.status().message().find("ffffffffffffffff6"), std::string::npos)
        << r.status().to_string();
  }
  EXPECT_FALSE(TokenSet::parse_list("admin=gggggggggggggggg7", "env"));
  const std::string a = generate_token(), b = generate_token();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
}

TEST(Tokens, AGeneratedTokenIsKeptPrivateAndReused) {
  test::TempDir tmp{"token"};
  const std::string path = (tmp.path() / "api-token").string();
  bool created = false;
  auto first = load_or_create_token_file(path, &created);
  ASSERT_TRUE(first) << first.status().to_string();
  EXPECT_TRUE(created);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  auto second = load_or_create_token_file(path, &created);
  ASSERT_TRUE(second);
  EXPECT_FALSE(created);
  EXPECT_EQ(*first, *second);
  std::ofstream(path) << "x\n";
  EXPECT_FALSE(load_or_create_token_file(path));
}

// The OpenAPI document served is the one in docs/, and it describes exactly the routes the
// router has, with the access each needs.
TEST_F(ApiTest, OpenApiDocumentMatchesTheRoutes) {
  auto r = get("/api/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << r.body;
  std::ifstream in(VIGIL_SOURCE_DIR "/docs/openapi.json");
  const std::string file((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(r.body, file) << "the served document differs from docs/openapi.json";
  rapidjson::Document d;
  d.Parse(r.body.c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["openapi"].GetString(), "3.1.0");

  std::set<std::string> documented, routed;
  for (const auto& path : d["paths"].GetObject()) {
    for (const auto& op : path.value.GetObject()) {
      std::string method = op.name.GetString();
      for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const std::string key = method + " " + path.name.GetString();
      documented.insert(key);
      EXPECT_TRUE(op.value.HasMember("responses")) << key;
      EXPECT_TRUE(op.value.HasMember("operationId")) << key;
    }
  }
  ApiContext ctx{store_.get(), &metrics_, &clock_, nullptr, ""};
  for (const auto& route : make_router(ctx).routes()) {
    const std::string key = route.method + " " + route.path_template;
    routed.insert(key);
    if (!documented.count(key)) continue;
    std::string method = route.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto& op = d["paths"][route.path_template.c_str()][method.c_str()];
    const bool open =
        op.HasMember("security") && op["security"].IsArray() && op["security"].Empty();
    EXPECT_EQ(open, route.access == Access::kOpen)
        << key << ": the document and the router disagree on its access";
    const bool documents_403 = op["responses"].HasMember("403");
    EXPECT_EQ(documents_403, route.access == Access::kAdmin) << key;
  }
  for (const auto& k : routed)
    EXPECT_TRUE(documented.count(k)) << k << " is routed but missing from docs/openapi.json";
  for (const auto& k : documented)
    EXPECT_TRUE(routed.count(k)) << k << " is documented but not routed";

  // Every $ref points at a component that exists.
  std::function<void(const rapidjson::Value&)> check_refs = [&](const rapidjson::Value& v) {
    if (v.IsObject()) {
      for (const auto& m : v.GetObject()) {
        if (std::string_view(m.name.GetString()) == "$ref") {
          const std::string ref = m.value.GetString();
          ASSERT_EQ(ref.rfind("#/components/", 0), 0u) << ref;
          const rapidjson::Value* at = &d["components"];
          std::string rest = ref.substr(13);
          for (size_t slash; !rest.empty();
               rest = slash == std::string::npos ? "" : rest.substr(slash + 1)) {
            slash = rest.find('/');
            const std::string part = rest.substr(0, slash);
            ASSERT_TRUE(at->IsObject() && at->HasMember(part.c_str()))
                << ref << " does not resolve";
            at = &(*at)[part.c_str()];
          }
        } else {
          check_refs(m.value);
        }
      }
    } else if (v.IsArray()) {
      for (const auto& x : v.GetArray()) check_refs(x);
    }
  };
  check_refs(d);
}

TEST_F(ApiTest, BadParametersAre400NamingThem) {
  expect_problem("/api/v1/alerts?since=yesterday", 400, "'since'");
  expect_problem("/api/v1/alerts?until=2026-13-01T00:00:00Z", 400, "'until'");
  expect_problem("/api/v1/alerts?since=2026-11-24T18:00:00Z&until=2026-11-24T17:00:00Z", 400,
                 "before 'until'");
  for (const char* limit : {"0", "-1", "1001", "99999999999999999999", "ten", "5x", ""}) {
    expect_problem(std::string("/api/v1/alerts?limit=") + limit, 400, "'limit'");
  }
  expect_problem("/api/v1/alerts?cursor=zz", 400, "'cursor'");
  expect_problem("/api/v1/alerts?cursor=" + std::string(48, '0') + "&rule=x", 400, "'cursor'");
  expect_problem("/api/v1/alerts?lmit=5", 400, "unknown query parameter 'lmit'");
  expect_problem("/api/v1/alerts?rule=", 400, "'rule'");
  expect_problem("/api/v1/alerts?since=%zz", 400, "percent-encoding");
}

TEST_F(ApiTest, RoutingErrors) {
  expect_problem("/api/v1/nothing", 404, "no route");
  auto raw = http_raw("127.0.0.1", server_->port(),
                      "POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 405", 0), 0u) << raw;
}

}  // namespace
}  // namespace vigil::api
