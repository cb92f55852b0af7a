// Deployment-wide answers of cluster mode (fanout.h): event hunts merged in order with a
// cursor per replica, event statistics summed, and every replica's pipeline statistics.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "cursor.h"
#include "fanout.h"
#include "service_internal.h"

namespace vigil::api {

using namespace detail;

namespace {

std::string to_json(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// A member's 4xx (other than the auth answers, which name the caller's token) is the
// caller's request being wrong: answered as the member said it.
std::optional<HttpResponse> caller_error(const std::vector<MemberAnswer>& answers,
                                         const std::vector<std::pair<size_t, QueryParams>>& calls) {
  for (size_t i = 0; i < answers.size(); ++i) {
    if (calls[i].first != 0 || answers[i].answered) continue;
    const std::string& e = answers[i].error;
    if (e.rfind("HTTP 4", 0) == 0 && e.rfind("HTTP 401", 0) != 0 && e.rfind("HTTP 403", 0) != 0) {
      const size_t colon = e.find(": ");
      HttpResponse res;
      res.status = std::stoi(e.substr(5, 3));
      res.content_type = "application/problem+json";
      res.body = e.substr(colon + 2);
      return res;
    }
  }
  return std::nullopt;
}

struct MergedEvent {
  std::string position;  // store::event_cursor of the event: orders events on every replica
  size_t member = 0;
  std::string json;
};

}  // namespace

HttpResponse detail::merged_events(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                                   const Handler& local) {
  if (auto bad = unknown_params(req, {"since", "until", "limit", "cursor", "field", "scope"});
      bad.status)
    return bad;
  PageParams pp;
  const std::string binding = cursor_binding("events", req);
  if (auto bad = parse_page_params(ctx, req, pp, binding); bad.status) return bad;
  // Where each member stands: from the start, or as the previous page left it.
  MemberCursors cursors;
  for (size_t m = 0; m < fan.members(); ++m) cursors.emplace_back(fan.name(m), "");
  if (!pp.cursor.empty()) {
    auto given = decode_member_cursors(pp.cursor);
    if (!given) return HttpResponse::problem(400, "parameter 'cursor' is not a deployment cursor");
    for (const auto& [name, c] : *given) {
      const size_t m = fan.find(name);
      if (m < fan.members()) cursors[m].second = c;
    }
  }
  const QueryParams base = Fanout::forwarded(req, {"limit"});
  std::vector<std::pair<size_t, QueryParams>> calls;
  for (size_t m = 0; m < fan.members(); ++m) {
    if (cursors[m].second == "-") continue;
    QueryParams q = base;
    q.emplace_back("limit", std::to_string(pp.limit));
    if (!cursors[m].second.empty()) q.emplace_back("cursor", cursors[m].second);
    calls.emplace_back(m, std::move(q));
  }
  const std::vector<MemberAnswer> answers = fan.ask(req, "/api/v1/events", calls, local);
  if (auto e = caller_error(answers, calls)) return *e;

  std::vector<MergedEvent> events;
  std::vector<MemberAnswer> missing;
  std::map<size_t, std::pair<size_t, std::string>> page_of;  // member: (page size, next cursor)
  uint64_t scanned = 0;
  bool partial = false;
  for (size_t i = 0; i < answers.size(); ++i) {
    const size_t m = calls[i].first;
    rapidjson::Document d;
    if (answers[i].answered) d.Parse(answers[i].body.c_str());
    if (!answers[i].answered || d.HasParseError() || !d.IsObject() || !d.HasMember("events") ||
        !d["events"].IsArray()) {
      MemberAnswer a = answers[i];
      if (a.answered) a.error = "its answer is not an event page";
      missing.push_back(std::move(a));
      continue;
    }
    size_t n = 0;
    for (const auto& e : d["events"].GetArray()) {
      if (!e.IsObject() || !e.HasMember("time") || !e["time"].IsString() ||
          !e.HasMember("stream") || !e["stream"].IsString() || !e.HasMember("partition") ||
          !e["partition"].IsInt() || !e.HasMember("offset") || !e["offset"].IsInt64())
        continue;
      const auto t = parse_rfc3339(e["time"].GetString());
      if (!t) continue;
      ++n;
      events.push_back({store::event_cursor(*t, e["stream"].GetString(), e["partition"].GetInt(),
                                            e["offset"].GetInt64()),
                        m, to_json(e)});
    }
    const auto& next = d["next_cursor"];
    page_of[m] = {n, next.IsString() ? std::string(next.GetString()) : std::string("-")};
    if (d.HasMember("scanned") && d["scanned"].IsUint64()) scanned += d["scanned"].GetUint64();
    if (d.HasMember("partial") && d["partial"].IsBool() && d["partial"].GetBool()) partial = true;
  }
  // Newest first across the members; an event two members hold (a partition handed over
  // between them re-read a few offsets) is shown once and moves both on.
  std::stable_sort(events.begin(), events.end(), [](const MergedEvent& a, const MergedEvent& b) {
    return a.position > b.position;
  });
  std::vector<const MergedEvent*> page;
  std::map<size_t, std::pair<size_t, std::string>> taken;  // member: (count, last position)
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0 && events[i].position == events[i - 1].position) {
      auto& t = taken[events[i].member];
      ++t.first;
      t.second = events[i].position;
      continue;
    }
    if (page.size() == pp.limit) break;
    page.push_back(&events[i]);
    auto& t = taken[events[i].member];
    ++t.first;
    t.second = events[i].position;
  }
  // Each member continues after the last of its events this page showed.
  bool more = false;
  for (const auto& [m, pg] : page_of) {
    const auto t = taken.find(m);
    const size_t k = t == taken.end() ? 0 : t->second.first;
    if (k == pg.first) {
      cursors[m].second = pg.second;
    } else if (k > 0) {
      const HttpRequest mreq = Fanout::member_request(req, "/api/v1/events", base);
      cursors[m].second =
          seal_cursor(*ctx.cursor_key, cursor_binding("events", mreq), t->second.second);
    }
    if (cursors[m].second != "-") more = true;
  }
  std::string body;
  BodyStream out(body);
  BodyWriter w(out);
  w.StartObject();
  w.Key("events");
  w.StartArray();
  for (const MergedEvent* e : page) write_raw_json(w, out, e->json);
  w.EndArray();
  // A member that did not answer keeps its place in the cursor; the page is partial.
  const std::string next =
      more ? seal_cursor(*ctx.cursor_key, binding, encode_member_cursors(cursors)) : std::string();
  write_page_tail(w, page.size(), next, scanned, partial || !missing.empty());
  write_members(w, fan.members(), missing);
  w.EndObject();
  return HttpResponse::json(std::move(body));
}

HttpResponse detail::merged_event_stats(const ApiContext& ctx, const Fanout& fan,
                                        const HttpRequest& req, const Handler& local) {
  // The window is fixed here, so that every member counts the same one whatever its clock.
  TimeMs since = ctx.clock->now_ms() - 24 * 3600 * 1000LL, until = ctx.clock->now_ms();
  if (auto bad = parse_window(ctx, req, since, until); bad.status) return bad;
  size_t top = 20;
  // `top` is replaced in what the members are asked (they send every group), so it is
  // checked here as a single replica checks it.
  if (auto v = req.param("top")) {
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), top);
    if (ec != std::errc() || end != v->data() + v->size() || top < 1 || top > 1000)
      return HttpResponse::problem(400, "parameter 'top' must be an integer from 1 to 1000");
  }
  QueryParams q = Fanout::forwarded(req, {"since", "until", "top"});
  q.emplace_back("since", std::to_string(since));
  q.emplace_back("until", std::to_string(until));
  q.emplace_back("top", "1000");  // every group (up to 1000): the deployment's top is chosen here
  std::vector<std::pair<size_t, QueryParams>> calls;
  for (size_t m = 0; m < fan.members(); ++m) calls.emplace_back(m, q);
  const std::vector<MemberAnswer> answers = fan.ask(req, "/api/v1/events/stats", calls, local);
  if (auto e = caller_error(answers, calls)) return *e;

  std::vector<MemberAnswer> missing;
  rapidjson::Document first;
  uint64_t events = 0, invalid = 0, scanned = 0;
  bool partial = false;
  std::map<std::string, uint64_t> totals;
  std::vector<std::pair<std::string, std::map<std::string, uint64_t>>> buckets;
  for (const auto& a : answers) {
    rapidjson::Document d;
    if (a.answered) d.Parse(a.body.c_str());
    if (!a.answered || d.HasParseError() || !d.IsObject() || !d.HasMember("buckets") ||
        !d["buckets"].IsArray() || !d.HasMember("totals") || !d["totals"].IsObject()) {
      MemberAnswer m = a;
      if (m.answered) m.error = "its answer is not an event statistics document";
      missing.push_back(std::move(m));
      continue;
    }
    auto u64 = [&](const char* k) { return d[k].IsUint64() ? d[k].GetUint64() : 0; };
    events += u64("events");
    invalid += u64("invalid");
    scanned += u64("scanned");
    partial = partial || (d["partial"].IsBool() && d["partial"].GetBool());
    for (const auto& [k, v] : d["totals"].GetObject())
      if (v.IsUint64()) totals[k.GetString()] += v.GetUint64();
    const auto& bs = d["buckets"].GetArray();
    if (buckets.size() < bs.Size()) buckets.resize(bs.Size());
    for (rapidjson::SizeType i = 0; i < bs.Size(); ++i) {
      if (!bs[i].IsObject() || !bs[i].HasMember("groups") || !bs[i]["groups"].IsObject()) continue;
      if (bs[i].HasMember("start") && bs[i]["start"].IsString())
        buckets[i].first = bs[i]["start"].GetString();
      for (const auto& [k, v] : bs[i]["groups"].GetObject())
        if (v.IsUint64()) buckets[i].second[k.GetString()] += v.GetUint64();
    }
    if (!first.IsObject()) first.CopyFrom(d, first.GetAllocator());
  }
  if (!first.IsObject()) {
    return HttpResponse::problem(
        503, "no replica answered: " +
                 (missing.empty() ? std::string("none asked") : missing.front().error));
  }
  const std::set<std::string> kept = top_groups(totals, top);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto groups = [&](const std::map<std::string, uint64_t>& m) { write_groups(w, m, kept); };
  w.StartObject();
  for (const char* k : {"since", "until", "bucket_ms", "by"}) {
    w.Key(k);
    if (first.HasMember(k))
      first[k].Accept(w);
    else
      w.Null();
  }
  w.Key("events");
  w.Uint64(events);
  w.Key("invalid");
  w.Uint64(invalid);
  w.Key("scanned");
  w.Uint64(scanned);
  w.Key("partial");
  w.Bool(partial || !missing.empty());
  w.Key("totals");
  groups(totals);
  w.Key("buckets");
  w.StartArray();
  for (const auto& [start, g] : buckets) {
    uint64_t n = 0;
    for (const auto& [k, count] : g) n += count;
    w.StartObject();
    w.Key("start");
    w.String(start.data(), static_cast<rapidjson::SizeType>(start.size()));
    w.Key("events");
    w.Uint64(n);
    w.Key("groups");
    groups(g);
    w.EndObject();
  }
  w.EndArray();
  write_members(w, fan.members(), missing);
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

HttpResponse detail::merged_stats(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                                  const Handler& local) {
  if (auto bad = unknown_params(req, {"scope"}); bad.status) return bad;
  (void)ctx;
  std::vector<std::pair<size_t, QueryParams>> calls;
  for (size_t m = 0; m < fan.members(); ++m) calls.emplace_back(m, QueryParams{});
  const std::vector<MemberAnswer> answers = fan.ask(req, "/api/v1/stats", calls, local);
  if (auto e = caller_error(answers, calls)) return *e;
  rapidjson::Document self;
  if (!answers[0].answered) return HttpResponse::problem(503, answers[0].error);
  self.Parse(answers[0].body.c_str());
  if (self.HasParseError() || !self.IsObject())
    return HttpResponse::problem(500, "this replica's statistics are not a JSON object");
  // This replica's statistics at the top (as a single replica answers), every replica's in
  // `replicas`, each named.
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  std::vector<MemberAnswer> missing;
  w.StartObject();
  w.Key("replica");
  w.String(fan.name(0).c_str());
  for (const auto& [k, v] : self.GetObject()) {
    w.Key(k.GetString(), k.GetStringLength());
    v.Accept(w);
  }
  w.Key("replicas");
  w.StartArray();
  for (const auto& a : answers) {
    rapidjson::Document d;
    if (a.answered) d.Parse(a.body.c_str());
    if (!a.answered || d.HasParseError() || !d.IsObject()) {
      MemberAnswer m = a;
      if (m.answered) m.error = "its answer is not a statistics document";
      missing.push_back(std::move(m));
      continue;
    }
    w.StartObject();
    w.Key("replica");
    w.String(a.member.c_str());
    for (const auto& [k, v] : d.GetObject()) {
      w.Key(k.GetString(), k.GetStringLength());
      v.Accept(w);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("missing");
  w.StartArray();
  for (const auto& m : missing) {
    w.StartObject();
    w.Key("peer");
    w.String(m.member.c_str());
    w.Key("error");
    w.String(m.error.c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

namespace {

// One rule's counts summed over the replicas' dry runs.
struct MergedRule {
  std::string title;
  std::set<std::string> statuses;
  uint64_t active = 0, candidate = 0, gained = 0, lost = 0;
  std::vector<std::string> gained_samples, lost_samples;
};

uint64_t u64_of(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsUint64() ? v[key].GetUint64() : 0;
}

std::string string_of(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}

}  // namespace

HttpResponse detail::merged_dry_run(const ApiContext& ctx, const Fanout& fan,
                                    const HttpRequest& req, const Handler& local) {
  if (!ctx.content) return HttpResponse::problem(404, "rule content is not served by this server");
  DryRunParams p;
  if (auto bad = parse_dry_run_params(ctx, req, p); bad.status) return bad;
  // The window fixed here, so that every replica runs the same one whatever its clock.
  QueryParams q;
  for (const auto& kv : req.query)
    if (kv.first != "since" && kv.first != "until" && kv.first != "scope") q.push_back(kv);
  q.emplace_back("since", std::to_string(p.since));
  if (p.until != INT64_MAX) q.emplace_back("until", std::to_string(p.until));
  // This replica first: a bundle it cannot run (unknown, refused) is the caller's answer.
  HttpRequest here_req = Fanout::member_request(req, req.path, q, {"POST", &req.body, 0});
  here_req.path_params = req.path_params;
  HttpResponse here = local(here_req);
  if (here.status != 200) return here;
  // The peers may not hold the bundle: they are sent its archive.
  std::string archive = req.body;
  const std::string_view version = req.path_param("version");
  if (!version.empty()) {
    auto tar = ctx.content->bundle_archive(std::stoull(std::string(version)));
    if (!tar) return from_status(tar.status());
    archive = std::move(*tar);
    // A stored bundle ran here as it was stored (configured rules leave out what does not
    // compile): the peers compile it the same way.
    q.emplace_back("lenient", "true");
  }
  std::vector<std::pair<size_t, QueryParams>> calls;
  for (size_t m = 1; m < fan.members(); ++m) calls.emplace_back(m, q);
  // A dry run reads every stored event of the window: minutes, not the query timeout.
  const std::vector<MemberAnswer> peers =
      fan.ask(req, "/api/v1/bundles/dry-run", calls, local, {"POST", &archive, 600000});

  std::vector<rapidjson::Document> reports(1);
  std::vector<std::string> names{fan.name(0)};
  reports[0].Parse(here.body.c_str());
  if (reports[0].HasParseError() || !reports[0].IsObject())
    return HttpResponse::problem(500, "this replica's dry run is not a JSON object");
  std::vector<MemberAnswer> missing;
  for (const auto& a : peers) {
    rapidjson::Document d;
    if (a.answered) d.Parse(a.body.c_str());
    if (!a.answered || d.HasParseError() || !d.IsObject() || !d.HasMember("rules") ||
        !d["rules"].IsArray()) {
      MemberAnswer m = a;
      if (m.answered) m.error = "its answer is not a dry run report";
      missing.push_back(std::move(m));
      continue;
    }
    reports.push_back(std::move(d));
    names.push_back(a.member);
  }
  uint64_t events = 0, invalid = 0;
  bool partial = !missing.empty();
  std::map<std::string, MergedRule> rules;
  for (const auto& d : reports) {
    events += u64_of(d, "events");
    invalid += u64_of(d, "invalid_events");
    partial =
        partial || (d.HasMember("partial") && d["partial"].IsBool() && d["partial"].GetBool());
    if (!d.HasMember("rules") || !d["rules"].IsArray()) continue;
    for (const auto& r : d["rules"].GetArray()) {
      MergedRule& m = rules[string_of(r, "id")];
      m.title = string_of(r, "title");
      m.statuses.insert(string_of(r, "status"));
      m.active += u64_of(r, "active_matches");
      m.candidate += u64_of(r, "candidate_matches");
      m.gained += u64_of(r, "gained");
      m.lost += u64_of(r, "lost");
      for (auto [key, out] : {std::pair{"gained_samples", &m.gained_samples},
                              std::pair{"lost_samples", &m.lost_samples}}) {
        if (!r.HasMember(key) || !r[key].IsArray()) continue;
        for (const auto& x : r[key].GetArray())
          if (x.IsString() && out->size() < 5) out->push_back(x.GetString());
      }
    }
  }
  uint64_t total_active = 0, total_candidate = 0, total_gained = 0, total_lost = 0;
  for (const auto& [id, m] : rules) {
    total_active += m.active;
    total_candidate += m.candidate;
    total_gained += m.gained;
    total_lost += m.lost;
  }
  const rapidjson::Document& self = reports[0];
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](const std::string& v) {
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  for (const char* k : {"version", "hash", "active", "since", "until"}) {
    if (!self.HasMember(k)) continue;
    w.Key(k);
    self[k].Accept(w);
  }
  w.Key("events");
  w.Uint64(events);
  w.Key("invalid_events");
  w.Uint64(invalid);
  w.Key("partial");
  w.Bool(partial);
  w.Key("correlations");
  w.String("not evaluated (detections only)");
  w.Key("totals");
  w.StartObject();
  w.Key("active_matches");
  w.Uint64(total_active);
  w.Key("candidate_matches");
  w.Uint64(total_candidate);
  w.Key("gained");
  w.Uint64(total_gained);
  w.Key("lost");
  w.Uint64(total_lost);
  w.EndObject();
  w.Key("rules");
  w.StartArray();
  for (const auto& [id, m] : rules) {
    w.StartObject();
    w.Key("id");
    str(id);
    w.Key("title");
    str(m.title);
    // Replicas whose active bundles differ may see a rule as new on one and changed on
    // another: one status then says whether the counts moved.
    w.Key("status");
    str(m.statuses.size() == 1 ? *m.statuses.begin()
                               : (m.gained || m.lost ? "changed" : "unchanged"));
    w.Key("active_matches");
    w.Uint64(m.active);
    w.Key("candidate_matches");
    w.Uint64(m.candidate);
    w.Key("gained");
    w.Uint64(m.gained);
    w.Key("lost");
    w.Uint64(m.lost);
    for (auto [key, xs] : {std::pair{"gained_samples", &m.gained_samples},
                           std::pair{"lost_samples", &m.lost_samples}}) {
      w.Key(key);
      w.StartArray();
      for (const auto& x : *xs) str(x);
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  // What each replica ran against: its own active bundle, over its own stored events.
  w.Key("per_replica");
  w.StartArray();
  for (size_t i = 0; i < reports.size(); ++i) {
    w.StartObject();
    w.Key("replica");
    str(names[i]);
    w.Key("active");
    w.Uint64(u64_of(reports[i], "active"));
    w.Key("events");
    w.Uint64(u64_of(reports[i], "events"));
    w.Key("partial");
    w.Bool(reports[i].HasMember("partial") && reports[i]["partial"].IsBool() &&
           reports[i]["partial"].GetBool());
    w.EndObject();
  }
  w.EndArray();
  write_members(w, fan.members(), missing);
  w.EndObject();
  return HttpResponse::json(std::string(sb.GetString(), sb.GetSize()));
}

HttpResponse detail::merged_alert(const ApiContext& ctx, const Fanout& fan, const HttpRequest& req,
                                  const Handler& local) {
  (void)ctx;
  HttpResponse here = local(req);
  if (here.status != 404 || fan.members() < 2) return here;
  // Not here yet (the mirror reads the alerts topic a moment behind the replica that raised
  // it): asked of the peers.
  std::vector<std::pair<size_t, QueryParams>> calls;
  for (size_t m = 1; m < fan.members(); ++m) calls.emplace_back(m, QueryParams{});
  const std::vector<MemberAnswer> answers = fan.ask(req, req.path, calls, local);
  std::string missing;
  for (const auto& a : answers) {
    if (a.answered) return HttpResponse::json(a.body);
    if (a.error.rfind("HTTP 404", 0) != 0) missing += (missing.empty() ? "" : ", ") + a.member;
  }
  if (missing.empty()) return here;
  return HttpResponse::problem(404,
                               "no alert with id " + std::string(req.path_param("id")) +
                                   " on the replicas that answered; not answering: " + missing);
}

Handler detail::scoped(const ApiContext& ctx, Handler local,
                       HttpResponse (*merged)(const ApiContext&, const Fanout&, const HttpRequest&,
                                              const Handler&)) {
  auto fan = std::make_shared<const Fanout>(ctx);
  return [ctx, fan, local = std::move(local), merged](const HttpRequest& req) {
    HttpResponse bad{0, {}, {}};
    if (deployment_scope(ctx, req, bad)) return merged(ctx, *fan, req, local);
    if (bad.status) return bad;
    return local(req);
  };
}

}  // namespace vigil::api
