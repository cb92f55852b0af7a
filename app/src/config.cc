#include "config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "vigil/core/time.h"
#include "vigil/ingest/rollout.h"
#include "vigil/ingest/shard_worker.h"
#include "vigil/store/store.h"

#ifndef VIGIL_SOURCE_DIR
#define VIGIL_SOURCE_DIR "."
#endif

namespace vigil::app {
namespace {

// A retention age: a positive duration such as 7d or 1h, or "0" for none.
std::optional<int64_t> parse_age(const std::string& text) {
  if (text == "0") return 0;
  auto d = parse_duration_ms(text);
  if (!d || *d <= 0) return std::nullopt;
  return d;
}

Status check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& where) {
  for (const auto& kv : map) {
    const auto k = kv.first.as<std::string>();
    if (!allowed.count(k)) return Status::invalid(where + ": unknown key '" + k + "'");
  }
  return Status::ok();
}

}  // namespace

namespace {

// kafka: brokers, topics, group, librdkafka properties.
Status read_kafka(const YAML::Node& k, const std::string& path, Config& c) {
  if (auto s = check_keys(
          k,
          {"brokers", "topic", "group", "group_instance_id", "alerts_topic", "dead_letter_topic",
           "dead_letter_unmapped", "properties", "properties_file", "alerts_format"},
          path + " kafka");
      !s)
    return s;
  if (k["brokers"]) c.brokers = k["brokers"].as<std::string>();
  if (k["topic"]) c.topic = k["topic"].as<std::string>();
  if (k["group"]) c.group = k["group"].as<std::string>();
  if (k["group_instance_id"]) c.group_instance_id = k["group_instance_id"].as<std::string>();
  if (k["alerts_topic"]) c.alerts_topic = k["alerts_topic"].as<std::string>();
  if (k["dead_letter_topic"]) c.dead_letter_topic = k["dead_letter_topic"].as<std::string>();
  if (k["dead_letter_unmapped"]) c.dead_letter_unmapped = k["dead_letter_unmapped"].as<bool>();
  if (k["properties_file"]) c.kafka_properties_file = k["properties_file"].as<std::string>();
  if (k["alerts_format"]) {
    const auto f = output::parse_alert_format(k["alerts_format"].as<std::string>());
    if (!f) return Status::invalid(path + ": kafka.alerts_format must be vigil, ecs or ocsf");
    c.alerts_format = *f;
  }
  if (const auto p = k["properties"]) {
    if (!p.IsMap()) return Status::invalid(path + ": kafka.properties must be a map");
    for (const auto& kv : p)
      c.kafka_properties.emplace_back(kv.first.as<std::string>(), kv.second.as<std::string>());
  }
  return Status::ok();
}

// store: event and alert retention, durability, cache, checkpoints.
Status read_store(const YAML::Node& st, const std::string& path, Config& c) {
  if (auto s = check_keys(
          st,
          {"events", "events_max_age", "events_max_bytes", "events_bucket", "alerts_max_age",
           "alerts_max_bytes", "sync_writes", "block_cache_mb", "checkpoint_dir"},
          path + " store");
      !s) {
    return s;
  }
  auto duration = [&](const char* key, int64_t& out) -> Status {
    if (!st[key]) return Status::ok();
    const auto text = st[key].as<std::string>();
    auto age = parse_age(text);
    if (!age)
      return Status::invalid(path + ": store." + key +
                             " must be a duration such as 7d or 1h, not '" + text + "'");
    out = *age;
    return Status::ok();
  };
  if (st["events"]) c.events = st["events"].as<std::string>();
  if (auto s = duration("events_max_age", c.events_max_age_ms); !s) return s;
  if (auto s = duration("events_bucket", c.events_bucket_ms); !s) return s;
  if (auto s = duration("alerts_max_age", c.alerts_max_age_ms); !s) return s;
  if (st["alerts_max_bytes"]) c.alerts_max_bytes = st["alerts_max_bytes"].as<uint64_t>();
  if (c.events_bucket_ms % store::kEventBlockWindowMs !=
      0) {  // retention drops whole blocks of events
    return Status::invalid(path + ": store.events_bucket must be a multiple of " +
                           std::to_string(store::kEventBlockWindowMs) + "ms");
  }
  if (st["events_max_bytes"]) c.events_max_bytes = st["events_max_bytes"].as<uint64_t>();
  if (st["sync_writes"]) c.sync_writes = st["sync_writes"].as<bool>();
  if (st["block_cache_mb"]) c.block_cache_mb = st["block_cache_mb"].as<size_t>();
  if (st["checkpoint_dir"]) c.checkpoint_dir = st["checkpoint_dir"].as<std::string>();
  return Status::ok();
}

// api: tokens, TLS, limits, open routes, page cache.
Status read_api(const YAML::Node& a, const std::string& path, Config& c) {
  if (auto s = check_keys(a,
                          {"tokens_file", "open", "max_body_mb", "max_body_mb_in_flight",
                           "max_connections", "max_connections_per_client", "tls", "page_cache_mb"},
                          path + " api");
      !s)
    return s;
  if (const auto t = a["tls"]) {
    if (auto s = check_keys(t, {"cert_file", "key_file"}, path + " api.tls"); !s) return s;
    if (t["cert_file"]) c.api_tls_cert_file = t["cert_file"].as<std::string>();
    if (t["key_file"]) c.api_tls_key_file = t["key_file"].as<std::string>();
  }
  if (a["tokens_file"]) c.api_tokens_file = a["tokens_file"].as<std::string>();
  if (a["max_body_mb"]) c.api_max_body_mb = a["max_body_mb"].as<size_t>();
  if (a["max_body_mb_in_flight"])
    c.api_max_body_mb_in_flight = a["max_body_mb_in_flight"].as<size_t>();
  if (a["max_connections"]) c.api_max_connections = a["max_connections"].as<size_t>();
  if (a["max_connections_per_client"])
    c.api_max_connections_per_client = a["max_connections_per_client"].as<size_t>();
  if (c.api_max_connections == 0)
    return Status::invalid(path + ": api.max_connections must be positive");
  if (a["page_cache_mb"]) c.api_page_cache_mb = a["page_cache_mb"].as<size_t>();
  if (const auto o = a["open"]) {
    if (auto s = check_keys(o, {"healthz", "readyz", "metrics"}, path + " api.open"); !s) return s;
    if (o["healthz"]) c.api_open_healthz = o["healthz"].as<bool>();
    if (o["readyz"]) c.api_open_readyz = o["readyz"].as<bool>();
    if (o["metrics"]) c.api_open_metrics = o["metrics"].as<bool>();
  }
  return Status::ok();
}

// rollout: the policy, stages, gates and the last known good.
Status read_rollout(const YAML::Node& r, const std::string& path, Config& c) {
  if (auto s = check_keys(r,
                          {"policy", "stages", "stage_duration", "min_stage_events",
                           "max_match_errors", "max_batch_p99_ms", "max_alert_ratio", "crash_limit",
                           "crash_window", "good_after", "max_rule_cost_ns"},
                          path + " rollout");
      !s) {
    return s;
  }
  auto duration = [&](const char* key, int64_t& out) -> Status {
    if (!r[key]) return Status::ok();
    auto d = parse_duration_ms(r[key].as<std::string>());
    if (!d || *d <= 0)
      return Status::invalid(path + ": rollout." + key + " must be a duration such as 60s");
    out = *d;
    return Status::ok();
  };
  if (r["policy"]) c.rollout_policy = r["policy"].as<std::string>();
  if (r["stages"]) c.rollout_stages = r["stages"].as<std::vector<int>>();
  for (int pct : c.rollout_stages) {
    if (pct < 1 || pct > 100)
      return Status::invalid(path + ": rollout.stages are percentages from 1 to 100");
  }
  if (auto s = duration("stage_duration", c.rollout_stage_ms); !s) return s;
  if (auto s = duration("crash_window", c.rollout_crash_window_ms); !s) return s;
  if (auto s = duration("good_after", c.rollout_good_after_ms); !s) return s;
  if (r["max_match_errors"]) c.rollout_max_match_errors = r["max_match_errors"].as<uint64_t>();
  if (r["min_stage_events"]) c.rollout_min_stage_events = r["min_stage_events"].as<uint64_t>();
  if (r["max_batch_p99_ms"]) c.rollout_max_batch_p99_ms = r["max_batch_p99_ms"].as<double>();
  if (r["max_alert_ratio"]) c.rollout_max_alert_ratio = r["max_alert_ratio"].as<double>();
  if (r["crash_limit"]) c.rollout_crash_limit = r["crash_limit"].as<int>();
  if (r["max_rule_cost_ns"]) c.max_rule_cost_ns = r["max_rule_cost_ns"].as<int64_t>();
  return Status::ok();
}

// cluster: this replica's name, its peers, the shared cursor key, the alert mirror.
Status read_cluster(const YAML::Node& k, const std::string& path, Config& c) {
  if (auto s = check_keys(k,
                          {"self", "peers", "peer_timeout", "peer_ca_file", "cursor_key_file",
                           "mirror_alerts", "content_topic"},
                          path + " cluster");
      !s)
    return s;
  if (k["self"]) c.cluster_self = k["self"].as<std::string>();
  if (const auto p = k["peers"]) {
    if (!p.IsSequence()) return Status::invalid(path + ": cluster.peers must be a list");
    c.cluster_peers.clear();
    for (const auto& x : p) c.cluster_peers.push_back(x.as<std::string>());
  }
  if (k["peer_timeout"]) {
    auto d = parse_duration_ms(k["peer_timeout"].as<std::string>());
    if (!d || *d <= 0)
      return Status::invalid(path + ": cluster.peer_timeout must be a duration such as 5s");
    c.cluster_peer_timeout_ms = *d;
  }
  if (k["peer_ca_file"]) c.cluster_peer_ca_file = k["peer_ca_file"].as<std::string>();
  if (k["cursor_key_file"]) c.cluster_cursor_key_file = k["cursor_key_file"].as<std::string>();
  if (k["mirror_alerts"]) c.cluster_mirror_alerts = k["mirror_alerts"].as<bool>();
  if (k["content_topic"]) c.cluster_content_topic = k["content_topic"].as<std::string>();
  return Status::ok();
}

// correlation: the repartition topic, the partition key, the lateness allowed.
Status read_correlation(const YAML::Node& k, const std::string& path, Config& c) {
  if (auto s = check_keys(k, {"repartition_topic", "partition_key", "max_lateness"},
                          path + " correlation");
      !s)
    return s;
  if (k["repartition_topic"])
    c.correlation_repartition_topic = k["repartition_topic"].as<std::string>();
  if (const auto p = k["partition_key"]) {
    c.correlation_partition_key.clear();
    if (p.IsSequence()) {
      for (const auto& x : p) c.correlation_partition_key.push_back(x.as<std::string>());
    } else {
      c.correlation_partition_key.push_back(p.as<std::string>());
    }
  }
  if (k["max_lateness"]) {
    auto d = parse_age(k["max_lateness"].as<std::string>());
    if (!d)
      return Status::invalid(path + ": correlation.max_lateness must be a duration such as 1h");
    c.correlation_max_lateness_ms = *d;
  }
  return Status::ok();
}

}  // namespace

Status parse_peer(const std::string& text, std::string& name, std::string& url) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    return Status::invalid("cluster peer '" + text + "' must be name=http://host:port");
  name = text.substr(0, eq);
  url = text.substr(eq + 1);
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-')
      return Status::invalid("cluster peer name '" + name + "' must be of [A-Za-z0-9._-]");
  }
  const bool scheme = url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
  const size_t host = url.find("://") + 3;
  if (!scheme || url.size() <= host || url.find('/', host) != std::string::npos ||
      url.find(':', url.find(']') == std::string::npos ? host : url.find(']')) == std::string::npos)
    return Status::invalid("cluster peer '" + name + "': '" + url +
                           "' must be http://host:port or https://host:port");
  return Status::ok();
}

Status load_config_file(const std::string& path, Config& c, bool read_files) {
  try {
    const YAML::Node doc = YAML::LoadFile(path);
    if (doc.IsNull()) return Status::ok();
    if (!doc.IsMap()) return Status::invalid(path + ": the config must be a YAML map");
    if (auto s = check_keys(
            doc, {"kafka",    "data_dir",   "listen",       "rules", "rules_watch",     "mapping",
                  "select",   "log_level",  "http_threads", "batch", "max_event_bytes", "match",
                  "embedded", "workers",    "store",        "api",   "rollout",         "outputs",
                  "cluster",  "correlation"},
            path);
        !s) {
      return s;
    }
    if (doc["data_dir"]) c.data_dir = doc["data_dir"].as<std::string>();
    if (doc["listen"]) c.listen = doc["listen"].as<std::string>();
    if (const auto r = doc["rules"]) {
      c.rules.clear();
      if (r.IsSequence()) {
        for (const auto& x : r) c.rules.push_back(x.as<std::string>());
      } else {
        c.rules.push_back(r.as<std::string>());
      }
    }
    if (doc["mapping"]) c.mapping = doc["mapping"].as<std::string>();
    if (doc["rule_cache"]) c.rule_cache = doc["rule_cache"].as<std::string>();
    if (doc["rules_watch"]) {
      const auto text = doc["rules_watch"].as<std::string>();
      auto d = parse_age(text);
      if (!d)
        return Status::invalid(path + ": rules_watch must be a duration such as 10s, not '" + text +
                               "'");
      c.rules_watch_ms = *d;
    }
    if (const auto sel = doc["select"]) {
      auto parsed = match::RuleSelection::parse(sel, path);
      if (!parsed) return parsed.status();
      c.select = std::move(*parsed);
    }
    if (doc["log_level"]) c.log_level = doc["log_level"].as<std::string>();
    if (doc["workers"]) c.workers = doc["workers"].as<int>();
    if (doc["http_threads"]) c.http_threads = doc["http_threads"].as<int>();
    if (doc["max_event_bytes"]) c.max_event_bytes = doc["max_event_bytes"].as<size_t>();
    if (const auto m = doc["match"]) {
      if (auto s = check_keys(m, {"memo_mb"}, path + " match"); !s) return s;
      if (m["memo_mb"]) {
        const auto mb = m["memo_mb"].as<size_t>();
        if (mb > 1024) return Status::invalid(path + ": match.memo_mb is at most 1024");
        c.match_memo_bytes = mb << 20;
      }
    }
    if (const auto b = doc["batch"]) {
      if (auto s = check_keys(b, {"max_messages", "max_ms"}, path + " batch"); !s) return s;
      if (b["max_messages"]) c.batch_max_messages = b["max_messages"].as<size_t>();
      if (b["max_ms"]) c.batch_max_ms = b["max_ms"].as<int>();
    }
    if (const auto e = doc["embedded"]) {
      if (auto s = check_keys(e, {"partitions", "simulator_rate", "hosts", "malicious_ratio"},
                              path + " embedded");
          !s)
        return s;
      if (e["partitions"]) c.embedded_partitions = e["partitions"].as<int>();
      if (e["simulator_rate"]) c.simulator_rate = e["simulator_rate"].as<double>();
      if (e["hosts"]) c.simulator_hosts = e["hosts"].as<int>();
      if (e["malicious_ratio"]) c.simulator_malicious_ratio = e["malicious_ratio"].as<double>();
    }
    if (const auto k = doc["kafka"]; k) {
      if (auto s = read_kafka(k, path, c); !s) return s;
    }
    if (const auto st = doc["store"]; st) {
      if (auto s = read_store(st, path, c); !s) return s;
    }
    if (const auto a = doc["api"]; a) {
      if (auto s = read_api(a, path, c); !s) return s;
    }
    if (const auto r = doc["rollout"]; r) {
      if (auto s = read_rollout(r, path, c); !s) return s;
    }
    if (const auto cl = doc["cluster"]; cl) {
      if (auto s = read_cluster(cl, path, c); !s) return s;
    }
    if (const auto co = doc["correlation"]; co) {
      if (auto s = read_correlation(co, path, c); !s) return s;
    }
    if (const auto o = doc["outputs"]; o) {
      auto outputs = output::parse_outputs(o, path, read_files);
      if (!outputs) return outputs.status();
      c.outputs = std::move(*outputs);
    }
  } catch (const YAML::Exception& e) {
    return Status::invalid(path + ": " + e.what());
  }
  return Status::ok();
}

void SelectionFlags::add(CLI::App& cli) {
  status_ = cli.add_option("--status", given_.statuses,
                           "Rule statuses to load, comma-separated (default: all but deprecated, "
                           "unsupported)")
                ->delimiter(',');
  min_level_ =
      cli.add_option("--min-level", given_.min_level,
                     "Lowest rule level to load: informational, low, medium, high, critical");
  tags_ = cli.add_option("--tag", given_.tags,
                         "Load only rules with one of these tags (repeatable; a trailing * is a "
                         "prefix)")
              ->delimiter(',');
  exclude_tags_ = cli.add_option("--exclude-tag", given_.exclude_tags,
                                 "Leave out rules with any of these tags (repeatable)")
                      ->delimiter(',');
  products_ = cli.add_option("--product", given_.products,
                             "Load only rules of these logsource products (repeatable)")
                  ->delimiter(',');
  categories_ = cli.add_option("--category", given_.categories,
                               "Load only rules of these logsource categories (repeatable)")
                    ->delimiter(',');
}

Status SelectionFlags::apply(match::RuleSelection& into) const {
  if (!status_) return Status::ok();  // add() was not called
  if (status_->count()) into.statuses = given_.statuses;
  if (min_level_->count()) into.min_level = given_.min_level;
  if (tags_->count()) into.tags = given_.tags;
  if (exclude_tags_->count()) into.exclude_tags = given_.exclude_tags;
  if (products_->count()) into.products = given_.products;
  if (categories_->count()) into.categories = given_.categories;
  return into.check();
}

template <typename T>
void ServerFlags::add(CLI::App& cli, const char* name, T Config::*member, const char* help) {
  CLI::Option* o = cli.add_option(name, given_.*member, help);
  apply_.push_back([this, o, member](Config& c) {
    if (o->count()) c.*member = given_.*member;
    return Status::ok();
  });
}

// A retention age: a duration such as 7d, or 0 for none.
void ServerFlags::add_age(CLI::App& cli, const char* name, int64_t Config::*member,
                          const char* help) {
  std::string& text = ages_.emplace_back();
  CLI::Option* o = cli.add_option(name, text, help);
  apply_.push_back([o, &text, member, name = std::string(name)](Config& c) {
    if (!o->count()) return Status::ok();
    auto age = parse_age(text);
    if (!age) return Status::invalid(name + " must be a duration such as 7d, not '" + text + "'");
    c.*member = *age;
    return Status::ok();
  });
}

ServerFlags::ServerFlags(CLI::App& cli) {
  cli.add_option("--config", config_file_, "YAML config file (flags override it)")
      ->check(CLI::ExistingFile);
  add(cli, "--kafka-brokers", &Config::brokers,
      "Kafka bootstrap servers; none: embedded mock cluster + simulator");
  add(cli, "--topic", &Config::topic, "Kafka topic of sensor events");
  add(cli, "--group", &Config::group, "Kafka consumer group");
  add(cli, "--group-instance-id", &Config::group_instance_id,
      "Static group membership id (e.g. the pod name)");
  add(cli, "--kafka-properties-file", &Config::kafka_properties_file,
      "More librdkafka properties, 'key=value' lines (secrets such as sasl.password)");
  add(cli, "--data-dir", &Config::data_dir, "RocksDB data directory");
  add(cli, "--listen", &Config::listen, "API address host:port (port 0: any free port)");
  add(cli, "--rules", &Config::rules, "Sigma rule files or directories (repeatable)");
  add(cli, "--mapping", &Config::mapping, "Field mapping YAML (rules/mappings/*.yml)");
  add(cli, "--rule-cache", &Config::rule_cache,
      "Directory of compiled rule databases (default <data-dir>/rule-cache; \"off\": none)");
  add_age(cli, "--rules-watch", &Config::rules_watch_ms,
          "Submit the rules again as a bundle when their files change, looking this often "
          "(e.g. 10s; 0: only at start)");
  select_.add(cli);
  apply_.push_back([this](Config& c) { return select_.apply(c.select); });
  add(cli, "--log-level", &Config::log_level, "trace, debug, info, warn, error");
  add(cli, "--simulator-rate", &Config::simulator_rate,
      "Embedded mode: simulated events per second (0: off)");
  add(cli, "--partitions", &Config::embedded_partitions,
      "Embedded mode: partitions of the events topic");
  add(cli, "--batch-size", &Config::batch_max_messages, "Max messages per batch");
  add(cli, "--workers", &Config::workers,
      "Shard worker threads (0: one per usable core, a cgroup CPU limit counting)");
  add(cli, "--alerts-topic", &Config::alerts_topic,
      "Kafka topic every alert is produced to (\"\": off)");
  add(cli, "--dead-letter-topic", &Config::dead_letter_topic,
      "Kafka topic for invalid events (\"\": off)");
  add(cli, "--batch-ms", &Config::batch_max_ms,
      "Longest the consumer waits on an empty queue (messages are handed on as fetched)");
  add(cli, "--events", &Config::events, "Events kept for hunts and dry runs: all, matched, none");
  add_age(cli, "--events-max-age", &Config::events_max_age_ms,
          "Event retention by age, e.g. 7d (0: none)");
  add(cli, "--events-max-bytes", &Config::events_max_bytes,
      "Event retention by size in bytes (0: none)");
  add_age(cli, "--alerts-max-age", &Config::alerts_max_age_ms,
          "Alert retention by age, e.g. 90d (0: none)");
  add(cli, "--alerts-max-bytes", &Config::alerts_max_bytes,
      "Alert retention by size in bytes (0: none)");
  add(cli, "--checkpoint-dir", &Config::checkpoint_dir, "Where API checkpoints are written");
  add(cli, "--api-tokens-file", &Config::api_tokens_file,
      "API bearer tokens, one '<admin|reader> <token>' per line (also $VIGIL_API_TOKENS)");
  add(cli, "--tls-cert", &Config::api_tls_cert_file, "API over HTTPS: PEM certificate chain file");
  add(cli, "--tls-key", &Config::api_tls_key_file, "API over HTTPS: PEM private key file");
  add(cli, "--rollout-policy", &Config::rollout_policy,
      "Rule bundle rollouts: staged, immediate or pinned");
  add(cli, "--cluster-self", &Config::cluster_self,
      "Cluster mode: this replica's name (the pod name)");
  CLI::Option* peers = cli.add_option("--cluster-peers", given_.cluster_peers,
                                      "Cluster mode: every replica as name=http://host:port")
                           ->delimiter(',');
  apply_.push_back([this, peers](Config& c) {
    if (peers->count()) c.cluster_peers = given_.cluster_peers;
    return Status::ok();
  });
  add_age(cli, "--cluster-peer-timeout", &Config::cluster_peer_timeout_ms,
          "Cluster mode: how long a peer may take to answer (e.g. 5s)");
  add(cli, "--cluster-cursor-key-file", &Config::cluster_cursor_key_file,
      "Cluster mode: the page cursor key every replica shares");
  add(cli, "--cluster-content-topic", &Config::cluster_content_topic,
      "Cluster mode: rule content and the deployment's rollout through this compacted topic "
      "(\"off\": every replica rolls out alone)");
  add(cli, "--correlation-repartition-topic", &Config::correlation_repartition_topic,
      "Correlations across partitions through this topic (\"off\": per partition only)");
}

Expected<Config> ServerFlags::resolve(bool read_files) const {
  Config c;
  if (!config_file_.empty()) {
    if (auto s = load_config_file(config_file_, c, read_files); !s) return s;
  }
  for (const auto& apply : apply_) {
    if (auto s = apply(c); !s) return s;
  }
  if (!ingest::parse_rollout_policy(c.rollout_policy)) {
    return Status::invalid("the rollout policy must be staged, immediate or pinned, not '" +
                           c.rollout_policy + "'");
  }
  if (!ingest::parse_event_retention(c.events))
    return Status::invalid("events must be all, matched or none, not '" + c.events + "'");
  if (c.checkpoint_dir.empty()) c.checkpoint_dir = c.data_dir + "-checkpoints";
  if (read_files && !c.kafka_properties_file.empty()) {
    auto props = read_kafka_properties_file(c.kafka_properties_file);
    if (!props) return props.status();
    c.kafka_properties.insert(c.kafka_properties.end(), props->begin(), props->end());
  }
  if (c.clustered()) {
    // A StatefulSet pod's host name is its pod name.
    if (c.cluster_self.empty()) {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) == 0) c.cluster_self = host;
    }
    std::set<std::string> names;
    for (const auto& p : c.cluster_peers) {
      std::string name, url;
      if (auto s = parse_peer(p, name, url); !s) return s;
      if (!names.insert(name).second)
        return Status::invalid("cluster peer '" + name + "' is listed twice");
    }
    // Were this replica not among the peers by its name, it would ask itself as a peer and
    // count its own answers twice.
    if (!names.count(c.cluster_self))
      return Status::invalid("cluster.self '" + c.cluster_self +
                             "' is not one of cluster.peers: list every replica, this one too, "
                             "and name this one with --cluster-self (default: the host name)");
    if (c.cluster_peer_timeout_ms <= 0)
      return Status::invalid("cluster.peer_timeout must be a positive duration such as 5s");
    if (c.cluster_cursor_key_file.empty())
      return Status::invalid(
          "cluster mode needs cluster.cursor_key_file: every replica seals page cursors with "
          "the same key, so that a page from one continues on any other");
    if (c.cluster_mirror_alerts && c.alerts_topic.empty())
      return Status::invalid(
          "cluster.mirror_alerts needs kafka.alerts_topic: the replicas share alerts through it");
    if (c.cluster_mirror_alerts && c.alerts_format != output::AlertFormat::kVigil)
      return Status::invalid(
          "cluster.mirror_alerts needs kafka.alerts_format vigil: the replicas read each other's "
          "alerts from the alerts topic (other formats can go to outputs)");
  }
  if (c.rule_cache.empty()) c.rule_cache = c.data_dir + "/rule-cache";
  if (c.rule_cache == "off") c.rule_cache.clear();
  if (c.correlation_repartition_topic.empty() && c.clustered())
    c.correlation_repartition_topic = c.topic + ".correlation";
  if (c.correlation_repartition_topic == "off") c.correlation_repartition_topic.clear();
  if (!c.correlation_repartition_topic.empty() &&
      (c.correlation_repartition_topic == c.topic ||
       c.correlation_repartition_topic == c.alerts_topic ||
       c.correlation_repartition_topic == c.dead_letter_topic))
    return Status::invalid("correlation.repartition_topic '" + c.correlation_repartition_topic +
                           "' must be a topic of its own (not the events, alerts or dead-letter "
                           "topic)");
  if (c.cluster_content_topic.empty() && c.clustered())
    c.cluster_content_topic = c.topic + ".content";
  if (c.cluster_content_topic == "off" || !c.clustered()) c.cluster_content_topic.clear();
  if (!c.cluster_content_topic.empty() &&
      (c.cluster_content_topic == c.topic || c.cluster_content_topic == c.alerts_topic ||
       c.cluster_content_topic == c.dead_letter_topic ||
       c.cluster_content_topic == c.correlation_repartition_topic))
    return Status::invalid("cluster.content_topic '" + c.cluster_content_topic +
                           "' must be a topic of its own (not the events, alerts, dead-letter or "
                           "repartition topic)");
  if (c.correlation_max_lateness_ms < 0)
    return Status::invalid("correlation.max_lateness must not be negative");
  if (c.rules.empty()) c.rules.push_back(default_rules_dir());
  if (c.mapping.empty()) c.mapping = default_mapping("vigil-sensor");
  return c;
}

Expected<std::vector<std::pair<std::string, std::string>>> read_kafka_properties_file(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::invalid("cannot read the Kafka properties file '" + path + "'");
  constexpr size_t kMaxBytes = 1 << 20;
  std::string text(kMaxBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxBytes)
    return Status::invalid("the Kafka properties file '" + path + "' is larger than 1 MiB");
  auto trim = [](std::string_view v) {
    const auto b = v.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return std::string_view{};
    return v.substr(b, v.find_last_not_of(" \t\r") - b + 1);
  };
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream lines(text);
  int n = 0;
  for (std::string line; std::getline(lines, line);) {
    ++n;
    const std::string_view t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == '!') continue;
    const size_t eq = t.find('=');
    const std::string where = path + " line " + std::to_string(n);
    if (eq == std::string_view::npos) return Status::invalid(where + ": expected key=value");
    const std::string_view key = trim(t.substr(0, eq));
    if (key.empty()) return Status::invalid(where + ": the key is empty");
    out.emplace_back(std::string(key), std::string(trim(t.substr(eq + 1))));
  }
  return out;
}

Status split_listen(const std::string& listen, std::string& host, uint16_t& port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::invalid("--listen '" + listen + "' must be host:port");
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string p = listen.substr(colon + 1);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || end != p.data() + p.size() || v > 65535)
    return Status::invalid("--listen '" + listen + "': bad port");
  port = static_cast<uint16_t>(v);
  return Status::ok();
}

std::string default_rules_dir() {
  namespace fs = std::filesystem;
  if (fs::is_directory("rules/sigma")) return "rules/sigma";
  return std::string(VIGIL_SOURCE_DIR) + "/rules/sigma";
}

std::string default_mapping(const std::string& name) {
  namespace fs = std::filesystem;
  const std::string local = "rules/mappings/" + name + ".yml";
  if (fs::exists(local)) return local;
  return std::string(VIGIL_SOURCE_DIR) + "/" + local;
}

}  // namespace vigil::app
