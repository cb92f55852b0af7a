#pragma once
// The REST API's routes over the store and the pipeline's health. The routes, their
// parameters and their answers are defined once, in docs/openapi.json (served at
// /api/v1/openapi.json; tests/unit/api/service_test.cc holds the router to it, and
// docs/api.md's table to both). Rule content routes: ContentService and ingest/rollout.h.
//
// Every parameter is validated; a bad or unknown one is a 400 problem naming it.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vigil/api/content.h"
#include "vigil/api/http.h"
#include "vigil/core/metrics.h"
#include "vigil/core/time.h"
#include "vigil/match/mapping.h"
#include "vigil/match/rule_stats.h"
#include "vigil/match/ruleset.h"
#include "vigil/store/store.h"

namespace vigil::api {

// Another replica of the deployment, as its API is reached (cluster mode).
struct Peer {
  std::string name;  // how answers name it (the pod name: vigil-1)
  std::string url;   // http://host:port or https://host:port
};

// Cluster mode: this replica's name and its peers. Event hunts, event statistics and the
// pipeline statistics ask every peer (in parallel, with the caller's Authorization) and
// merge; a peer that does not answer in time is named in the answer, which is then partial.
// `scope=local` asks this replica alone (what the peers are asked). Cursors of merged pages
// are sealed with the cursor key, which every replica must share.
struct ClusterOptions {
  std::string self;
  std::vector<Peer> peers;  // the other replicas
  int timeout_ms = 5000;    // per peer and request
  std::string ca_file;      // https peers: the CA to trust instead of the system's
  bool insecure_skip_verify = false;
};

struct ApiContext {
  store::Store* store = nullptr;
  MetricsRegistry* metrics = nullptr;
  const Clock* clock = nullptr;
  std::function<bool()> ready;  // readiness of the pipeline; null: always ready
  std::string checkpoint_dir;   // empty: checkpoints are not served
  // Bearer tokens of /api/v1 (reader: queries; admin: also checkpoints). Null or empty:
  // every /api/v1 route answers 401.
  std::shared_ptr<const TokenSet> tokens;
  // Rule bundles and rollouts, and the active rules (GET /api/v1/rules); null: not served.
  std::shared_ptr<ContentService> content;
  // The server's field mapping: logsources and the host field of /api/v1/events/stats
  // (null: every event counts under "(none)" and "(unknown)").
  const match::FieldMapping* mapping = nullptr;
  // What the process wants operators to know (a quarantined bundle), shown by /healthz.
  std::function<std::string()> notice;
  // The key that seals page cursors to their route and query; null: make_router makes one
  // (random: cursors of one process; give the replicas of a deployment one key to share them).
  std::shared_ptr<const std::string> cursor_key;
  // The pipeline's state as JSON (GET /api/v1/stats); null: not served.
  std::function<std::string()> stats;
  // The alert outputs' state as JSON (GET /api/v1/outputs), and a test alert sent through one
  // (POST /api/v1/outputs/{name}/test: not_found for an unknown name, unavailable when the
  // destination failed); null: not served.
  std::function<std::string()> outputs;
  std::function<Status(const std::string& name)> test_output;
  // /healthz, /readyz and /metrics answer without a token unless closed here (then they
  // need a reader token).
  bool open_healthz = true;
  bool open_readyz = true;
  bool open_metrics = true;
  // Bytes of rendered alert list pages kept until the next alert is written (repeated
  // queries, e.g. dashboards on the newest alerts, then cost no store reads); 0: none.
  size_t alert_page_cache_bytes = 16 << 20;
  // Cluster mode (the routes that fan out to the peers); null: a single replica.
  std::shared_ptr<const ClusterOptions> cluster;
};

Router make_router(const ApiContext& context);

// Parses a time parameter: RFC 3339, integer epoch milliseconds, or a duration ("15m")
// meaning now minus that duration.
std::optional<TimeMs> parse_time_param(std::string_view text, TimeMs now);

}  // namespace vigil::api
