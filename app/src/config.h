#pragma once
// vigild's configuration: defaults, then a YAML file (--config), then flags.
//
//   kafka:
//     brokers: "k1:9092,k2:9092"     # empty: embedded mock cluster + sensor simulator
//     topic: vigil.events
//     group: vigil
//     group_instance_id: ""          # static membership, e.g. the pod name
//     alerts_topic: vigil.alerts     # every alert, as JSON keyed by alert id; "" turns it off
//     alerts_format: vigil           # the alerts topic's documents: vigil, ecs, ocsf
//     dead_letter_topic: vigil.deadletter  # invalid events with the reason in headers; "" off
//     dead_letter_unmapped: false    # events no logsource accepts are dead letters too
//     properties: {security.protocol: SSL}
//     properties_file: ""            # more librdkafka properties, "key=value" lines, for
//                                    # secrets (sasl.password): a mounted Secret, never logged
//   workers: 0                       # shard worker threads; 0: one per usable core (a cgroup
//                                    # CPU limit, e.g. a pod's, counts)
//   data_dir: ./data
//   listen: 127.0.0.1:8080
//   rules: [rules/sigma]
//   mapping: rules/mappings/vigil-sensor.yml
//   rule_cache: ""                   # compiled rule databases kept here, loaded at the next start
//                                    # ("": <data_dir>/rule-cache; "off": compiled every time)
//   rules_watch: 0                   # every this long, submit the rules and mapping again as
//                                    # a bundle when their files changed (e.g. 10s; 0: only at
//                                    # start)
//   select: {min_level: medium}      # rule selection (match/selection.h): status, min_level,
//                                    # tags, exclude_tags, product, category
//   log_level: info
//   http_threads: 2
//   batch: {max_messages: 2000, max_ms: 50}
//   max_event_bytes: 1048576
//   match:
//     memo_mb: 4                     # per worker: remembered scan results of repeated field
//                                    # values (a lookup instead of a scan); 0 turns it off
//   embedded: {partitions: 8, simulator_rate: 500, hosts: 300, malicious_ratio: 0.01}
//   store:
//     events: all                    # events kept for hunts and dry runs: all, matched, none
//     events_max_age: 7d             # retention by age ("0": none)
//     events_max_bytes: 0            # retention by size on disk (0: none)
//     events_bucket: 1h              # the unit retention drops (a multiple of 100ms)
//     alerts_max_age: 365d           # alert retention by age ("0": none), with indexes and ids
//     alerts_max_bytes: 0            # alert retention by size of alerts and indexes (0: none)
//     sync_writes: false             # fsync the WAL on every batch
//     block_cache_mb: 64
//     checkpoint_dir: ""             # POST /api/v1/admin/checkpoints ("": <data_dir>-checkpoints)
//   api:
//     tokens_file: ""                # "<admin|reader> <token>" lines; "" and no VIGIL_API_TOKENS:
//                                    # an admin token made at first start in <data_dir>/api-token
//     open: {healthz: true, readyz: true, metrics: true}  # false: that route needs a token
//     max_body_mb: 32                # largest request body (a bundle archive)
//     max_body_mb_in_flight: 64      # all bodies being read together; past it 503 + Retry-After
//     max_connections: 1024          # at the limit a new connection evicts the oldest idle one
//     max_connections_per_client: 256  # per client address (0: none), same eviction
//     tls: {cert_file: "", key_file: ""}  # HTTPS with this PEM chain and key (re-read on change)
//   cluster:                         # several replicas as one deployment (README, "Running
//                                    # several replicas"); off while self and peers are empty
//     self: ""                       # this replica's name; --cluster-self (default: the host
//                                    # name, which is the pod name in a StatefulSet)
//     peers: []                      # "name=http://host:port" of every replica, this one
//                                    # included (found by its name); --cluster-peers a=url,b=url
//     peer_timeout: 5s               # per peer and request of a deployment-wide answer
//     peer_ca_file: ""               # https peers: the CA to trust
//     cursor_key_file: ""            # the key page cursors are sealed with, shared by every
//                                    # replica (a mounted Secret; at least 16 bytes)
//     mirror_alerts: true            # read the alerts topic into this store (alerts from any
//                                    # replica's API); needs kafka.alerts_format vigil
//     content_topic: ""              # bundles and the deployment-wide rollout through this
//                                    # compacted topic: "<kafka.topic>.content" by default,
//                                    # "off": each replica rolls out alone.
//                                    # --cluster-content-topic
//   correlation:                     # correlation rules across partitions and replicas
//     repartition_topic: ""          # base-rule matches re-keyed by group through this topic
//                                    # (created if missing); "": <kafka.topic>.correlation in
//                                    # cluster mode, off otherwise; "off": windows per events
//                                    # partition only. --correlation-repartition-topic
//     partition_key: []              # Sigma fields the sensors key events by (e.g. [Computer]):
//                                    # a correlation grouped by them stays local
//     max_lateness: 1h               # a match this much (plus the longest timespan) behind its
//                                    # partition's newest is counted as late and left out
//   outputs: [...]                   # alert outputs: webhook, slack, splunk_hec, syslog
//                                    # (output/outputs.h has every key)
//   rollout:                         # rule bundles (ingest/rollout.h)
//     policy: staged                 # staged, immediate or pinned (the API may change it)
//     stages: [50, 100]              # after the one-shard canary, percent of the shards
//     stage_duration: 60s            # each stage held and watched this long
//     min_stage_events: 0            # promoted only once its new-bundle shards saw this many
//     max_match_errors: 0            # gates: matching errors allowed per stage,
//     max_batch_p99_ms: 2000         #   p99 batch duration,
//     max_alert_ratio: 10            #   alerts per event against the previous bundle
//     crash_limit: 3                 # crashes within crash_window of an activation that
//     crash_window: 10m              #   quarantine the bundle (last known good)
//     good_after: 10m                # active this long without a crash: last known good
//     max_rule_cost_ns: 200000       # per rule, per reference event; 0: not measured

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/matcher.h"
#include "vigil/match/selection.h"
#include "vigil/output/outputs.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace vigil::app {

struct Config {
  std::string brokers;
  std::string topic = "vigil.events";
  std::string group = "vigil";
  std::string group_instance_id;
  std::string alerts_topic = "vigil.alerts";
  output::AlertFormat alerts_format = output::AlertFormat::kVigil;
  std::string dead_letter_topic = "vigil.deadletter";
  bool dead_letter_unmapped = false;
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  std::string kafka_properties_file;  // read by read_kafka_properties_file() at start
  int workers = 0;
  std::string data_dir = "./data";
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> rules;
  std::string mapping;
  int64_t rules_watch_ms = 0;
  match::RuleSelection select;
  std::string log_level = "info";
  int http_threads = 2;
  size_t batch_max_messages = 2000;
  int batch_max_ms = 50;
  size_t max_event_bytes = 1 << 20;
  size_t match_memo_bytes = match::MatcherOptions{}.memo_bytes;
  int embedded_partitions = 8;
  double simulator_rate = 500;
  int simulator_hosts = 300;
  double simulator_malicious_ratio = 0.01;
  std::string events = "all";
  int64_t events_max_age_ms = 7LL * 24 * 3600 * 1000;
  uint64_t events_max_bytes = 0;
  int64_t alerts_max_age_ms = 365LL * 24 * 3600 * 1000;
  uint64_t alerts_max_bytes = 0;
  int64_t events_bucket_ms = 3600 * 1000;
  bool sync_writes = false;
  size_t block_cache_mb = 64;
  std::string checkpoint_dir;
  std::string api_tokens_file;
  bool api_open_healthz = true;
  bool api_open_readyz = true;
  bool api_open_metrics = true;
  size_t api_max_body_mb = 32;
  size_t api_max_body_mb_in_flight = 64;
  size_t api_max_connections = 1024;
  size_t api_max_connections_per_client = 256;
  size_t api_page_cache_mb = 16;  // alert list pages kept until the next alert; 0: none
  std::string api_tls_cert_file;
  std::string api_tls_key_file;
  std::string rollout_policy = "staged";
  std::vector<int> rollout_stages{50, 100};
  int64_t rollout_stage_ms = 60000;
  uint64_t rollout_min_stage_events = 0;
  uint64_t rollout_max_match_errors = 0;
  double rollout_max_batch_p99_ms = 2000;
  double rollout_max_alert_ratio = 10;
  int rollout_crash_limit = 3;
  int64_t rollout_crash_window_ms = 10 * 60 * 1000;
  int64_t rollout_good_after_ms = 10 * 60 * 1000;
  int64_t max_rule_cost_ns = 200000;
  std::vector<output::OutputConfig> outputs;
  std::string cluster_self;
  std::vector<std::string> cluster_peers;  // "name=url"
  int64_t cluster_peer_timeout_ms = 5000;
  std::string cluster_peer_ca_file;
  std::string cluster_cursor_key_file;
  bool cluster_mirror_alerts = true;
  // Rule content across the deployment: "" (default) is "<kafka.topic>.content" in cluster
  // mode (empty after resolve when off or not clustered); "off" turns it off.
  std::string cluster_content_topic;
  // Compiled Hyperscan databases kept on disk (match/database_cache.h): "" (default)
  // <data_dir>/rule-cache, "off" none.
  std::string rule_cache;
  // Correlation across partitions: "" (default) is the repartition topic
  // "<kafka.topic>.correlation" in cluster mode and off otherwise; "off" turns it off.
  std::string correlation_repartition_topic;
  std::vector<std::string> correlation_partition_key;  // Sigma fields events are keyed by
  int64_t correlation_max_lateness_ms = 3'600'000;
  bool clustered() const { return !cluster_self.empty() || !cluster_peers.empty(); }
};

// A cluster peer "name=url" split and checked (name: [A-Za-z0-9._-], url: http(s)://host:port).
Status parse_peer(const std::string& text, std::string& name, std::string& url);

// The rule selection flags (--status, --min-level, --tag, --exclude-tag, --product,
// --category), shared by vigild, `vigil rules check` and `vigil match`.
class SelectionFlags {
 public:
  void add(CLI::App& cli);
  // `into` with each flag given replacing its part; an unknown status or level is refused.
  Status apply(match::RuleSelection& into) const;

 private:
  match::RuleSelection given_;
  CLI::Option *status_ = nullptr, *min_level_ = nullptr, *tags_ = nullptr, *exclude_tags_ = nullptr,
              *products_ = nullptr, *categories_ = nullptr;
};

// vigild's command line over a Config, each flag declared once with the member it sets: the
// defaults, then the --config file, then every flag given, then the defaults that depend on
// other values (the checkpoint directory, the rules and mapping of the source tree).
class ServerFlags {
 public:
  // Adds --config and every flag to `cli`.
  explicit ServerFlags(CLI::App& cli);
  ServerFlags(const ServerFlags&) = delete;
  ServerFlags& operator=(const ServerFlags&) = delete;

  // After `cli` parsed the command line: the configuration, or an error naming the flag, the
  // file's key or the value that is wrong. read_files: read the files the configuration
  // names for more settings (kafka.properties_file); false only checks the configuration.
  Expected<Config> resolve(bool read_files = true) const;

 private:
  template <typename T>
  void add(CLI::App& cli, const char* name, T Config::*member, const char* help);
  void add_age(CLI::App& cli, const char* name, int64_t Config::*member, const char* help);

  std::string config_file_;
  Config given_;  // what the flags parsed into
  SelectionFlags select_;
  std::deque<std::string>
      ages_;  // the text of each age flag (stable addresses), parsed in resolve()
  std::vector<std::function<Status(Config&)>> apply_;  // per flag: sets it if it was given
};

// Applies the keys of a YAML config file over `config`. Unknown keys are errors. read_files:
// read the secrets it names (outputs' {file:} and {env:}); false only checks their form.
Status load_config_file(const std::string& path, Config& config, bool read_files = true);

// librdkafka properties from a file of "key=value" lines (blank lines and lines starting
// with # or ! are skipped; spaces around the key and the value are trimmed). Errors name the
// file and line, never a value: the file holds secrets.
Expected<std::vector<std::pair<std::string, std::string>>> read_kafka_properties_file(
    const std::string& path);

// "host:port" or "[v6]:port".
Status split_listen(const std::string& listen, std::string& host, uint16_t& port);

// The default rule and mapping paths: ./rules if present, else the source tree's.
std::string default_rules_dir();
std::string default_mapping(const std::string& name);

}  // namespace vigil::app
