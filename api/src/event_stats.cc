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

// GET /api/v1/events/stats: retained events counted per time bucket, grouped by logsource
// (the server's mapping) or host. Parse, count, render.

namespace vigil::api {

using namespace detail;

namespace {

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

// The query of /api/v1/events/stats, from its parameters.
struct StatsQuery {
  TimeMs since = 0, until = 0;
  int64_t bucket = 3600 * 1000;
  std::string by = "logsource";
  size_t top = 20, max_scan = 1000000;
};

// Per bucket (oldest first) and in total, the events of each group.
struct StatsCounts {
  TimeMs first = 0;  // the start of the first bucket
  std::vector<std::map<std::string, uint64_t>> buckets;
  std::map<std::string, uint64_t> totals;
  uint64_t scanned = 0, invalid = 0;
  bool partial = false;
};

// Status 0 and `q` filled, or a 400 naming the bad parameter.
HttpResponse parse_stats_query(const ApiContext& ctx, const HttpRequest& req, StatsQuery& q) {
  if (auto bad =
          unknown_params(req, {"since", "until", "bucket", "by", "top", "max_scan", "scope"});
      bad.status)
    return bad;
  const TimeMs now = ctx.clock->now_ms();
  q.since = now - 24 * 3600 * 1000LL;
  q.until = now;
  if (auto bad = parse_window(ctx, req, q.since, q.until); bad.status) return bad;
  if (auto v = req.param("bucket")) {
    auto d = parse_duration_ms(*v);
    if (!d || *d < 60000 || *d > 7 * 24 * 3600 * 1000LL) {
      return HttpResponse::problem(
          400, "parameter 'bucket' must be a duration from 1m to 7d, such as 1h");
    }
    q.bucket = *d;
  }
  if ((q.until - q.since) / q.bucket > 1000) {
    return HttpResponse::problem(
        400, "the window holds more than 1000 buckets: widen 'bucket' or narrow 'since'/'until'");
  }
  q.by = std::string(req.param("by").value_or("logsource"));
  if (q.by != "logsource" && q.by != "host")
    return HttpResponse::problem(400, "parameter 'by' must be logsource or host");
  for (auto [name, out, hi] : {std::tuple{"top", &q.top, size_t{1000}},
                               std::tuple{"max_scan", &q.max_scan, size_t{10000000}}}) {
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
  return HttpResponse{0, {}, {}};
}

// Scans the stored events of the window, at most max_scan of them.
Status count_events(const ApiContext& ctx, const StatsQuery& q, StatsCounts& c) {
  c.first = q.since - (((q.since % q.bucket) + q.bucket) % q.bucket);
  c.buckets.resize(static_cast<size_t>((q.until - c.first + q.bucket - 1) / q.bucket));
  EventClassifier classifier(ctx.mapping);
  std::string logsource, host;
  return ctx.store->scan_events(q.since, q.until, [&](const store::StoredEvent& e) {
    if (c.scanned >= q.max_scan) {
      c.partial = true;
      return false;
    }
    ++c.scanned;
    if (!classifier.classify(e.payload, logsource, host)) {
      ++c.invalid;
      return true;
    }
    const std::string& key = q.by == "host" ? host : logsource;
    const size_t b = static_cast<size_t>((e.time - c.first) / q.bucket);
    if (b < c.buckets.size()) ++c.buckets[b][key];
    ++c.totals[key];
    return true;
  });
}

// The answer: the `top` largest groups by name, the rest summed as "(other)".
std::string render_stats(const StatsQuery& q, const StatsCounts& c) {
  const std::set<std::string> kept = top_groups(c.totals, q.top);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("since");
  w.String(format_rfc3339(q.since));
  w.Key("until");
  w.String(format_rfc3339(q.until));
  w.Key("bucket_ms");
  w.Int64(q.bucket);
  w.Key("by");
  w.String(q.by);
  w.Key("events");
  w.Uint64(c.scanned - c.invalid);
  w.Key("invalid");
  w.Uint64(c.invalid);
  w.Key("scanned");
  w.Uint64(c.scanned);
  w.Key("partial");
  w.Bool(c.partial);
  auto groups = [&](const std::map<std::string, uint64_t>& m) { write_groups(w, m, kept); };
  w.Key("totals");
  groups(c.totals);
  w.Key("buckets");
  w.StartArray();
  for (size_t i = 0; i < c.buckets.size(); ++i) {
    uint64_t n = 0;
    for (const auto& [k, count] : c.buckets[i]) n += count;
    w.StartObject();
    w.Key("start");
    w.String(format_rfc3339(c.first + static_cast<TimeMs>(i) * q.bucket));
    w.Key("events");
    w.Uint64(n);
    w.Key("groups");
    groups(c.buckets[i]);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

HttpResponse event_stats(const ApiContext& ctx, const HttpRequest& req) {
  StatsQuery q;
  if (auto bad = parse_stats_query(ctx, req, q); bad.status) return bad;
  StatsCounts counts;
  if (auto s = count_events(ctx, q, counts); !s) return store_problem(s);
  return HttpResponse::json(render_stats(q, counts));
}

}  // namespace

std::set<std::string> detail::top_groups(const std::map<std::string, uint64_t>& totals,
                                         size_t top) {
  std::vector<std::pair<std::string, uint64_t>> ranked(totals.begin(), totals.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::set<std::string> kept;
  for (size_t i = 0; i < ranked.size() && i < top; ++i) kept.insert(ranked[i].first);
  return kept;
}

void detail::add_event_routes(Router& r, const ApiContext& ctx) {
  r.add("GET", "/api/v1/events/stats",
        scoped(
            ctx, [ctx](const HttpRequest& req) { return event_stats(ctx, req); },
            &merged_event_stats),
        Access::kReader, Router::Cost::kSlow);
}

}  // namespace vigil::api
