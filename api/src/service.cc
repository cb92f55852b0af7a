#include "vigil/api/service.h"

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

HttpResponse detail::unknown_params(const HttpRequest& req,
                                    std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : req.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return HttpResponse::problem(400, "unknown query parameter '" + k + "'");
    }
  }
  return HttpResponse{0, {}, {}};
}

HttpResponse detail::parse_window(const ApiContext& ctx, const HttpRequest& req, TimeMs& since,
                                  TimeMs& until) {
  const TimeMs now = ctx.clock->now_ms();
  for (const char* name : {"since", "until"}) {
    if (auto v = req.param(name)) {
      auto t = parse_time_param(*v, now);
      if (!t) {
        return HttpResponse::problem(
            400, std::string("parameter '") + name +
                     "' must be an RFC 3339 time, epoch milliseconds or a duration such as 15m");
      }
      (name[0] == 's' ? since : until) = *t;
    }
  }
  if (since >= until) return HttpResponse::problem(400, "parameter 'since' must be before 'until'");
  return HttpResponse{0, {}, {}};
}

HttpResponse detail::parse_page_params(const ApiContext& ctx, const HttpRequest& req, PageParams& p,
                                       std::string_view binding) {
  if (auto bad = parse_window(ctx, req, p.since, p.until); bad.status) return bad;
  if (auto v = req.param("limit")) {
    size_t limit = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), limit);
    if (ec != std::errc() || end != v->data() + v->size() || limit < 1 || limit > kMaxLimit) {
      return HttpResponse::problem(
          400, "parameter 'limit' must be an integer from 1 to " + std::to_string(kMaxLimit));
    }
    p.limit = limit;
  }
  if (auto v = req.param("cursor")) {
    if (v->empty()) return HttpResponse::problem(400, "parameter 'cursor' must not be empty");
    const size_t dot = v->rfind('.');
    const std::string_view position =
        dot == std::string_view::npos ? std::string_view() : v->substr(0, dot);
    const std::string expected =
        position.empty() ? std::string() : cursor_mac(*ctx.cursor_key, binding, position);
    const std::string_view given =
        dot == std::string_view::npos ? std::string_view() : v->substr(dot + 1);
    if (expected.empty() || given.size() != expected.size() ||
        CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0) {
      return HttpResponse::problem(
          400,
          "parameter 'cursor' is not a cursor of this route and query: a cursor "
          "continues the query that returned it, with the same parameters");
    }
    p.cursor = std::string(position);
  }
  return HttpResponse{0, {}, {}};
}

HttpResponse detail::parse_dry_run_params(const ApiContext& ctx, const HttpRequest& req,
                                          DryRunParams& p) {
  p.since = ctx.clock->now_ms() - 3600 * 1000;
  p.until = INT64_MAX;
  if (auto bad = parse_window(ctx, req, p.since, p.until); bad.status) return bad;
  if (auto v = req.param("max_events")) {
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), p.max_events);
    if (ec != std::errc() || end != v->data() + v->size() || p.max_events < 1 ||
        p.max_events > 10000000) {
      return HttpResponse::problem(400,
                                   "parameter 'max_events' must be an integer from 1 to 10000000");
    }
  }
  if (auto v = req.param("lenient")) {
    if (*v != "true" && *v != "false")
      return HttpResponse::problem(400, "parameter 'lenient' must be true or false");
    p.lenient = *v == "true";
  }
  return HttpResponse{0, {}, {}};
}

HttpResponse detail::store_problem(const Status& s) {
  if (s.code() == Code::kInvalidArgument)
    return HttpResponse::problem(400, "parameter 'cursor': " + s.message());
  return HttpResponse::problem(503, "store unavailable: " + s.message());
}

HttpResponse detail::from_status(const Status& s) {
  switch (s.code()) {
    case Code::kInvalidArgument:
      return HttpResponse::problem(409, s.message());
    case Code::kNotFound:
      return HttpResponse::problem(404, s.message());
    case Code::kUnavailable:
      return HttpResponse::problem(503, s.message());
    default:
      return HttpResponse::problem(500, s.message());
  }
}

namespace {

HttpResponse create_checkpoint(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"name"}); bad.status) return bad;
  if (ctx.checkpoint_dir.empty())
    return HttpResponse::problem(404, "checkpoints are not configured on this server");
  const auto name = req.param("name");
  if (!name) return HttpResponse::problem(400, "parameter 'name' is required");
  const bool ok =
      !name->empty() && name->size() <= 64 && name->front() != '.' &&
      std::all_of(name->begin(), name->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  if (!ok)
    return HttpResponse::problem(
        400, "parameter 'name' must be 1 to 64 of [A-Za-z0-9._-], not starting with '.'");
  std::error_code ec;
  std::filesystem::create_directories(ctx.checkpoint_dir, ec);
  if (ec)
    return HttpResponse::problem(
        500, "cannot create checkpoint directory '" + ctx.checkpoint_dir + "': " + ec.message());
  const std::string path =
      (std::filesystem::path(ctx.checkpoint_dir) / std::string(*name)).string();
  if (std::filesystem::exists(path, ec))
    return HttpResponse::problem(409, "checkpoint '" + std::string(*name) + "' already exists");
  if (auto s = ctx.store->checkpoint(path); !s)
    return HttpResponse::problem(500, "checkpoint failed: " + s.message());
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

Router make_router(const ApiContext& context) {
  ApiContext ctx = context;
  if (!ctx.cursor_key) {
    std::string key(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) !=
        1) {
      throw std::runtime_error("no random bytes for the API's cursor key");
    }
    ctx.cursor_key = std::make_shared<const std::string>(std::move(key));
  }
  Router r;
  r.set_tokens(ctx.tokens);
  auto open_if = [](bool open) { return open ? Access::kOpen : Access::kReader; };
  r.add(
      "GET", "/healthz",
      [ctx](const HttpRequest&) {
        const std::string notice = ctx.notice ? ctx.notice() : std::string();
        if (notice.empty()) return HttpResponse::json(R"({"status":"ok"})");
        rapidjson::StringBuffer sb;
        rapidjson::Writer<rapidjson::StringBuffer> w(sb);
        w.StartObject();
        w.Key("status");
        w.String("ok");
        w.Key("notice");
        w.String(notice);
        w.EndObject();
        return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
      },
      open_if(ctx.open_healthz));
  r.add(
      "GET", "/readyz",
      [ctx](const HttpRequest&) {
        if (ctx.store != nullptr) {
          if (const std::string damage = ctx.store->damage(); !damage.empty()) {
            return HttpResponse::problem(503, "not ready: the store is damaged (" + damage +
                                                  "); restore it from a checkpoint");
          }
        }
        if (!ctx.ready || ctx.ready()) return HttpResponse::json(R"({"status":"ready"})");
        return HttpResponse::problem(
            503, "not ready: the pipeline is not consuming or the store is not writable");
      },
      open_if(ctx.open_readyz));
  r.add(
      "GET", "/metrics",
      [ctx](const HttpRequest&) {
        HttpResponse res;
        res.content_type = "text/plain; version=0.0.4; charset=utf-8";
        res.body = ctx.metrics->render_prometheus();
        return res;
      },
      open_if(ctx.open_metrics));
  detail::add_alert_routes(r, ctx);
  detail::add_event_routes(r, ctx);
  detail::add_rule_routes(r, ctx);
  r.add("GET", "/api/v1/stats",
        scoped(
            ctx,
            [ctx](const HttpRequest& req) {
              if (auto bad = unknown_params(req, {"scope"}); bad.status) return bad;
              if (!ctx.stats)
                return HttpResponse::problem(404,
                                             "pipeline statistics are not served by this server");
              return HttpResponse::json(ctx.stats());
            },
            &merged_stats),
        Access::kReader, Router::Cost::kSlow);
  detail::add_content_routes(r, ctx);
  r.add("GET", "/api/v1/outputs", [ctx](const HttpRequest& req) {
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    if (!ctx.outputs) return HttpResponse::json(R"({"outputs":[]})");
    return HttpResponse::json(ctx.outputs());
  });
  r.add(
      "POST", "/api/v1/outputs/{name}/test",
      [ctx](const HttpRequest& req) {
        if (auto bad = unknown_params(req, {}); bad.status) return bad;
        const std::string name(req.path_param("name"));
        if (!ctx.test_output) return HttpResponse::problem(404, "no output named '" + name + "'");
        const Status s = ctx.test_output(name);
        if (s.code() == Code::kNotFound) return HttpResponse::problem(404, s.message());
        if (!s) return HttpResponse::problem(502, s.message());
        return HttpResponse::json(R"({"delivered":true})");
      },
      Access::kAdmin, Router::Cost::kSlow);
  r.add("GET", "/api/v1/openapi.json", [](const HttpRequest& req) {
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    return HttpResponse::json(kOpenApiJson);
  });
  r.add(
      "POST", "/api/v1/admin/checkpoints",
      [ctx](const HttpRequest& req) { return create_checkpoint(ctx, req); }, Access::kAdmin,
      Router::Cost::kSlow);
  return r;
}

}  // namespace vigil::api