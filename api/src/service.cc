#include "vigil/api/service.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>

namespace vigil::api {

namespace {

constexpr size_t kMaxLimit = 1000;

HttpResponse unknown_params(const HttpRequest& req, std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : req.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return HttpResponse::problem(400, "unknown query parameter '" + k + "'");
    }
  }
  return HttpResponse{0, {}, {}};
}

HttpResponse list_alerts(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "rule", "host", "cursor"}); bad.status) return bad;
  const TimeMs now = ctx.clock->now_ms();
  store::AlertQuery q;
  if (auto v = req.param("since")) {
    auto t = parse_time_param(*v, now);
    if (!t) return HttpResponse::problem(400, "parameter 'since' must be an RFC 3339 time, epoch milliseconds or a duration such as 15m");
    q.since = *t;
  }
  if (auto v = req.param("until")) {
    auto t = parse_time_param(*v, now);
    if (!t) return HttpResponse::problem(400, "parameter 'until' must be an RFC 3339 time, epoch milliseconds or a duration such as 15m");
    q.until = *t;
  }
  if (q.since >= q.until) return HttpResponse::problem(400, "parameter 'since' must be before 'until'");
  if (auto v = req.param("limit")) {
    size_t limit = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), limit);
    if (ec != std::errc() || end != v->data() + v->size() || limit < 1 || limit > kMaxLimit) {
      return HttpResponse::problem(400, "parameter 'limit' must be an integer from 1 to " + std::to_string(kMaxLimit));
    }
    q.limit = limit;
  }
  if (auto v = req.param("rule")) {
    if (v->empty()) return HttpResponse::problem(400, "parameter 'rule' must not be empty");
    q.rule_id = *v;
  }
  if (auto v = req.param("host")) {
    if (v->empty()) return HttpResponse::problem(400, "parameter 'host' must not be empty");
    q.host = *v;
  }
  if (q.host.size() && q.rule_id.size()) return HttpResponse::problem(400, "parameters 'rule' and 'host' cannot be combined yet");
  if (auto v = req.param("cursor")) q.cursor = *v;

  auto page = ctx.store->query_alerts(q);
  if (!page) {
    if (page.status().code() == Code::kInvalidArgument) return HttpResponse::problem(400, "parameter 'cursor': " + page.status().message());
    return HttpResponse::problem(503, "store unavailable: " + page.status().message());
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("alerts");
  w.StartArray();
  for (const auto& a : page->alerts) w.RawValue(a.data(), a.size(), rapidjson::kObjectType);
  w.EndArray();
  w.Key("count");
  w.Uint64(page->alerts.size());
  w.Key("next_cursor");
  if (page->next_cursor.empty()) w.Null();
  else w.String(page->next_cursor.data(), static_cast<rapidjson::SizeType>(page->next_cursor.size()));
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

}  // namespace

std::optional<TimeMs> parse_time_param(std::string_view text, TimeMs now) {
  if (text.empty()) return std::nullopt;
  if (auto t = parse_rfc3339(text)) return t;
  if (auto d = parse_duration_ms(text)) return now - *d;
  int64_t ms = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec == std::errc() && end == text.data() + text.size()) return ms;
  return std::nullopt;
}

Router make_router(const ApiContext& ctx) {
  Router r;
  r.add("GET", "/healthz", [](const HttpRequest&) { return HttpResponse::json(R"({"status":"ok"})"); });
  r.add("GET", "/readyz", [ctx](const HttpRequest&) {
    if (!ctx.ready || ctx.ready()) return HttpResponse::json(R"({"status":"ready"})");
    return HttpResponse::problem(503, "not ready: the pipeline is not consuming or the store is not writable");
  });
  r.add("GET", "/metrics", [ctx](const HttpRequest&) {
    HttpResponse res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = ctx.metrics->render_prometheus();
    return res;
  });
  r.add("GET", "/api/v1/alerts", [ctx](const HttpRequest& req) { return list_alerts(ctx, req); });
  return r;
}

}  // namespace vigil::api
