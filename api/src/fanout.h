#pragma once
// Deployment-wide answers (cluster mode, ApiContext::cluster): a route asks every member of
// the deployment — this replica in process, the peers over HTTP with the caller's
// Authorization and `scope=local` — in parallel, each within the peer timeout, then merges.
// Private to vigil_api.

#include <rapidjson/rapidjson.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vigil/api/service.h"

namespace vigil::api::detail {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// What one member answered.
struct MemberAnswer {
  std::string member;  // its name (self or a peer's)
  bool answered = false;
  std::string body;   // the 200 answer
  std::string error;  // why not: transport error, timeout, or the peer's status and detail
};

// How a fan-out asks: GET by default; a POST carries `body` to every member.
struct AskOptions {
  std::string method = "GET";
  const std::string* body = nullptr;
  int timeout_ms = 0;  // 0: the cluster's peer timeout
};

// The members of the deployment: index 0 is this replica, then the peers in configuration
// order. Metrics per peer: requests by outcome, and their latency.
class Fanout {
 public:
  explicit Fanout(const ApiContext& ctx);
  size_t members() const { return names_.size(); }
  const std::string& name(size_t member) const { return names_[member]; }
  size_t find(std::string_view name) const;  // members() when unknown

  // Asks `calls` (member index, query) at `path` in parallel; the local member through
  // `local`. The answers are in the order of `calls`. `scope=local` is added to each query.
  std::vector<MemberAnswer> ask(const HttpRequest& caller, const std::string& path,
                                const std::vector<std::pair<size_t, QueryParams>>& calls,
                                const Handler& local, const AskOptions& how = {}) const;

  // The caller's query without `scope`, `cursor` and the names in `drop`.
  static QueryParams forwarded(const HttpRequest& req,
                               std::initializer_list<std::string_view> drop);
  // The request a member is sent, as its own router sees it (for cursor bindings).
  static HttpRequest member_request(const HttpRequest& caller, const std::string& path,
                                    const QueryParams& query, const AskOptions& how = {});

 private:
  struct PeerMetrics;
  std::shared_ptr<const ClusterOptions> cluster_;
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<PeerMetrics>> metrics_;  // per member (null for self)
};

// True when the request must be answered for the whole deployment (cluster mode, and no
// `scope=local`). A bad `scope` is a 400 in `bad`.
bool deployment_scope(const ApiContext& ctx, const HttpRequest& req, HttpResponse& bad);

// The state of a deployment-wide page cursor: per member, its own cursor ("" from the start,
// "-" when it has nothing more).
using MemberCursors = std::vector<std::pair<std::string, std::string>>;
std::string encode_member_cursors(const MemberCursors& c);
std::optional<MemberCursors> decode_member_cursors(std::string_view position);

// {"missing":[{"peer":..,"error":..}],"members":N} for a merged answer.
template <typename Writer>
void write_members(Writer& w, size_t members, const std::vector<MemberAnswer>& missing) {
  w.Key("replicas");
  w.StartObject();
  w.Key("asked");
  w.Uint64(members);
  w.Key("missing");
  w.StartArray();
  for (const auto& m : missing) {
    w.StartObject();
    w.Key("peer");
    w.String(m.member.data(), static_cast<rapidjson::SizeType>(m.member.size()));
    w.Key("error");
    w.String(m.error.data(), static_cast<rapidjson::SizeType>(m.error.size()));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace vigil::api::detail
