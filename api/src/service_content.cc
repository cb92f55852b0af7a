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

// One rule (or correlation) as /api/v1/rules shows it.
void write_rule(rapidjson::Writer<rapidjson::StringBuffer>& w, const match::RuleInfo& info,
                uint64_t count, uint64_t errors, const match::CompiledCorrelation* correlation,
                const match::RuleSet& rules, double cost_ns) {
  auto str = [&](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("id");
  str(info.id);
  w.Key("title");
  str(info.title);
  w.Key("level");
  str(info.level);
  w.Key("tags");
  w.StartArray();
  for (const auto& t : info.tags) str(t);
  w.EndArray();
  w.Key("source");
  str(info.source);
  w.Key("kind");
  str(correlation ? "correlation" : "detection");
  w.Key("emits_alerts");
  w.Bool(info.emit);
  // The Sigma filters ANDed into its condition ("id: title").
  w.Key("filters");
  w.StartArray();
  for (const auto& f : info.filters) str(f);
  w.EndArray();
  // Detections: events matched since start; correlations: alerts raised since start.
  w.Key(correlation ? "alerts" : "matches");
  w.Uint64(count);
  // Events the rule could not be evaluated on (a regex at PCRE2's backtracking limit);
  // the other rules were evaluated on them.
  w.Key("errors");
  w.Uint64(errors);
  w.Key("cost_ns_per_event");  // measured when the bundle was validated
  if (cost_ns < 0)
    w.Null();
  else
    w.Double(cost_ns);
  if (correlation) {
    w.Key("correlation");
    w.StartObject();
    w.Key("type");
    str(match::correlation_type_name(correlation->spec.type));
    w.Key("rules");
    w.StartArray();
    for (uint32_t b : correlation->bases) str(rules.rules()[b].id);
    w.EndArray();
    w.Key("group_by");
    w.StartArray();
    for (const auto& g : correlation->spec.group_by) str(g);
    w.EndArray();
    w.Key("timespan_ms");
    w.Int64(correlation->spec.timespan_ms);
    w.EndObject();
  }
  w.EndObject();
}

HttpResponse list_rules(const ApiContext& ctx, const HttpRequest& req, bool one) {
  if (auto bad = unknown_params(req, {}); bad.status) return bad;
  if (!ctx.content) return HttpResponse::problem(404, "rules are not served by this server");
  const auto bundle = ctx.content->active();
  const auto& rs = *bundle->rules;
  const std::string_view id = one ? req.path_param("id") : std::string_view();
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto cost = [&](const std::string& rule_id) {
    auto it = bundle->cost_ns.find(rule_id);
    return it == bundle->cost_ns.end() ? -1.0 : it->second;
  };
  if (!one) {
    w.StartObject();
    w.Key("bundle");
    w.Uint64(bundle->version);
    w.Key("rules");
    w.StartArray();
  }
  size_t n = 0;
  for (uint32_t i = 0; i < rs.rules().size(); ++i) {
    if (one && rs.rules()[i].id != id) continue;
    write_rule(w, rs.rules()[i], bundle->stats ? bundle->stats->matches(i) : 0,
               bundle->stats ? bundle->stats->errors(i) : 0, nullptr, rs, cost(rs.rules()[i].id));
    ++n;
    if (one) break;
  }
  for (uint32_t i = 0; i < rs.correlations().size() && !(one && n); ++i) {
    if (one && rs.correlations()[i].info.id != id) continue;
    write_rule(w, rs.correlations()[i].info,
               bundle->stats ? bundle->stats->correlation_alerts(i) : 0, 0, &rs.correlations()[i],
               rs, -1);
    ++n;
  }
  if (one) {
    if (n == 0)
      return HttpResponse::problem(404, "no active rule with id '" + std::string(id) + "'");
  } else {
    w.EndArray();
    w.Key("count");
    w.Uint64(n);
    w.EndObject();
  }
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

std::optional<uint64_t> parse_version(std::string_view v) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n == 0) return std::nullopt;
  return n;
}

HttpResponse bad_version(std::string_view v) {
  return HttpResponse::problem(400,
                               "bundle version '" + std::string(v) + "' is not a positive integer");
}

}  // namespace

void detail::add_rule_routes(Router& r, const ApiContext& ctx) {
  r.add("GET", "/api/v1/rules",
        [ctx](const HttpRequest& req) { return list_rules(ctx, req, false); });
  r.add("GET", "/api/v1/rules/{id}",
        [ctx](const HttpRequest& req) { return list_rules(ctx, req, true); });
}

namespace {

// GET and POST /api/v1/bundles, GET /api/v1/bundles/{version}[/archive], POST
// /api/v1/bundles/{version}/dry-run.
void add_bundle_routes(Router& r, const ApiContext& ctx) {
  auto content = ctx.content;
  r.add("GET", "/api/v1/bundles", [content](const HttpRequest& req) {
    if (!content) return HttpResponse::problem(404, "rule content is not served by this server");
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    auto j = content->list_bundles();
    return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
  });
  r.add(
      "POST", "/api/v1/bundles",
      [content](const HttpRequest& req) {
        if (!content)
          return HttpResponse::problem(404, "rule content is not served by this server");
        if (auto bad = unknown_params(req, {}); bad.status) return bad;
        if (req.body.empty())
          return HttpResponse::problem(
              400, "the request body must be a bundle archive (tar, tar.gz or zip)");
        auto sub = content->submit(req.body, req.principal);
        if (!sub) {
          if (sub.status().code() == Code::kInvalidArgument)
            return HttpResponse::problem(400, sub.status().message());
          return from_status(sub.status());
        }
        return HttpResponse::json(std::move(sub->json), !sub->stored ? 200
                                                        : sub->valid ? 201
                                                                     : 422);
      },
      Access::kAdmin, Router::Cost::kContent);
  r.add("GET", "/api/v1/bundles/{version}", [content](const HttpRequest& req) {
    if (!content) return HttpResponse::problem(404, "rule content is not served by this server");
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    auto v = parse_version(req.path_param("version"));
    if (!v) return bad_version(req.path_param("version"));
    auto j = content->bundle(*v);
    return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
  });
  r.add("GET", "/api/v1/bundles/{version}/archive", [content](const HttpRequest& req) {
    if (!content) return HttpResponse::problem(404, "rule content is not served by this server");
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    auto v = parse_version(req.path_param("version"));
    if (!v) return bad_version(req.path_param("version"));
    auto tar = content->bundle_archive(*v);
    if (!tar) return from_status(tar.status());
    HttpResponse res;
    res.content_type = "application/x-tar";
    res.body = std::move(*tar);
    return res;
  });
  r.add("POST", "/api/v1/bundles/{version}/dry-run",
        scoped(
            ctx,
            [ctx, content](const HttpRequest& req) {
              if (!content)
                return HttpResponse::problem(404, "rule content is not served by this server");
              if (auto bad = unknown_params(req, {"since", "until", "max_events", "scope"});
                  bad.status)
                return bad;
              auto v = parse_version(req.path_param("version"));
              if (!v) return bad_version(req.path_param("version"));
              DryRunParams p;
              if (auto bad = parse_dry_run_params(ctx, req, p); bad.status) return bad;
              auto j = content->dry_run(*v, p.since, p.until, p.max_events);
              return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
            },
            &merged_dry_run),
        Access::kAdmin, Router::Cost::kContent);
  r.add("POST", "/api/v1/bundles/dry-run",
        scoped(
            ctx,
            [ctx, content](const HttpRequest& req) {
              if (!content)
                return HttpResponse::problem(404, "rule content is not served by this server");
              if (auto bad =
                      unknown_params(req, {"since", "until", "max_events", "lenient", "scope"});
                  bad.status)
                return bad;
              if (req.body.empty())
                return HttpResponse::problem(
                    400, "the request body must be a bundle archive (tar, tar.gz or zip)");
              DryRunParams p;
              if (auto bad = parse_dry_run_params(ctx, req, p); bad.status) return bad;
              auto j =
                  content->dry_run_archive(req.body, p.since, p.until, p.max_events, p.lenient);
              if (!j && j.status().code() == Code::kInvalidArgument)
                return HttpResponse::problem(400, j.status().message());
              return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
            },
            &merged_dry_run),
        Access::kAdmin, Router::Cost::kContent);
}

// GET /api/v1/rollout, /api/v1/rollout/audit; POST /api/v1/rollout/{action}.
void add_rollout_routes(Router& r, const std::shared_ptr<ContentService>& content) {
  r.add("GET", "/api/v1/rollout", [content](const HttpRequest& req) {
    if (!content) return HttpResponse::problem(404, "rule content is not served by this server");
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    auto j = content->rollout_state();
    return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
  });
  r.add("GET", "/api/v1/rollout/audit", [content](const HttpRequest& req) {
    if (!content) return HttpResponse::problem(404, "rule content is not served by this server");
    if (auto bad = unknown_params(req, {"limit"}); bad.status) return bad;
    size_t limit = 100;
    if (auto p = req.param("limit")) {
      auto [end, ec] = std::from_chars(p->data(), p->data() + p->size(), limit);
      if (ec != std::errc() || end != p->data() + p->size() || limit < 1 || limit > kMaxLimit) {
        return HttpResponse::problem(
            400, "parameter 'limit' must be an integer from 1 to " + std::to_string(kMaxLimit));
      }
    }
    auto j = content->audit(limit);
    return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
  });
  r.add(
      "POST", "/api/v1/rollout/{action}",
      [content](const HttpRequest& req) {
        if (!content)
          return HttpResponse::problem(404, "rule content is not served by this server");
        const std::string action(req.path_param("action"));
        if (action == "policy") {
          if (auto bad = unknown_params(req, {"policy"}); bad.status) return bad;
          auto p = req.param("policy");
          if (!p || (*p != "staged" && *p != "immediate" && *p != "pinned")) {
            return HttpResponse::problem(400,
                                         "parameter 'policy' must be staged, immediate or pinned");
          }
          if (auto s = content->set_policy(*p, req.principal); !s) return from_status(s);
        } else if (action == "start" || action == "promote" || action == "pause" ||
                   action == "resume" || action == "rollback") {
          if (auto bad = unknown_params(req, {"version", "reason"}); bad.status) return bad;
          uint64_t version = 0;
          if (action == "start") {
            auto p = req.param("version");
            if (!p)
              return HttpResponse::problem(400,
                                           "parameter 'version' is required to start a rollout");
            auto v = parse_version(*p);
            if (!v) return bad_version(*p);
            version = *v;
          } else if (req.param("version")) {
            return HttpResponse::problem(400, "parameter 'version' is only for start");
          }
          const std::string reason(req.param("reason").value_or(""));
          if (reason.size() > 1000)
            return HttpResponse::problem(400, "parameter 'reason' is longer than 1000 characters");
          if (auto s = content->rollout_action(action, version, req.principal, reason); !s)
            return from_status(s);
        } else {
          return HttpResponse::problem(404,
                                       "unknown rollout action '" + action +
                                           "' (start, promote, pause, resume, rollback, policy)");
        }
        auto j = content->rollout_state();
        return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
      },
      Access::kAdmin);
}

}  // namespace

void detail::add_content_routes(Router& r, const ApiContext& ctx) {
  add_bundle_routes(r, ctx);
  add_rollout_routes(r, ctx.content);
}

}  // namespace vigil::api
