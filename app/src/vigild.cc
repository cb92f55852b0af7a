// vigild: the vigil daemon. Wiring only: builds the components from config and connects them.

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "config.h"
#include "configured_rules.h"
#include "signals.h"
#include "vigil/api/auth.h"
#include "vigil/api/http.h"
#include "vigil/api/service.h"
#include "vigil/core/allocator.h"
#include "vigil/core/log.h"
#include "vigil/core/metrics.h"
#include "vigil/core/thread_name.h"
#include "vigil/ingest/alert_mirror.h"
#include "vigil/ingest/content_sync.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/kafka_topics.h"
#include "vigil/ingest/pipeline.h"
#include "vigil/ingest/publisher.h"
#include "vigil/ingest/rollout.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/bundle.h"
#include "vigil/match/database_cache.h"
#include "vigil/match/ruleset.h"
#include "vigil/output/output_set.h"
#include "vigil/store/retention.h"
#include "vigil/store/store.h"

using namespace vigil;

namespace {

int fail(const Status& s) {
  spdlog::critical("{}", s.to_string());
  return 1;
}

Expected<api::TokenSet> api_tokens(const app::Config& config, std::string& generated) {
  api::TokenSet tokens;
  if (!config.api_tokens_file.empty()) {
    std::ifstream in(config.api_tokens_file);
    if (!in)
      return Status::invalid("cannot read the API token file '" + config.api_tokens_file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = api::TokenSet::parse_file_text(ss.str(), config.api_tokens_file);
    if (!parsed) return parsed.status();
    tokens = std::move(*parsed);
  }
  if (const char* env = std::getenv("VIGIL_API_TOKENS"); env && *env) {
    auto parsed = api::TokenSet::parse_list(env, "VIGIL_API_TOKENS");
    if (!parsed) return parsed.status();
    if (tokens.empty()) {
      tokens = std::move(*parsed);
    } else if (!parsed->empty()) {
      return Status::invalid(
          "API tokens come from both --api-tokens-file and VIGIL_API_TOKENS; use one");
    }
  }
  if (!tokens.empty()) return tokens;
  auto token = api::load_or_create_token_file(config.data_dir + "/api-token");
  if (!token) return token.status();
  if (auto s = tokens.add(api::Role::kAdmin, *token, "api-token"); !s) return s;
  generated = *token;
  return tokens;
}

// The API's view of the rollout.
// In cluster mode the operator actions and the status are the deployment's (ContentSync).
class RolloutContent final : public api::ContentService {
 public:
  RolloutContent(ingest::Rollout& r, ingest::ContentSync* sync) : r_(r), sync_(sync) {}
  std::shared_ptr<const match::CompiledBundle> active() const override { return r_.active(); }
  Expected<std::string> list_bundles() const override { return r_.list_json(); }
  Expected<std::string> bundle(uint64_t v) const override { return r_.bundle_json(v); }
  Expected<std::string> bundle_archive(uint64_t v) const override { return r_.bundle_archive(v); }
  Expected<api::SubmittedBundle> submit(std::string_view archive,
                                        const std::string& actor) override {
    auto b = match::Bundle::from_archive(archive);
    if (!b) return b.status();
    auto r = r_.submit(*b, actor);
    if (!r) return r.status();
    return api::SubmittedBundle{r->stored, r->valid, std::move(r->json)};
  }
  Expected<std::string> dry_run(uint64_t v, TimeMs since, TimeMs until, size_t max) const override {
    return r_.dry_run(v, since, until, max);
  }
  Expected<std::string> dry_run_archive(std::string_view archive, TimeMs since, TimeMs until,
                                        size_t max, bool lenient) const override {
    auto b = match::Bundle::from_archive(archive);
    if (!b) return b.status();
    return r_.dry_run_bundle(*b, since, until, max, lenient);
  }
  Expected<std::string> rollout_state() const override {
    if (sync_) return sync_->state_json();
    return r_.state_json();
  }
  Expected<std::string> audit(size_t limit) const override { return r_.audit_json(limit); }
  Status rollout_action(std::string_view action, uint64_t version, const std::string& actor,
                        const std::string& reason) override {
    if (sync_) {
      if (action != "start" && action != "promote" && action != "pause" && action != "resume" &&
          action != "rollback")
        return Status::invalid("unknown rollout action '" + std::string(action) + "'");
      return sync_->forward(
          std::string(action), version, "", actor,
          reason.empty() && action == "start" ? "started by an operator" : reason);
    }
    if (action == "start")
      return r_.start_rollout(version, actor, reason.empty() ? "started by an operator" : reason);
    if (action == "promote") return r_.promote(actor, reason);
    if (action == "pause") return r_.pause(actor, reason);
    if (action == "resume") return r_.resume(actor, reason);
    if (action == "rollback") return r_.rollback(actor, reason);
    return Status::invalid("unknown rollout action '" + std::string(action) + "'");
  }
  Status set_policy(std::string_view policy, const std::string& actor) override {
    auto p = ingest::parse_rollout_policy(policy);
    if (!p) return Status::invalid("unknown policy '" + std::string(policy) + "'");
    if (sync_) return sync_->forward("policy", 0, std::string(policy), actor, "");
    return r_.set_policy(*p, actor);
  }

 private:
  ingest::Rollout& r_;
  ingest::ContentSync* sync_;
};

store::StoreOptions store_options(const app::Config& config) {
  store::StoreOptions so;
  so.path = config.data_dir;
  so.sync_writes = config.sync_writes;
  so.block_cache_bytes = config.block_cache_mb << 20;
  so.retention = {config.events_max_age_ms, config.events_max_bytes, config.events_bucket_ms};
  so.alert_retention = {config.alerts_max_age_ms, config.alerts_max_bytes};
  return so;
}

// The rollout's options; the simulator's events are a reference corpus for scan costs besides
// stored ones.
ingest::RolloutOptions rollout_options(const app::Config& config,
                                       const match::FieldMapping& mapping, const Clock& clock) {
  ingest::RolloutOptions ro;
  ro.policy = *ingest::parse_rollout_policy(config.rollout_policy);
  ro.stages_percent = config.rollout_stages;
  ro.stage_ms = config.rollout_stage_ms;
  ro.min_stage_events = config.rollout_min_stage_events;
  ro.max_match_errors = config.rollout_max_match_errors;
  ro.max_batch_p99_ms = config.rollout_max_batch_p99_ms;
  ro.max_alert_ratio = config.rollout_max_alert_ratio;
  ro.crash_limit = config.rollout_crash_limit;
  ro.crash_window_ms = config.rollout_crash_window_ms;
  ro.good_after_ms = config.rollout_good_after_ms;
  ro.validation.default_mapping = &mapping;
  ro.validation.max_rule_cost_ns = config.max_rule_cost_ns;
  {
    // The simulator's events are a reference corpus for scan costs besides stored ones.
    ingest::SensorSimulator ref({config.simulator_hosts, 0.05, 7}, clock);
    ingest::SimulatedEvent e;
    for (int i = 0; i < 500; ++i) {
      ref.next(e);
      ro.reference_events.push_back(e.json);
    }
  }
  return ro;
}

ingest::PipelineOptions pipeline_options(const app::Config& config, const std::string& brokers) {
  ingest::PipelineOptions po;
  po.brokers = brokers;
  po.topic = config.topic;
  po.group = config.group;
  po.group_instance_id = config.group_instance_id;
  po.kafka_properties = config.kafka_properties;
  po.batch_max_messages = config.batch_max_messages;
  po.batch_max_ms = config.batch_max_ms;
  po.max_event_bytes = config.max_event_bytes;
  po.memo_bytes = config.match_memo_bytes;
  po.workers = config.workers;
  po.publish_alerts = !config.alerts_topic.empty();
  po.dead_letters = !config.dead_letter_topic.empty();
  po.dead_letter_unmapped = config.dead_letter_unmapped;
  po.retain_events = *ingest::parse_event_retention(config.events);
  po.alerts_format = config.alerts_format;
  po.outputs = std::make_shared<const std::vector<output::OutputConfig>>(config.outputs);
  po.repartition_topic = config.correlation_repartition_topic;
  po.partition_key_fields = config.correlation_partition_key;
  po.repartition_lateness_ms = config.correlation_max_lateness_ms;
  return po;
}

ingest::PublisherOptions publisher_options(const app::Config& config, const std::string& brokers) {
  ingest::PublisherOptions pub;
  pub.brokers = brokers;
  pub.alerts_topic = config.alerts_topic;
  pub.dead_letter_topic = config.dead_letter_topic;
  pub.repartition_topic = config.correlation_repartition_topic;
  pub.kafka_properties = config.kafka_properties;
  return pub;
}

api::HttpServerOptions http_options(const app::Config& config, const std::string& listen_host,
                                    uint16_t listen_port, MetricsRegistry& metrics) {
  api::HttpServerOptions ho;
  ho.address = listen_host;
  ho.port = listen_port;
  ho.threads = config.http_threads;
  ho.max_body_bytes = config.api_max_body_mb << 20;
  ho.tls_cert_file = config.api_tls_cert_file;
  ho.tls_key_file = config.api_tls_key_file;
  ho.tls_handshake_failures =
      &metrics.counter("vigil_http_tls_handshake_failures_total",
                       "API connections dropped because their TLS handshake failed");
  ho.max_body_bytes_in_flight = config.api_max_body_mb_in_flight << 20;
  ho.max_connections = config.api_max_connections;
  ho.max_connections_per_client = config.api_max_connections_per_client;
  ho.repaired_bodies =
      &metrics.counter("vigil_http_responses_utf8_repaired_total",
                       "JSON responses that held invalid UTF-8, sent with U+FFFD instead");
  ho.connections_refused =
      &metrics.counter("vigil_http_connections_refused_total",
                       "API connections closed at accept: at the limit with no idle one to evict");
  ho.connections_evicted =
      &metrics.counter("vigil_http_connections_evicted_total",
                       "Idle API connections closed to make room for a new one");
  ho.bodies_refused = &metrics.counter(
      "vigil_http_bodies_refused_total",
      "Requests answered 503 before their body was read: the body budget was in use");
  return ho;
}

// What the ready banner shows.
struct Banner {
  const app::Config& config;
  const std::string& listen_host;
  uint16_t port;
  bool embedded;
  const std::string& brokers;
  int workers;
  const match::CompiledBundle& active;
  const std::string& mapping_name;
  std::string notice;
  const std::string& generated_token;
  size_t tokens;
  const api::ClusterOptions* cluster;
};

void print_banner(const Banner& b) {
  const std::string host_for_url =
      b.listen_host.find(':') != std::string::npos ? "[" + b.listen_host + "]" : b.listen_host;
  const std::string api_url = (b.config.api_tls_cert_file.empty() ? "http://" : "https://") +
                              host_for_url + ":" + std::to_string(b.port);
  std::printf("vigild %s ready\n", "0.1.0");
  std::printf("  api: %s\n", api_url.c_str());
  if (b.embedded) {
    std::printf(
        "  kafka: embedded mock cluster at %s (topic %s, %d partitions), simulator at %g "
        "events/s\n",
        b.brokers.c_str(), b.config.topic.c_str(), b.config.embedded_partitions,
        b.config.simulator_rate);
  } else {
    std::printf("  kafka: %s (topic %s, group %s)\n", b.brokers.c_str(), b.config.topic.c_str(),
                b.config.group.c_str());
  }
  std::printf("  workers: %d; alerts topic: %s; dead letters: %s\n", b.workers,
              b.config.alerts_topic.empty() ? "(off)" : b.config.alerts_topic.c_str(),
              b.config.dead_letter_topic.empty() ? "(off)" : b.config.dead_letter_topic.c_str());
  if (!b.config.outputs.empty()) {
    std::string list;
    for (const auto& o : b.config.outputs)
      list += (list.empty() ? "" : ", ") + o.name + " (" +
              std::string(output::output_type_name(o.type)) + ", " +
              std::string(store::alert_level_name(o.min_level)) + " and up)";
    std::printf("  outputs: %s\n", list.c_str());
  }
  if (b.cluster) {
    std::string peers;
    for (const auto& p : b.cluster->peers) peers += (peers.empty() ? "" : ", ") + p.name;
    std::printf("  cluster: replica %s of %zu (peers: %s); alerts %s\n", b.cluster->self.c_str(),
                b.cluster->peers.size() + 1, peers.empty() ? "none" : peers.c_str(),
                b.config.cluster_mirror_alerts ? ("mirrored from " + b.config.alerts_topic).c_str()
                                               : "not mirrored (this replica's own only)");
  }
  if (!b.config.cluster_content_topic.empty())
    std::printf("  rule content: deployment-wide through %s (coordinator elected in group %s)\n",
                b.config.cluster_content_topic.c_str(), (b.config.group + ".content").c_str());
  if (!b.config.correlation_repartition_topic.empty())
    std::printf("  correlation: across partitions through %s\n",
                b.config.correlation_repartition_topic.c_str());
  std::printf("  rules: bundle %llu, %zu compiled (mapping %s); rollout policy %s\n",
              static_cast<unsigned long long>(b.active.version),
              b.active.rules->rules().size() + b.active.rules->correlations().size(),
              b.mapping_name.c_str(), b.config.rollout_policy.c_str());
  if (!b.config.select.is_default())
    std::printf("  rule selection: %s\n", b.config.select.describe().c_str());
  {
    const auto st = match::DatabaseCache::stats();
    std::printf("  rule databases: %llu loaded from %s in %.2f s, %llu compiled in %.2f s\n",
                static_cast<unsigned long long>(st.hits),
                b.config.rule_cache.empty() ? "(no cache)" : b.config.rule_cache.c_str(),
                st.load_seconds, static_cast<unsigned long long>(st.misses), st.compile_seconds);
  }
  if (!b.notice.empty()) std::printf("  NOTICE: %s\n", b.notice.c_str());
  std::printf("  data: %s\n", b.config.data_dir.c_str());
  if (!b.generated_token.empty()) {
    std::printf("  auth: admin token kept in %s/api-token\n", b.config.data_dir.c_str());
    std::printf("  try: curl -s -H 'Authorization: Bearer %s' '%s/api/v1/alerts?limit=5'\n",
                b.generated_token.c_str(), api_url.c_str());
  } else {
    std::printf(
        "  auth: %zu token(s) from %s\n", b.tokens,
        b.config.api_tokens_file.empty() ? "VIGIL_API_TOKENS" : b.config.api_tokens_file.c_str());
    std::printf("  try: curl -s -H \"Authorization: Bearer $TOKEN\" '%s/api/v1/alerts?limit=5'\n",
                api_url.c_str());
  }
  std::printf("  stop: Ctrl-C\n");
  std::fflush(stdout);
}

// Cluster mode: the peers (this replica skipped by its name) and the shared cursor key.
Expected<std::shared_ptr<const api::ClusterOptions>> cluster_options(const app::Config& config) {
  auto c = std::make_shared<api::ClusterOptions>();
  c->self = config.cluster_self;
  c->timeout_ms = static_cast<int>(config.cluster_peer_timeout_ms);
  c->ca_file = config.cluster_peer_ca_file;
  for (const auto& text : config.cluster_peers) {
    api::Peer p;
    if (auto s = app::parse_peer(text, p.name, p.url); !s) return s;
    if (p.name != c->self) c->peers.push_back(std::move(p));
  }
  return std::shared_ptr<const api::ClusterOptions>(std::move(c));
}

Expected<std::shared_ptr<const std::string>> cursor_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::invalid("cannot read the cursor key file '" + path + "'");
  std::string key((std::istreambuf_iterator<char>(in)), {});
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.size() < 16)
    return Status::invalid("the cursor key file '" + path + "' holds fewer than 16 bytes");
  return std::make_shared<const std::string>(std::move(key));
}

// What the API serves: the store, the pipeline's health and statistics, the rule content.
Expected<api::ApiContext> api_context(const app::Config& config, store::Store& store,
                                      MetricsRegistry& metrics, const Clock& clock,
                                      ingest::Pipeline& pipeline, ingest::Rollout& rollout,
                                      ingest::ContentSync* sync, api::TokenSet tokens,
                                      const match::FieldMapping& mapping,
                                      output::OutputSet& outputs) {
  api::ApiContext ctx;
  ctx.store = &store;
  ctx.metrics = &metrics;
  ctx.clock = &clock;
  ctx.ready = [p = &pipeline, st = &store] {
    return p->healthy() && p->assigned() && st->writable();
  };
  ctx.checkpoint_dir = config.checkpoint_dir;
  ctx.tokens = std::make_shared<const api::TokenSet>(std::move(tokens));
  ctx.content = std::make_shared<RolloutContent>(rollout, sync);
  ctx.mapping = &mapping;
  ctx.notice = [r = &rollout] { return r->boot_notice(); };
  ctx.stats = [p = &pipeline] { return p->stats_json(); };
  ctx.outputs = [o = &outputs] { return o->status_json(); };
  ctx.test_output = [o = &outputs](const std::string& name) { return o->test(name); };
  ctx.open_healthz = config.api_open_healthz;
  ctx.open_readyz = config.api_open_readyz;
  ctx.open_metrics = config.api_open_metrics;
  ctx.alert_page_cache_bytes = config.api_page_cache_mb << 20;
  if (config.clustered()) {
    auto cluster = cluster_options(config);
    if (!cluster) return cluster.status();
    ctx.cluster = std::move(*cluster);
    auto key = cursor_key(config.cluster_cursor_key_file);
    if (!key) return key.status();
    ctx.cursor_key = std::move(*key);
  }
  return ctx;
}

// The embedded mock cluster with the events, alerts, dead-letter and repartition topics.
Expected<std::unique_ptr<ingest::EmbeddedKafka>> start_embedded_kafka(const app::Config& config) {
  auto k = ingest::EmbeddedKafka::start(1, config.topic, config.embedded_partitions);
  if (!k) return k.status();
  for (const auto& t : {config.alerts_topic, config.dead_letter_topic}) {
    if (t.empty()) continue;
    if (auto s = (*k)->create_topic(t, 1); !s) return s;
  }
  // The mock cluster does not serve CreateTopics: made here (it does not compact either).
  if (!config.cluster_content_topic.empty()) {
    if (auto s = (*k)->create_topic(config.cluster_content_topic, 1); !s) return s;
  }
  if (!config.correlation_repartition_topic.empty()) {
    if (auto s =
            (*k)->create_topic(config.correlation_repartition_topic, config.embedded_partitions);
        !s)
      return s;
  }
  return std::move(*k);
}

}  // namespace

int main(int argc, char** argv) {
  vigil::adopt_allocator_settings(argv);
  CLI::App cli{
      "vigild: security event pipeline server (Kafka -> Sigma/Hyperscan -> RocksDB -> REST)"};
  app::ServerFlags flags(cli);
  bool check_config = false;
  cli.add_flag("--check-config", check_config,
               "Check the configuration (the --config file and the flags) and exit: 0 when "
               "vigild accepts it. The files it names (rules, secrets) are not read");
  CLI11_PARSE(cli, argc, argv);
  auto resolved = flags.resolve(/*read_files=*/!check_config);
  if (!resolved) {
    std::fprintf(stderr, "vigild: %s\n", resolved.status().to_string().c_str());
    return 2;
  }
  const app::Config config = std::move(*resolved);

  if (auto s = init_logging(config.log_level); !s) {
    std::fprintf(stderr, "vigild: %s\n", s.to_string().c_str());
    return 2;
  }
  std::string listen_host;
  uint16_t listen_port = 0;
  if (auto s = app::split_listen(config.listen, listen_host, listen_port); !s) return fail(s);
  if (check_config) {
    std::printf("vigild: the configuration is valid\n");
    return 0;
  }

  // Signals are taken by sigwait() in this thread only; every other thread blocks them.
  const sigset_t signals = app::block_signals();

  // Rules: the server's mapping, and the configured rules as a bundle.
  auto mapping = match::FieldMapping::load_file(config.mapping);
  if (!mapping) return fail(mapping.status());
  auto seed = app::configured_bundle(config);
  if (!seed) return fail(seed.status());

  // Store.
  const store::StoreOptions so = store_options(config);
  auto store = store::Store::open(so);
  if (!store) return fail(store.status());
  // Compiled rule databases from earlier starts (after the store: the cache may live in its
  // directory, which the store wants to find as it left it).
  if (auto s = match::DatabaseCache::configure(config.rule_cache); !s)
    spdlog::warn("rule cache off: {}", s.to_string());

  // API tokens: a file and/or VIGIL_API_TOKENS; with neither, an admin token kept in the
  // data directory (made at first start) so that `make run` works at once.
  std::string generated_token;
  auto tokens = api_tokens(config, generated_token);
  if (!tokens) return fail(tokens.status());

  MetricsRegistry metrics;
  const Clock& clock = SystemClock::instance();
  store::RetentionTask retention(**store, metrics, clock, std::chrono::minutes(1));

  // Kafka: a real cluster, or the embedded one fed by the simulator.
  std::unique_ptr<ingest::EmbeddedKafka> embedded;
  std::atomic<bool> stop_simulator{false};
  std::thread simulator;
  std::string brokers = config.brokers;
  if (brokers.empty()) {
    auto k = start_embedded_kafka(config);
    if (!k) return fail(k.status());
    embedded = std::move(*k);
    brokers = embedded->bootstrap_servers();
  }

  // Rule content: the active bundle (the configured rules at first start), the rollout
  // state, and the boot rules of the last known good.
  ingest::RolloutOptions ro = rollout_options(config, *mapping, clock);
  ro.clustered = !config.cluster_content_topic.empty();
  auto rollout = ingest::Rollout::open(**store, metrics, clock, ro, *seed);
  if (!rollout) return fail(rollout.status());
  if (!(*rollout)->boot_notice().empty()) spdlog::error("{}", (*rollout)->boot_notice());
  // Cluster mode: the deployment's content, read to its end before an event is consumed.
  std::unique_ptr<ingest::ContentSync> sync;
  if (!config.cluster_content_topic.empty()) {
    ingest::TopicSpec spec;
    spec.name = config.cluster_content_topic;
    spec.partitions = 1;
    spec.configs = {{"cleanup.policy", "compact"}};
    if (auto n = ingest::ensure_topic(brokers, config.kafka_properties, spec); !n)
      return fail(n.status());
    ingest::ContentSyncOptions co;
    co.brokers = brokers;
    co.topic = config.cluster_content_topic;
    co.group = config.group + ".content";
    co.self = config.cluster_self;
    co.kafka_properties = config.kafka_properties;
    co.rollout = ro;
    auto made = ingest::ContentSync::create(co, **rollout, metrics, clock);
    if (!made) return fail(made.status());
    sync = std::move(*made);
    if (auto s = sync->catch_up(); !s) return fail(s);
  }
  const auto active = (*rollout)->active();

  if (!config.correlation_repartition_topic.empty()) {
    // As wide as the events topic; retention is the cluster's default (a replica taking a
    // partition over reads back the matches of the longest timespan plus the lateness).
    ingest::TopicSpec spec;
    spec.name = config.correlation_repartition_topic;
    spec.partitions_like = config.topic;
    spec.configs = {{"cleanup.policy", "delete"}};
    auto n = ingest::ensure_topic(brokers, config.kafka_properties, spec);
    if (!n) return fail(n.status());
    spdlog::info("correlation across partitions through topic {} ({} partitions)",
                 config.correlation_repartition_topic, *n);
  }
  const ingest::PipelineOptions po = pipeline_options(config, brokers);
  auto pipeline = ingest::Pipeline::create(po, active, **store, metrics, clock);
  if (!pipeline) return fail(pipeline.status());

  // The outbox is published whether or not this run queues to it: what an earlier run left
  // is still owed to Kafka.
  const ingest::PublisherOptions pub = publisher_options(config, brokers);
  auto publisher = ingest::Publisher::create(pub, **store, metrics);
  if (!publisher) return fail(publisher.status());
  (*pipeline)->set_on_outbox([p = publisher->get()] { p->notify(); });

  // Alert outputs: each fed from its queue in the store, written with the alerts.
  auto outputs = output::OutputSet::create(config.outputs, **store, metrics, clock);
  if (!outputs) return fail(outputs.status());
  (*pipeline)->set_on_deliveries(
      [o = outputs->get()](const std::vector<uint64_t>& per_output) { o->queued(per_output); });

  auto made_ctx = api_context(config, **store, metrics, clock, **pipeline, **rollout, sync.get(),
                              std::move(*tokens), *mapping, **outputs);
  if (!made_ctx) return fail(made_ctx.status());
  const api::ApiContext ctx = std::move(*made_ctx);
  const api::HttpServerOptions ho = http_options(config, listen_host, listen_port, metrics);
  auto server = api::HttpServer::start(ho, api::make_router(ctx));

  // Cluster mode: every replica's alerts, read from the alerts topic into this store.
  std::unique_ptr<ingest::AlertMirror> mirror;
  if (config.clustered() && config.cluster_mirror_alerts) {
    ingest::AlertMirrorOptions mo;
    mo.brokers = brokers;
    mo.alerts_topic = config.alerts_topic;
    mo.kafka_properties = config.kafka_properties;
    auto m = ingest::AlertMirror::create(mo, **store, metrics);
    if (!m) return fail(m.status());
    mirror = std::move(*m);
  }
  if (!server) return fail(server.status());

  (*publisher)->start();
  if (mirror) mirror->start();
  (*outputs)->start();
  retention.start();
  if (auto s = (*pipeline)->start(); !s) return fail(s);
  (*rollout)->start(**pipeline);
  if (sync) sync->start(**pipeline);
  // Rule files changed while running (a ConfigMap update): submitted like a pushed bundle.
  std::unique_ptr<app::RulesWatch> rules_watch;
  if (config.rules_watch_ms > 0) {
    rules_watch = std::make_unique<app::RulesWatch>(
        config, **rollout, metrics, std::chrono::milliseconds(config.rules_watch_ms));
    rules_watch->start();
  }

  ingest::SensorSimulator sim({config.simulator_hosts, config.simulator_malicious_ratio, 1}, clock);
  if (embedded && config.simulator_rate > 0) {
    simulator = std::thread([&] {
      set_thread_name("vigil:simulator");
      ingest::ProduceOptions p{brokers, config.topic, config.simulator_rate, 0};
      if (auto s = ingest::run_simulator(p, sim, stop_simulator, metrics); !s)
        spdlog::error("simulator stopped: {}", s.to_string());
    });
  }

  print_banner({config, listen_host, (*server)->port(), embedded != nullptr, brokers,
                (*pipeline)->workers(), *active, mapping->name(), (*rollout)->boot_notice(),
                generated_token, ctx.tokens->size(), ctx.cluster.get()});

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {} received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");

  stop_simulator = true;
  if (simulator.joinable()) simulator.join();
  if (rules_watch) rules_watch->stop();
  if (sync) sync->stop();
  (*rollout)->stop();
  (*pipeline)->stop();
  (*pipeline)->join();
  (*publisher)->stop();
  if (mirror) mirror->stop();
  (*outputs)->stop();
  retention.stop();
  (*server)->stop();
  const Status flushed = (*store)->flush();
  if (flushed) (*rollout)->mark_clean_stop();
  sync.reset();
  rollout->reset();
  if (!flushed) spdlog::error("final flush failed: {}", flushed.to_string());
  pipeline->reset();
  publisher->reset();
  mirror.reset();
  outputs->reset();
  store->reset();
  embedded.reset();
  spdlog::info("stopped");
  return flushed.is_ok() ? 0 : 1;
}
