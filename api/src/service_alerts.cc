#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "cursor.h"
#include "page_cache.h"
#include "service_internal.h"
#include "vigil/api/openapi_json.h"
#include "vigil/core/event.h"
#include "vigil/core/json_check.h"

namespace vigil::api {

using namespace detail;

namespace {

// Alert list answers cached until the next alert is written (page_cache.h).
struct AlertPages {
  explicit AlertPages(const ApiContext& ctx)
      : cache(ctx.alert_page_cache_bytes),
        hits(ctx.metrics ? &ctx.metrics->counter("vigil_api_alert_page_cache_hits_total",
                                                 "Alert list requests answered from the page cache")
                         : nullptr),
        misses(ctx.metrics ? &ctx.metrics->counter("vigil_api_alert_page_cache_misses_total",
                                                   "Alert list requests computed from the store")
                           : nullptr) {}
  PageCache cache;
  Counter* hits;
  Counter* misses;
};

// A key naming every parameter of the query exactly (lengths before values, so that no two
// queries share one).
std::string alert_query_key(const store::AlertQuery& q, bool full) {
  std::string key;
  key.reserve(96 + q.cursor.size() + q.rule_id.size() + q.host.size() + q.tag.size() +
              q.text.size());
  auto add = [&](std::string_view v) {
    key += std::to_string(v.size());
    key += ':';
    key.append(v);
  };
  add(std::to_string(q.since));
  add(std::to_string(q.until));
  add(std::to_string(q.limit));
  add(std::to_string(q.levels));
  add(std::to_string(q.max_scan));
  add(full ? "full" : "summary");
  for (const std::string* v : {&q.cursor, &q.rule_id, &q.host, &q.tag, &q.text}) add(*v);
  return key;
}

HttpResponse list_alerts(const ApiContext& ctx, AlertPages& pages, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "rule", "host", "cursor",
                                      "severity", "tag", "q", "view"});
      bad.status) {
    return bad;
  }
  // Lists show summaries (no matched fields, no event: GET /alerts/{id} has them) unless
  // view=full asks for whole documents.
  bool full = false;
  if (auto v = req.param("view")) {
    if (*v != "summary" && *v != "full")
      return HttpResponse::problem(400, "parameter 'view' must be summary or full");
    full = *v == "full";
  }
  PageParams pp;
  const std::string binding = cursor_binding("alerts", req);
  if (auto bad = parse_page_params(ctx, req, pp, binding); bad.status) return bad;
  store::AlertQuery q;
  pp.apply_to(q);
  for (const char* name : {"rule", "host", "tag", "q"}) {
    if (auto v = req.param(name)) {
      if (v->empty())
        return HttpResponse::problem(400,
                                     std::string("parameter '") + name + "' must not be empty");
      if (v->size() > 1024)
        return HttpResponse::problem(
            400, std::string("parameter '") + name + "' is longer than 1024 bytes");
      std::string& field = name[0] == 'r'   ? q.rule_id
                           : name[0] == 'h' ? q.host
                           : name[0] == 't' ? q.tag
                                            : q.text;
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
        return HttpResponse::problem(
            400, "parameter 'severity': '" + std::string(name) +
                     "' is not one of informational, low, medium, high, critical");
      }
      q.levels |= 1u << static_cast<unsigned>(*level);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }

  // A window relative to now ("since=15m") names another range at each request: not kept.
  const bool relative = (req.param("since") && parse_duration_ms(*req.param("since"))) ||
                        (req.param("until") && parse_duration_ms(*req.param("until")));
  std::string key;
  uint64_t version = 0;
  if (!relative && ctx.alert_page_cache_bytes > 0) {
    key = alert_query_key(q, full) + binding;  // the next cursor is sealed to the binding
    version = ctx.store->alerts_version();
    if (auto hit = pages.cache.find(key, version)) {
      if (pages.hits) pages.hits->inc();
      return HttpResponse::json(*hit);
    }
    if (pages.misses) pages.misses->inc();
  }

  std::string body;
  body.reserve(1024 + 1024 * q.limit);
  BodyStream out(body);
  BodyWriter w(out);
  w.StartObject();
  w.Key("alerts");
  w.StartArray();
  auto page = ctx.store->query_alerts(q, [&](const store::StoredAlert& a) {
    if (full || a.summary_head.empty()) {
      write_raw_json(w, out, a.json);
    } else {
      write_raw_json(w, out, a.summary_head);
      out.append("}");
    }
  });
  if (!page) return store_problem(page.status());
  w.EndArray();
  write_page_tail(w, page->count, seal_cursor(*ctx.cursor_key, binding, page->next_cursor),
                  page->scanned, page->partial);
  w.EndObject();
  // Kept only if no alert was written meanwhile: the page is then the answer at `version`.
  if (!key.empty() && ctx.store->alerts_version() == version)
    pages.cache.insert(key, version, body);
  return HttpResponse::json(std::move(body));
}

HttpResponse get_alert(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"scope"}); bad.status) return bad;
  const auto id = store::AlertId::from_hex(req.path_param("id"));
  if (!id) return HttpResponse::problem(400, "alert id must be 32 hexadecimal digits");
  auto a = ctx.store->get_alert(*id);
  if (!a) return HttpResponse::problem(503, "store unavailable: " + a.status().message());
  if (!*a) return HttpResponse::problem(404, "no alert with id " + id->hex());
  return HttpResponse::json(std::move(**a));
}

HttpResponse list_events(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "cursor", "field", "scope"});
      bad.status)
    return bad;
  PageParams pp;
  const std::string binding = cursor_binding("events", req);
  if (auto bad = parse_page_params(ctx, req, pp, binding); bad.status) return bad;
  store::EventQuery q;
  pp.apply_to(q);
  for (const auto& [k, v] : req.query) {
    if (k != "field") continue;
    if (q.filters.size() == 16)
      return HttpResponse::problem(400, "parameter 'field' is given more than 16 times");
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
                                            "' must be PATH=VALUE, PATH~VALUE or PATH with a "
                                            "dotted PATH such as Event.System.Computer");
    }
    q.filters.push_back(std::move(f));
  }
  auto page = ctx.store->query_events(q);
  if (!page) return store_problem(page.status());
  std::string body;
  size_t bytes = 1024;
  for (const auto& e : page->events) bytes += e.payload.size() + 128;
  body.reserve(bytes);
  BodyStream out(body);
  BodyWriter w(out);
  auto str = [&](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
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
      write_raw_json(w, out, e.payload);
    } else {
      w.Key("event_raw");
      str(e.payload);
    }
    w.EndObject();
  }
  w.EndArray();
  write_page_tail(w, page->events.size(), seal_cursor(*ctx.cursor_key, binding, page->next_cursor),
                  page->scanned, page->partial);
  w.EndObject();
  return HttpResponse::json(std::move(body));
}

}  // namespace

void detail::add_alert_routes(Router& r, const ApiContext& ctx) {
  auto pages = std::make_shared<AlertPages>(ctx);
  r.add("GET", "/api/v1/alerts",
        [ctx, pages](const HttpRequest& req) { return list_alerts(ctx, *pages, req); });
  // In cluster mode an alert not here yet is asked of the peers: that can take the peer
  // timeout, so it runs on the slow pool there.
  r.add("GET", "/api/v1/alerts/{id}",
        scoped(
            ctx, [ctx](const HttpRequest& req) { return get_alert(ctx, req); }, &merged_alert),
        Access::kReader, ctx.cluster ? Router::Cost::kSlow : Router::Cost::kFast);
  r.add("GET", "/api/v1/events",
        scoped(
            ctx, [ctx](const HttpRequest& req) { return list_events(ctx, req); }, &merged_events),
        Access::kReader, Router::Cost::kSlow);
}

}  // namespace vigil::api
