#pragma once
// The REST API's routes over the store and the pipeline's health. The routes, their
// parameters and their answers are defined once, in docs/openapi.json (served at
// /api/v1/openapi.json; tests/unit/api/service_test.cc holds the router to it, and
// docs/api.md's table to both). Rule content routes: ContentService and ingest/rollout.h.
//
// Every parameter is validated; a bad or unknown one is a 400 problem naming it.

#include <functional>
#include <memory>

#include "vigil/api/content.h"
#include "vigil/api/http.h"
#include "vigil/core/metrics.h"
#include "vigil/core/time.h"
#include "vigil/match/mapping.h"
#include "vigil/match/rule_stats.h"
#include "vigil/match/ruleset.h"
#include "vigil/store/store.h"

namespace vigil::api {

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
};

Router make_router(const ApiContext& context);

// Parses a time parameter: RFC 3339, integer epoch milliseconds, or a duration ("15m")
// meaning now minus that duration.
std::optional<TimeMs> parse_time_param(std::string_view text, TimeMs now);

}  // namespace vigil::api
