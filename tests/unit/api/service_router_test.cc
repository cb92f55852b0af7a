// The API's router as make_router() builds it, called directly (no server, no sockets):
// every documented route resolves and refuses what it must, every parameter error is a 400
// problem naming the parameter, and the documents render as documented. docs/api.md's
// route table is held to docs/openapi.json here too.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "support/temp_dir.h"
#include "vigil/api/auth.h"
#include "vigil/api/service.h"

namespace vigil::api {
namespace {

constexpr char kAdmin[] = "admin-token-0123456789abcdef";
constexpr char kReader[] = "reader-token-0123456789abcdef";
constexpr TimeMs kNow = 1795543200000;  // 2026-11-24T18:00:00Z

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// (method, path template) of every route docs/openapi.json documents.
std::set<std::pair<std::string, std::string>> documented_routes() {
  rapidjson::Document d;
  const std::string text = read_file(VIGIL_SOURCE_DIR "/docs/openapi.json");
  d.Parse(text.c_str());
  std::set<std::pair<std::string, std::string>> out;
  if (d.HasParseError()) return out;
  for (const auto& [path, item] : d["paths"].GetObject()) {
    for (const auto& [method, op] : item.GetObject()) {
      std::string m = method.GetString();
      if (m != "get" && m != "post" && m != "put" && m != "delete" && m != "patch") continue;
      for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.emplace(m, path.GetString());
    }
  }
  return out;
}

// A concrete path for a template: each {name} becomes a plausible value.
std::string concrete(const std::string& path_template) {
  std::string out = std::regex_replace(path_template, std::regex(R"(\{version\})"), "1");
  out = std::regex_replace(out, std::regex(R"(\{action\})"), "pause");
  return std::regex_replace(out, std::regex(R"(\{[a-z_]+\})"), "x");
}

class ServiceRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open({tmp_ / "data"});
    ASSERT_TRUE(s) << s.status().to_string();
    store_ = std::move(*s);
    ctx_.store = store_.get();
    ctx_.metrics = &metrics_;
    ctx_.clock = &clock_;
    ctx_.checkpoint_dir = tmp_ / "checkpoints";
    auto tokens = TokenSet::parse_file_text(
        std::string("admin ") + kAdmin + "\nreader " + kReader + "\n", "tokens");
    ASSERT_TRUE(tokens) << tokens.status().to_string();
    ctx_.tokens = std::make_shared<const TokenSet>(std::move(*tokens));
  }

  HttpResponse call(const std::string& method, const std::string& target,
                    const char* token = kAdmin, std::string body = {}) {
    if (!router_) router_ = std::make_unique<Router>(make_router(ctx_));
    HttpRequest req;
    req.method = method;
    const size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) {
      auto query = parse_query(target.substr(q + 1));
      EXPECT_TRUE(query) << target;
      if (query) req.query = std::move(*query);
    }
    if (token) req.authorization = std::string("Bearer ") + token;
    req.body = std::move(body);
    return router_->route(req);
  }

  // A problem document with `status` whose detail mentions `mention`.
  static void expect_problem(const HttpResponse& r, int status, const std::string& mention) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    ASSERT_FALSE(d.HasParseError()) << r.body;
    ASSERT_TRUE(d.IsObject());
    EXPECT_EQ(d["status"].GetInt(), status);
    ASSERT_TRUE(d.HasMember("title") && d.HasMember("type") && d.HasMember("detail")) << r.body;
    EXPECT_NE(std::string(d["detail"].GetString()).find(mention), std::string::npos) << r.body;
  }

  test::TempDir tmp_{"service-router"};
  std::unique_ptr<store::Store> store_;
  MetricsRegistry metrics_;
  ManualClock clock_{kNow};
  ApiContext ctx_;
  std::unique_ptr<Router> router_;
};

TEST_F(ServiceRouterTest, EveryDocumentedRouteResolvesAndNoOtherExists) {
  const auto documented = documented_routes();
  ASSERT_GE(documented.size(), 15u);
  Router router = make_router(ctx_);
  std::set<std::pair<std::string, std::string>> routed;
  for (const auto& r : router.routes()) routed.emplace(r.method, r.path_template);
  EXPECT_EQ(routed, documented);
  for (const auto& [method, path] : documented) {
    HttpRequest req;
    req.method = method;
    req.path = concrete(path);
    const auto resolved = router.resolve(req);
    EXPECT_NE(resolved.index, SIZE_MAX) << method << " " << req.path;
  }
}

TEST_F(ServiceRouterTest, UnknownPathsAre404AndOtherMethods405) {
  expect_problem(call("GET", "/api/v1/nothing"), 404, "no route for /api/v1/nothing");
  expect_problem(call("DELETE", "/api/v1/alerts"), 405, "method DELETE is not allowed");
  expect_problem(call("POST", "/healthz"), 405, "not allowed on /healthz");
}

TEST_F(ServiceRouterTest, TokensAreCheckedBeforeAnyHandlerRuns) {
  expect_problem(call("GET", "/api/v1/alerts", nullptr), 401, "");
  expect_problem(call("GET", "/api/v1/alerts", "not-a-token-of-this-server"), 401, "");
  expect_problem(call("POST", "/api/v1/admin/checkpoints?name=a", kReader), 403, "");
  EXPECT_EQ(call("GET", "/healthz", nullptr).status, 200);
}

TEST_F(ServiceRouterTest, EveryRouteRefusesAnUnknownParameterNamingIt) {
  for (const auto& [method, path] : documented_routes()) {
    if (path == "/healthz" || path == "/readyz" || path == "/metrics") continue;  // no params
    const auto r = call(method, concrete(path) + "?bogus_param=1");
    if (r.status == 404 && r.body.find("not served") != std::string::npos) continue;
    SCOPED_TRACE(method + " " + path);
    expect_problem(r, 400, "'bogus_param'");
  }
}

TEST_F(ServiceRouterTest, ParameterErrorsNameTheParameter) {
  expect_problem(call("GET", "/api/v1/alerts?limit=0"), 400, "'limit'");
  expect_problem(call("GET", "/api/v1/alerts?limit=1001"), 400, "'limit'");
  expect_problem(call("GET", "/api/v1/alerts?since=yesterday"), 400, "'since'");
  expect_problem(call("GET", "/api/v1/alerts?since=1h&until=2h"), 400, "'since' must be before");
  expect_problem(call("GET", "/api/v1/alerts?cursor=abc.def"), 400, "'cursor'");
  expect_problem(call("GET", "/api/v1/events?cursor="), 400, "'cursor'");
  expect_problem(call("GET", "/api/v1/events/stats?bucket=10s"), 400, "'bucket'");
  expect_problem(call("GET", "/api/v1/events/stats?by=rule"), 400, "'by'");
  expect_problem(call("GET", "/api/v1/events/stats?top=0"), 400, "'top'");
  expect_problem(call("GET", "/api/v1/events/stats?bucket=1m&since=2d"), 400, "1000 buckets");
  expect_problem(call("POST", "/api/v1/admin/checkpoints"), 400, "'name' is required");
  expect_problem(call("POST", "/api/v1/admin/checkpoints?name=../x"), 400, "'name'");
}

TEST_F(ServiceRouterTest, WithoutContentOrStatsThoseRoutesSayTheyAreNotServed) {
  expect_problem(call("GET", "/api/v1/bundles"), 404, "not served");
  expect_problem(call("GET", "/api/v1/rollout"), 404, "not served");
  expect_problem(call("GET", "/api/v1/stats"), 404, "not served");
  expect_problem(call("GET", "/api/v1/rules"), 404, "");
}

TEST_F(ServiceRouterTest, HealthRendersTheNoticeAndReadinessTheReason) {
  EXPECT_EQ(call("GET", "/healthz").body, R"({"status":"ok"})");
  ctx_.notice = [] { return std::string("bundle 7 quarantined \"now\""); };
  ctx_.ready = [] { return false; };
  router_.reset();
  const auto health = call("GET", "/healthz");
  rapidjson::Document d;
  d.Parse(health.body.c_str());
  ASSERT_FALSE(d.HasParseError()) << health.body;
  EXPECT_STREQ(d["notice"].GetString(), "bundle 7 quarantined \"now\"");
  expect_problem(call("GET", "/readyz"), 503, "not consuming");
}

TEST_F(ServiceRouterTest, AnEmptyStoreRendersEmptyPagesAndEmptyBuckets) {
  const auto alerts = call("GET", "/api/v1/alerts");
  ASSERT_EQ(alerts.status, 200) << alerts.body;
  EXPECT_NE(alerts.body.find(R"("count":0,"next_cursor":null)"), std::string::npos) << alerts.body;
  const auto stats = call("GET", "/api/v1/events/stats?since=3h&until=0m&bucket=1h");
  ASSERT_EQ(stats.status, 200) << stats.body;
  rapidjson::Document d;
  d.Parse(stats.body.c_str());
  ASSERT_FALSE(d.HasParseError()) << stats.body;
  EXPECT_EQ(d["bucket_ms"].GetInt64(), 3600000);
  EXPECT_EQ(d["events"].GetUint64(), 0u);
  EXPECT_EQ(d["buckets"].GetArray().Size(), 3u);  // aligned hours covering [now-3h, now)
  EXPECT_STREQ(d["by"].GetString(), "logsource");
  expect_problem(call("GET", "/api/v1/alerts/" + store::AlertId::derive("e", 0, 1, "r").hex()), 404,
                 "no alert");
  expect_problem(call("GET", "/api/v1/alerts/nonexistent"), 400, "32 hexadecimal");
}

TEST(ApiDocs, TheRouteTableOfDocsApiMdIsTheOpenApiDocument) {
  // Each row of the table names one route: | `METHOD /path` | ... |
  const std::string md = read_file(VIGIL_SOURCE_DIR "/docs/api.md");
  ASSERT_FALSE(md.empty()) << "docs/api.md is missing";
  std::set<std::pair<std::string, std::string>> listed;
  const std::regex row(R"(^\| `(GET|POST|PUT|DELETE|PATCH) (/[^`]*)` \|)");
  std::istringstream lines(md);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) listed.emplace(m[1].str(), m[2].str());
  }
  const auto documented = documented_routes();
  for (const auto& r : documented)
    EXPECT_TRUE(listed.count(r)) << r.first << " " << r.second << " is missing from docs/api.md";
  for (const auto& r : listed)
    EXPECT_TRUE(documented.count(r))
        << r.first << " " << r.second << " is in docs/api.md but not in docs/openapi.json";
}

}  // namespace
}  // namespace vigil::api
