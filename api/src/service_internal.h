#pragma once
// What the API's route files share: parameter parsing, problems, page rendering, and the
// functions that add each family of routes. Private to vigil_api.
//
//   service.cc          make_router; health, readiness, metrics, stats, OpenAPI, checkpoints
//   service_alerts.cc   /api/v1/alerts, /api/v1/alerts/{id}, /api/v1/events (hunts)
//   event_stats.cc      /api/v1/events/stats
//   service_content.cc  /api/v1/rules, bundles and rollouts
//   service_cluster.cc  the deployment-wide answers of cluster mode (fanout.h)

#include <rapidjson/writer.h>

#include <cstddef>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "vigil/api/service.h"

namespace vigil::api::detail {

constexpr size_t kMaxLimit = 1000;

// A 400 naming the first query parameter not in `allowed`; status 0 if there is none.
HttpResponse unknown_params(const HttpRequest& req,
                            std::initializer_list<std::string_view> allowed);

// The common parameters of a time-ranged, paged query.
struct PageParams {
  TimeMs since = INT64_MIN;
  TimeMs until = INT64_MAX;
  size_t limit = 100;
  std::string cursor;

  // Sets the page of a store query (store::AlertQuery, store::EventQuery).
  template <class Query>
  void apply_to(Query& q) const {
    q.since = since;
    q.until = until;
    q.limit = limit;
    q.cursor = cursor;
  }
};

// The `since` and `until` parameters (RFC 3339, epoch ms or a duration ago) over the
// defaults in `since` and `until`.
// Status 0 when they are good.
HttpResponse parse_window(const ApiContext& ctx, const HttpRequest& req, TimeMs& since,
                          TimeMs& until);
// The window, `limit` and a `cursor` sealed to `binding` (the route and query).
HttpResponse parse_page_params(const ApiContext& ctx, const HttpRequest& req, PageParams& p,
                               std::string_view binding);
// A store error as a problem: a bad cursor is 400, the rest 503.
HttpResponse store_problem(const Status& s);
// A content service error as a problem: 409, 404, 503 or 500.
HttpResponse from_status(const Status& s);

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
inline void write_raw_json(BodyWriter& w, BodyStream& out, std::string_view raw) {
  w.RawValue("", 0, rapidjson::kObjectType);
  out.append(raw);
}

// The window and bound of a dry run: `since` (default an hour ago), `until`, `max_events`
// (1..10,000,000, default 1,000,000), `lenient` (rules that do not compile are left out).
struct DryRunParams {
  TimeMs since = 0, until = INT64_MAX;
  size_t max_events = 1000000;
  bool lenient = false;
};
HttpResponse parse_dry_run_params(const ApiContext& ctx, const HttpRequest& req, DryRunParams& p);

class Fanout;
// Deployment-wide answers (service_cluster.cc); `local` answers for this replica.
HttpResponse merged_events(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                           const Handler& local);
HttpResponse merged_event_stats(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                                const Handler& local);
HttpResponse merged_stats(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                          const Handler& local);
HttpResponse merged_dry_run(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                            const Handler& local);
HttpResponse merged_alert(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                          const Handler& local);
// A handler that answers for the deployment in cluster mode (unless `scope=local`) through
// `merged`, and for this replica through `local` otherwise.
Handler scoped(const ApiContext& ctx, Handler local,
               HttpResponse (*merged)(const ApiContext&, const Fanout&, const HttpRequest&,
                                      const Handler&));

// Event statistics' groups: the `top` by count (ties by name), and a group map written with
// the others summed as "(other)".
std::set<std::string> top_groups(const std::map<std::string, uint64_t>& totals, size_t top);
template <typename Writer>
void write_groups(Writer& w, const std::map<std::string, uint64_t>& counts,
                  const std::set<std::string>& kept) {
  w.StartObject();
  uint64_t other = 0;
  for (const auto& [k, n] : counts) {
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
}

void add_alert_routes(Router& r, const ApiContext& ctx);
void add_event_routes(Router& r, const ApiContext& ctx);
void add_rule_routes(Router& r, const ApiContext& ctx);
void add_content_routes(Router& r, const ApiContext& ctx);

}  // namespace vigil::api::detail
