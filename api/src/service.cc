#include "vigil/api/service.h"

#include "vigil/api/openapi_json.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>

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

// The common parameters of a time-ranged, paged query.
struct PageParams {
  TimeMs since = INT64_MIN;
  TimeMs until = INT64_MAX;
  size_t limit = 100;
  std::string cursor;
};

HttpResponse parse_page_params(const ApiContext& ctx, const HttpRequest& req, PageParams& p) {
  const TimeMs now = ctx.clock->now_ms();
  for (const char* name : {"since", "until"}) {
    if (auto v = req.param(name)) {
      auto t = parse_time_param(*v, now);
      if (!t) {
        return HttpResponse::problem(400, std::string("parameter '") + name +
                                              "' must be an RFC 3339 time, epoch milliseconds or a duration such as 15m");
      }
      (name[0] == 's' ? p.since : p.until) = *t;
    }
  }
  if (p.since >= p.until) return HttpResponse::problem(400, "parameter 'since' must be before 'until'");
  if (auto v = req.param("limit")) {
    size_t limit = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), limit);
    if (ec != std::errc() || end != v->data() + v->size() || limit < 1 || limit > kMaxLimit) {
      return HttpResponse::problem(400, "parameter 'limit' must be an integer from 1 to " + std::to_string(kMaxLimit));
    }
    p.limit = limit;
  }
  if (auto v = req.param("cursor")) {
    if (v->empty()) return HttpResponse::problem(400, "parameter 'cursor' must not be empty");
    p.cursor = *v;
  }
  return HttpResponse{0, {}, {}};
}

HttpResponse store_problem(const Status& s) {
  if (s.code() == Code::kInvalidArgument) return HttpResponse::problem(400, "parameter 'cursor': " + s.message());
  return HttpResponse::problem(503, "store unavailable: " + s.message());
}

void write_page_tail(rapidjson::Writer<rapidjson::StringBuffer>& w, size_t count, const std::string& next_cursor,
                     size_t scanned, bool partial) {
  w.Key("count");
  w.Uint64(count);
  w.Key("next_cursor");
  if (next_cursor.empty()) w.Null();
  else w.String(next_cursor.data(), static_cast<rapidjson::SizeType>(next_cursor.size()));
  w.Key("scanned");
  w.Uint64(scanned);
  w.Key("partial");
  w.Bool(partial);
}

bool is_valid_json(std::string_view raw) {
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> handler;
  rapidjson::MemoryStream ms(raw.data(), raw.size());
  return !reader.Parse<rapidjson::kParseValidateEncodingFlag>(ms, handler).IsError();
}

HttpResponse list_alerts(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "rule", "host", "cursor", "severity", "tag", "q"});
      bad.status) {
    return bad;
  }
  PageParams pp;
  if (auto bad = parse_page_params(ctx, req, pp); bad.status) return bad;
  store::AlertQuery q;
  q.since = pp.since;
  q.until = pp.until;
  q.limit = pp.limit;
  q.cursor = pp.cursor;
  for (const char* name : {"rule", "host", "tag", "q"}) {
    if (auto v = req.param(name)) {
      if (v->empty()) return HttpResponse::problem(400, std::string("parameter '") + name + "' must not be empty");
      if (v->size() > 1024) return HttpResponse::problem(400, std::string("parameter '") + name + "' is longer than 1024 bytes");
      std::string& field = name[0] == 'r' ? q.rule_id : name[0] == 'h' ? q.host : name[0] == 't' ? q.tag : q.text;
      field = *v;
    }
  }
  if (auto v = req.param("severity")) {
    std::string_view rest = *v;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view name = rest.substr(0, comma);
      auto level = store::parse_alert_level(name);
      if (!level) {
        return HttpResponse::problem(400, "parameter 'severity': '" + std::string(name) +
                                              "' is not one of informational, low, medium, high, critical");
      }
      q.levels |= 1u << static_cast<unsigned>(*level);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }

  auto page = ctx.store->query_alerts(q);
  if (!page) return store_problem(page.status());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("alerts");
  w.StartArray();
  for (const auto& a : page->alerts) w.RawValue(a.data(), a.size(), rapidjson::kObjectType);
  w.EndArray();
  write_page_tail(w, page->alerts.size(), page->next_cursor, page->scanned, page->partial);
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

HttpResponse get_alert(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {}); bad.status) return bad;
  const auto id = store::AlertId::from_hex(req.path_param("id"));
  if (!id) return HttpResponse::problem(400, "alert id must be 32 hexadecimal digits");
  auto a = ctx.store->get_alert(*id);
  if (!a) return HttpResponse::problem(503, "store unavailable: " + a.status().message());
  if (!*a) return HttpResponse::problem(404, "no alert with id " + id->hex());
  return HttpResponse::json(std::move(**a));
}

HttpResponse list_events(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "cursor", "field"}); bad.status) return bad;
  PageParams pp;
  if (auto bad = parse_page_params(ctx, req, pp); bad.status) return bad;
  store::EventQuery q;
  q.since = pp.since;
  q.until = pp.until;
  q.limit = pp.limit;
  q.cursor = pp.cursor;
  for (const auto& [k, v] : req.query) {
    if (k != "field") continue;
    if (q.filters.size() == 16) return HttpResponse::problem(400, "parameter 'field' is given more than 16 times");
    store::EventFilter f;
    const size_t op = v.find_first_of("=~");
    f.path = v.substr(0, op);
    if (op == std::string::npos) {
      f.op = store::EventFilter::Op::kExists;
    } else {
      f.op = v[op] == '=' ? store::EventFilter::Op::kEquals : store::EventFilter::Op::kContains;
      f.value = v.substr(op + 1);
    }
    if (f.path.empty() || f.path.size() > 512 || f.path.front() == '.' || f.path.back() == '.' ||
        f.path.find("..") != std::string::npos) {
      return HttpResponse::problem(400, "parameter 'field': '" + v +
                                            "' must be PATH=VALUE, PATH~VALUE or PATH with a dotted PATH such as Event.System.Computer");
    }
    q.filters.push_back(std::move(f));
  }
  auto page = ctx.store->query_events(q);
  if (!page) return store_problem(page.status());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("events");
  w.StartArray();
  for (const auto& e : page->events) {
    w.StartObject();
    w.Key("time");
    str(format_rfc3339(e.time));
    w.Key("stream");
    str(e.stream);
    w.Key("partition");
    w.Int(e.partition);
    w.Key("offset");
    w.Int64(e.offset);
    // Only valid JSON is embedded as is (the ingest parser skips what no rule reads).
    if (is_valid_json(e.payload)) {
      w.Key("event");
      w.RawValue(e.payload.data(), e.payload.size(), rapidjson::kObjectType);
    } else {
      w.Key("event_raw");
      str(e.payload);
    }
    w.EndObject();
  }
  w.EndArray();
  write_page_tail(w, page->events.size(), page->next_cursor, page->scanned, page->partial);
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

HttpResponse create_checkpoint(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"name"}); bad.status) return bad;
  if (ctx.checkpoint_dir.empty()) return HttpResponse::problem(404, "checkpoints are not configured on this server");
  const auto name = req.param("name");
  if (!name) return HttpResponse::problem(400, "parameter 'name' is required");
  const bool ok = !name->empty() && name->size() <= 64 && name->front() != '.' &&
                  std::all_of(name->begin(), name->end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
                  });
  if (!ok) return HttpResponse::problem(400, "parameter 'name' must be 1 to 64 of [A-Za-z0-9._-], not starting with '.'");
  std::error_code ec;
  std::filesystem::create_directories(ctx.checkpoint_dir, ec);
  if (ec) return HttpResponse::problem(500, "cannot create checkpoint directory '" + ctx.checkpoint_dir + "': " + ec.message());
  const std::string path = (std::filesystem::path(ctx.checkpoint_dir) / std::string(*name)).string();
  if (std::filesystem::exists(path, ec)) return HttpResponse::problem(409, "checkpoint '" + std::string(*name) + "' already exists");
  if (auto s = ctx.store->checkpoint(path); !s) return HttpResponse::problem(500, "checkpoint failed: " + s.message());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("name");
  w.String(name->data(), static_cast<rapidjson::SizeType>(name->size()));
  w.Key("path");
  w.String(path.data(), static_cast<rapidjson::SizeType>(path.size()));
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()), 201);
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
  r.set_tokens(ctx.tokens);
  auto open_if = [](bool open) { return open ? Access::kOpen : Access::kReader; };
  r.add("GET", "/healthz", [](const HttpRequest&) { return HttpResponse::json(R"({"status":"ok"})"); }, open_if(ctx.open_healthz));
  r.add("GET", "/readyz", [ctx](const HttpRequest&) {
    if (!ctx.ready || ctx.ready()) return HttpResponse::json(R"({"status":"ready"})");
    return HttpResponse::problem(503, "not ready: the pipeline is not consuming or the store is not writable");
  }, open_if(ctx.open_readyz));
  r.add("GET", "/metrics", [ctx](const HttpRequest&) {
    HttpResponse res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = ctx.metrics->render_prometheus();
    return res;
  }, open_if(ctx.open_metrics));
  r.add("GET", "/api/v1/alerts", [ctx](const HttpRequest& req) { return list_alerts(ctx, req); });
  r.add("GET", "/api/v1/alerts/{id}", [ctx](const HttpRequest& req) { return get_alert(ctx, req); });
  r.add("GET", "/api/v1/events", [ctx](const HttpRequest& req) { return list_events(ctx, req); });
  r.add("GET", "/api/v1/openapi.json", [](const HttpRequest& req) {
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    return HttpResponse::json(kOpenApiJson);
  });
  r.add("POST", "/api/v1/admin/checkpoints", [ctx](const HttpRequest& req) { return create_checkpoint(ctx, req); },
        Access::kAdmin);
  return r;
}

}  // namespace vigil::api
