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
#include "vigil/api/openapi_json.h"
#include "vigil/core/event.h"
#include "vigil/core/json_check.h"

namespace vigil::api {

namespace {

constexpr size_t kMaxLimit = 1000;

HttpResponse unknown_params(const HttpRequest& req,
                            std::initializer_list<std::string_view> allowed) {
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

// The `since` and `until` parameters (RFC 3339, epoch ms or a duration ago) over the
// defaults in `since` and `until`.
HttpResponse parse_window(const ApiContext& ctx, const HttpRequest& req, TimeMs& since,
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

HttpResponse parse_page_params(const ApiContext& ctx, const HttpRequest& req, PageParams& p,
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

HttpResponse store_problem(const Status& s) {
  if (s.code() == Code::kInvalidArgument)
    return HttpResponse::problem(400, "parameter 'cursor': " + s.message());
  return HttpResponse::problem(503, "store unavailable: " + s.message());
}

template <typename Writer>
void write_page_tail(Writer& w, size_t count, const std::string& next_cursor, size_t scanned,
                     bool partial) {
  w.Key("count");
  w.Uint64(count);
  w.Key("next_cursor");
  if (next_cursor.empty())
    w.Null();
  else
    w.String(next_cursor.data(), static_cast<rapidjson::SizeType>(next_cursor.size()));
  w.Key("scanned");
  w.Uint64(scanned);
  w.Key("partial");
  w.Bool(partial);
}

// A RapidJSON output stream that writes straight into a response body, so that a page of
// stored documents is copied once (see write_raw_json) rather than through a StringBuffer.
class BodyStream {
 public:
  using Ch = char;
  explicit BodyStream(std::string& out) : out_(out) {}
  void Put(char c) { out_.push_back(c); }
  void Flush() {}
  void append(std::string_view s) { out_.append(s); }

 private:
  std::string& out_;
};
using BodyWriter = rapidjson::Writer<BodyStream>;

// Writes a stored JSON document as the next value. RapidJSON's RawValue copies byte by byte
// (a third of the CPU of a 100-alert page); this lets the writer place the separator, then
// appends the document in one block. `raw` must be valid JSON.
void write_raw_json(BodyWriter& w, BodyStream& out, std::string_view raw) {
  w.RawValue("", 0, rapidjson::kObjectType);
  out.append(raw);
}

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
  q.since = pp.since;
  q.until = pp.until;
  q.limit = pp.limit;
  q.cursor = pp.cursor;
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
  if (auto bad = unknown_params(req, {}); bad.status) return bad;
  const auto id = store::AlertId::from_hex(req.path_param("id"));
  if (!id) return HttpResponse::problem(400, "alert id must be 32 hexadecimal digits");
  auto a = ctx.store->get_alert(*id);
  if (!a) return HttpResponse::problem(503, "store unavailable: " + a.status().message());
  if (!*a) return HttpResponse::problem(404, "no alert with id " + id->hex());
  return HttpResponse::json(std::move(**a));
}

HttpResponse list_events(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "cursor", "field"}); bad.status)
    return bad;
  PageParams pp;
  const std::string binding = cursor_binding("events", req);
  if (auto bad = parse_page_params(ctx, req, pp, binding); bad.status) return bad;
  store::EventQuery q;
  q.since = pp.since;
  q.until = pp.until;
  q.limit = pp.limit;
  q.cursor = pp.cursor;
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

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Which logsource of a mapping an event belongs to (the first whose `where` holds) and its host.
class EventClassifier {
 public:
  explicit EventClassifier(const match::FieldMapping* mapping) : mapping_(mapping) {
    if (!mapping_) return;
    if (!mapping_->host_field().empty())
      host_slot_ = static_cast<int32_t>(fields_.add(mapping_->host_field()));
    for (const auto& ls : mapping_->logsources()) {
      auto& checks = where_.emplace_back();
      for (const auto& [path, values] : ls.where) checks.emplace_back(fields_.add(path), &values);
    }
  }
  // False when the event is not a JSON object.
  bool classify(std::string_view payload, std::string& logsource, std::string& host) {
    logsource = "(none)";
    host = "(unknown)";
    if (!mapping_) return true;
    if (parser_.parse(payload, fields_, event_) != ParseError::kNone) return false;
    if (host_slot_ >= 0 && event_.field(static_cast<uint32_t>(host_slot_)).present()) {
      host.assign(event_.field(static_cast<uint32_t>(host_slot_)).text);
    }
    for (size_t i = 0; i < where_.size(); ++i) {
      bool all = true;
      for (const auto& [slot, values] : where_[i]) {
        const FieldValue& v = event_.field(slot);
        all = v.present() && std::any_of(values->begin(), values->end(),
                                         [&](const std::string& w) { return iequal(w, v.text); });
        if (!all) break;
      }
      if (all) {
        logsource = mapping_->logsources()[i].name;
        break;
      }
    }
    return true;
  }

 private:
  const match::FieldMapping* mapping_;
  FieldSet fields_;
  int32_t host_slot_ = -1;
  std::vector<std::vector<std::pair<uint32_t, const std::vector<std::string>*>>> where_;
  EventParser parser_;
  Event event_;
};

HttpResponse event_stats(const ApiContext& ctx, const HttpRequest& req) {
  if (auto bad = unknown_params(req, {"since", "until", "bucket", "by", "top", "max_scan"});
      bad.status)
    return bad;
  const TimeMs now = ctx.clock->now_ms();
  TimeMs since = now - 24 * 3600 * 1000LL, until = now;
  if (auto bad = parse_window(ctx, req, since, until); bad.status) return bad;
  int64_t bucket = 3600 * 1000;
  if (auto v = req.param("bucket")) {
    auto d = parse_duration_ms(*v);
    if (!d || *d < 60000 || *d > 7 * 24 * 3600 * 1000LL) {
      return HttpResponse::problem(
          400, "parameter 'bucket' must be a duration from 1m to 7d, such as 1h");
    }
    bucket = *d;
  }
  if ((until - since) / bucket > 1000) {
    return HttpResponse::problem(
        400, "the window holds more than 1000 buckets: widen 'bucket' or narrow 'since'/'until'");
  }
  const std::string by(req.param("by").value_or("logsource"));
  if (by != "logsource" && by != "host")
    return HttpResponse::problem(400, "parameter 'by' must be logsource or host");
  size_t top = 20, max_scan = 1000000;
  for (auto [name, out, hi] : {std::tuple{"top", &top, size_t{1000}},
                               std::tuple{"max_scan", &max_scan, size_t{10000000}}}) {
    if (auto v = req.param(name)) {
      size_t n = 0;
      auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
      if (ec != std::errc() || end != v->data() + v->size() || n < 1 || n > hi) {
        return HttpResponse::problem(400, std::string("parameter '") + name +
                                              "' must be an integer from 1 to " +
                                              std::to_string(hi));
      }
      *out = n;
    }
  }
  // Oldest first: per bucket, per group.
  const TimeMs first = since - (((since % bucket) + bucket) % bucket);
  std::vector<std::map<std::string, uint64_t>> buckets(
      static_cast<size_t>((until - first + bucket - 1) / bucket));
  std::map<std::string, uint64_t> totals;
  uint64_t scanned = 0, invalid = 0;
  bool partial = false;
  EventClassifier classifier(ctx.mapping);
  std::string logsource, host;
  auto s = ctx.store->scan_events(since, until, [&](const store::StoredEvent& e) {
    if (scanned >= max_scan) {
      partial = true;
      return false;
    }
    ++scanned;
    if (!classifier.classify(e.payload, logsource, host)) {
      ++invalid;
      return true;
    }
    const std::string& key = by == "host" ? host : logsource;
    const size_t b = static_cast<size_t>((e.time - first) / bucket);
    if (b < buckets.size()) ++buckets[b][key];
    ++totals[key];
    return true;
  });
  if (!s) return store_problem(s);
  // The `top` largest groups; the rest are summed as "(other)".
  std::vector<std::pair<std::string, uint64_t>> ranked(totals.begin(), totals.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::set<std::string> kept;
  for (size_t i = 0; i < ranked.size() && i < top; ++i) kept.insert(ranked[i].first);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("since");
  w.String(format_rfc3339(since));
  w.Key("until");
  w.String(format_rfc3339(until));
  w.Key("bucket_ms");
  w.Int64(bucket);
  w.Key("by");
  w.String(by);
  w.Key("events");
  w.Uint64(scanned - invalid);
  w.Key("invalid");
  w.Uint64(invalid);
  w.Key("scanned");
  w.Uint64(scanned);
  w.Key("partial");
  w.Bool(partial);
  auto groups = [&](const std::map<std::string, uint64_t>& m) {
    w.StartObject();
    uint64_t other = 0;
    for (const auto& [k, n] : m) {
      if (!kept.count(k)) {
        other += n;
        continue;
      }
      w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
      w.Uint64(n);
    }
    if (other) {
      w.Key("(other)");
      w.Uint64(other);
    }
    w.EndObject();
  };
  w.Key("totals");
  groups(totals);
  w.Key("buckets");
  w.StartArray();
  for (size_t i = 0; i < buckets.size(); ++i) {
    uint64_t n = 0;
    for (const auto& [k, c] : buckets[i]) n += c;
    w.StartObject();
    w.Key("start");
    w.String(format_rfc3339(first + static_cast<TimeMs>(i) * bucket));
    w.Key("events");
    w.Uint64(n);
    w.Key("groups");
    groups(buckets[i]);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

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

HttpResponse from_status(const Status& s) {
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

void add_content_routes(Router& r, const ApiContext& ctx) {
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
  r.add(
      "POST", "/api/v1/bundles/{version}/dry-run",
      [ctx, content](const HttpRequest& req) {
        if (!content)
          return HttpResponse::problem(404, "rule content is not served by this server");
        if (auto bad = unknown_params(req, {"since", "until", "max_events"}); bad.status)
          return bad;
        auto v = parse_version(req.path_param("version"));
        if (!v) return bad_version(req.path_param("version"));
        TimeMs since = ctx.clock->now_ms() - 3600 * 1000, until = INT64_MAX;
        if (auto bad = parse_window(ctx, req, since, until); bad.status) return bad;
        size_t max_events = 1000000;
        if (auto p = req.param("max_events")) {
          auto [end, ec] = std::from_chars(p->data(), p->data() + p->size(), max_events);
          if (ec != std::errc() || end != p->data() + p->size() || max_events < 1 ||
              max_events > 10000000) {
            return HttpResponse::problem(
                400, "parameter 'max_events' must be an integer from 1 to 10000000");
          }
        }
        auto j = content->dry_run(*v, since, until, max_events);
        return j ? HttpResponse::json(std::move(*j)) : from_status(j.status());
      },
      Access::kAdmin, Router::Cost::kContent);
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
  auto pages = std::make_shared<AlertPages>(ctx);
  r.add("GET", "/api/v1/alerts",
        [ctx, pages](const HttpRequest& req) { return list_alerts(ctx, *pages, req); });
  r.add("GET", "/api/v1/alerts/{id}",
        [ctx](const HttpRequest& req) { return get_alert(ctx, req); });
  r.add(
      "GET", "/api/v1/events", [ctx](const HttpRequest& req) { return list_events(ctx, req); },
      Access::kReader, Router::Cost::kSlow);
  r.add(
      "GET", "/api/v1/events/stats",
      [ctx](const HttpRequest& req) { return event_stats(ctx, req); }, Access::kReader,
      Router::Cost::kSlow);
  r.add("GET", "/api/v1/rules",
        [ctx](const HttpRequest& req) { return list_rules(ctx, req, false); });
  r.add("GET", "/api/v1/rules/{id}",
        [ctx](const HttpRequest& req) { return list_rules(ctx, req, true); });
  r.add("GET", "/api/v1/stats", [ctx](const HttpRequest& req) {
    if (auto bad = unknown_params(req, {}); bad.status) return bad;
    if (!ctx.stats)
      return HttpResponse::problem(404, "pipeline statistics are not served by this server");
    return HttpResponse::json(ctx.stats());
  });
  add_content_routes(r, ctx);
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
