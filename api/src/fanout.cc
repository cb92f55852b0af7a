#include "fanout.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <future>

#include "vigil/api/client.h"

namespace vigil::api::detail {

struct Fanout::PeerMetrics {
  Counter* ok = nullptr;
  Counter* failed = nullptr;
  Histogram* seconds = nullptr;
};

Fanout::Fanout(const ApiContext& ctx) : cluster_(ctx.cluster) {
  names_.push_back(cluster_ ? cluster_->self : std::string("self"));
  metrics_.push_back(nullptr);
  if (!cluster_) return;
  for (const auto& p : cluster_->peers) {
    names_.push_back(p.name);
    auto m = std::make_shared<PeerMetrics>();
    if (ctx.metrics) {
      const char* help = "Requests this replica made to a peer for a deployment-wide answer";
      m->ok = &ctx.metrics->counter("vigil_cluster_peer_requests_total", help,
                                    {{"peer", p.name}, {"outcome", "ok"}});
      m->failed = &ctx.metrics->counter("vigil_cluster_peer_requests_total", help,
                                        {{"peer", p.name}, {"outcome", "error"}});
      m->seconds = &ctx.metrics->histogram(
          "vigil_cluster_peer_request_seconds", "Latency of requests to a peer",
          {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, {{"peer", p.name}});
    }
    metrics_.push_back(std::move(m));
  }
}

size_t Fanout::find(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return i;
  return names_.size();
}

QueryParams Fanout::forwarded(const HttpRequest& req,
                              std::initializer_list<std::string_view> drop) {
  QueryParams out;
  for (const auto& kv : req.query) {
    if (kv.first == "scope" || kv.first == "cursor") continue;
    if (std::find(drop.begin(), drop.end(), kv.first) != drop.end()) continue;
    out.push_back(kv);
  }
  return out;
}

HttpRequest Fanout::member_request(const HttpRequest& caller, const std::string& path,
                                   const QueryParams& query, const AskOptions& how) {
  HttpRequest r;
  r.method = how.method;
  if (how.body) r.body = *how.body;
  r.path = path;
  r.query = query;
  r.query.emplace_back("scope", "local");
  r.authorization = caller.authorization;
  r.principal = caller.principal;
  return r;
}

std::vector<MemberAnswer> Fanout::ask(const HttpRequest& caller, const std::string& path,
                                      const std::vector<std::pair<size_t, QueryParams>>& calls,
                                      const Handler& local, const AskOptions& how) const {
  std::vector<std::future<MemberAnswer>> pending;
  pending.reserve(calls.size());
  for (const auto& [member, query] : calls) {
    if (member == 0) {
      HttpRequest req = member_request(caller, path, query, how);
      pending.push_back(std::async(std::launch::deferred, [this, req, &local] {
        MemberAnswer a;
        a.member = names_[0];
        HttpResponse res = local(req);
        if (res.status == 200) {
          a.answered = true;
          a.body = std::move(res.body);
        } else {
          a.error = "HTTP " + std::to_string(res.status) + ": " + res.body;
        }
        return a;
      }));
      continue;
    }
    HttpRequest req = member_request(caller, path, query);  // the body is sent from `how`
    req.method = how.method;
    const Peer& peer = cluster_->peers[member - 1];
    const PeerMetrics* pm = metrics_[member].get();
    pending.push_back(std::async(std::launch::async, [this, req, &peer, pm, &how] {
      MemberAnswer a;
      a.member = peer.name;
      ClientRequest cr;
      cr.target = req.path;
      char sep = '?';
      for (const auto& [k, v] : req.query) {
        cr.target += sep;
        cr.target += url_encode(k) + "=" + url_encode(v);
        sep = '&';
      }
      if (!req.authorization.empty()) cr.headers.emplace_back("Authorization", req.authorization);
      cr.method = req.method;
      if (how.body) {
        cr.body = *how.body;
        cr.content_type = "application/octet-stream";
      }
      cr.timeout_ms = how.timeout_ms > 0 ? how.timeout_ms : cluster_->timeout_ms;
      cr.ca_file = cluster_->ca_file;
      cr.insecure_skip_verify = cluster_->insecure_skip_verify;
      cr.user_agent = "vigild-peer";
      const auto start = std::chrono::steady_clock::now();
      auto res = http_call(peer.url, cr);
      if (pm && pm->seconds) {
        pm->seconds->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      if (!res) {
        a.error = res.status().message();
      } else if (res->status != 200) {
        std::string detail = res->body.substr(0, 300);
        rapidjson::Document d;
        d.Parse(res->body.c_str());
        if (!d.HasParseError() && d.IsObject() && d.HasMember("detail") && d["detail"].IsString())
          detail = d["detail"].GetString();
        a.error = "HTTP " + std::to_string(res->status) + ": " + detail;
      } else {
        a.answered = true;
        a.body = std::move(res->body);
      }
      if (pm && pm->ok) (a.answered ? pm->ok : pm->failed)->inc();
      return a;
    }));
  }
  std::vector<MemberAnswer> out;
  out.reserve(pending.size());
  for (auto& f : pending) out.push_back(f.get());
  return out;
}

bool deployment_scope(const ApiContext& ctx, const HttpRequest& req, HttpResponse& bad) {
  const auto scope = req.param("scope");
  if (scope && *scope != "local" && *scope != "deployment") {
    bad = HttpResponse::problem(400, "parameter 'scope' must be local or deployment");
    return false;
  }
  return ctx.cluster && !(scope && *scope == "local");
}

namespace {

std::string hex_of(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::optional<std::string> unhex(std::string_view s) {
  if (s.size() % 2) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size() / 2);
  for (size_t i = 0; i < s.size(); i += 2) {
    const int hi = digit(s[i]), lo = digit(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

// "name\x1fcursor\x1e..." in hex (member names and cursors hold neither separator).
std::string encode_member_cursors(const MemberCursors& c) {
  std::string raw;
  for (const auto& [name, cursor] : c) {
    if (!raw.empty()) raw += '\x1e';
    raw += name;
    raw += '\x1f';
    raw += cursor;
  }
  return hex_of(raw);
}

std::optional<MemberCursors> decode_member_cursors(std::string_view position) {
  auto raw = unhex(position);
  if (!raw || raw->empty()) return std::nullopt;
  MemberCursors out;
  size_t from = 0;
  while (from <= raw->size()) {
    size_t end = raw->find('\x1e', from);
    if (end == std::string::npos) end = raw->size();
    const std::string_view entry = std::string_view(*raw).substr(from, end - from);
    const size_t sep = entry.find('\x1f');
    if (sep == std::string_view::npos || sep == 0) return std::nullopt;
    out.emplace_back(std::string(entry.substr(0, sep)), std::string(entry.substr(sep + 1)));
    from = end + 1;
  }
  return out;
}

}  // namespace vigil::api::detail
