// vigil: the command-line tool. Subcommands:
//   vigil rules check <dir|file>... [--mapping F] [--json] [selection flags]
//   vigil match --rules <dir|file>... [--mapping F] --events <file.jsonl|-> [selection flags]
//     selection flags: --status --min-level --tag --exclude-tag --product --category
//   vigil mapping import-pysigma PIPELINE.yml [--logsources MAPPING] [-o OUT]
//   vigil simulate --brokers B [--topic T] [--rate N] [--count N]
//   vigil dev kafka [--partitions N] [--topic T]   (stdin: down B | up B | leader T P B | topic T
//   N) vigil admin checkpoint NAME [--server URL]      online: into the server's checkpoint dir
//   vigil admin checkpoint DIR --data-dir D         offline: vigild not running on D
//   vigil alerts [--since 1h --rule ID --host H --severity L --tag T --text X --all --json]
//   vigil alerts show ID [--json]
//   vigil events [--since 1h --field PATH=V ... --all --json]

#include <fcntl.h>
#include <pthread.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "api_commands.h"
#include "config.h"
#include "content_commands.h"
#include "line_reader.h"
#include "signals.h"
#include "vigil/api/client.h"
#include "vigil/core/event.h"
#include "vigil/core/log.h"
#include "vigil/ingest/embedded_kafka.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/correlator.h"
#include "vigil/match/database_cache.h"
#include "vigil/match/matcher.h"
#include "vigil/match/pysigma_import.h"
#include "vigil/store/store.h"

using namespace vigil;

namespace {

void write_str(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

struct Compiled {
  std::shared_ptr<const match::RuleSet> rules;
  match::CompileReport report;
};

Expected<Compiled> compile_rules(const std::vector<std::string>& paths,
                                 const std::string& mapping_path,
                                 const match::RuleSelection& selection) {
  auto mapping = match::FieldMapping::load_file(
      mapping_path.empty() ? app::default_mapping("vigil-sensor") : mapping_path);
  if (!mapping) return mapping.status();
  Compiled c;
  auto parsed = match::prepare_rules(match::load_rules(paths, c.report), selection, c.report);
  auto rs = match::RuleSet::compile(parsed, *mapping, c.report);
  if (!rs) return rs.status();
  c.rules = std::move(*rs);
  return c;
}

// "databases: 12 loaded from the rule cache in 0.01 s, 3 compiled in 1.20 s" (stderr, text).
std::string describe_rule_cache() {
  const auto st = match::DatabaseCache::stats();
  const std::string dir = match::DatabaseCache::directory();
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "Hyperscan databases: %llu loaded from the rule cache in %.2f s, %llu compiled in "
                "%.2f s",
                static_cast<unsigned long long>(st.hits), st.load_seconds,
                static_cast<unsigned long long>(st.misses), st.compile_seconds);
  std::string out = buf;
  if (st.rejected) out += " (" + std::to_string(st.rejected) + " damaged entries rebuilt)";
  out += "; pattern checks: " + std::to_string(st.checks_remembered) + " remembered, " +
         std::to_string(st.checks_made) + " made";
  out += dir.empty() ? " (rule cache off)" : " (" + dir + ")";
  return out;
}

// The vigil tool's rule cache: $VIGIL_RULE_CACHE ("off": none), else $XDG_CACHE_HOME/vigil/
// rules, else ~/.cache/vigil/rules. A directory that cannot be made leaves the cache off.
void configure_rule_cache() {
  std::string dir;
  if (const char* v = std::getenv("VIGIL_RULE_CACHE")) {
    dir = v;
    if (dir == "off") return;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    dir = std::string(x) + "/vigil/rules";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    dir = std::string(h) + "/.cache/vigil/rules";
  }
  if (!dir.empty()) (void)match::DatabaseCache::configure(dir);
}

int rules_check(const std::vector<std::string>& paths, const std::string& mapping,
                const match::RuleSelection& selection, bool json) {
  auto c = compile_rules(paths, mapping, selection);
  if (!c) {
    std::fprintf(stderr, "vigil: %s\n", c.status().to_string().c_str());
    return 2;
  }
  const auto& report = c->report;
  if (json) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("rules");
    w.StartArray();
    for (const auto& d : report.rules) {
      w.StartObject();
      w.Key("source");
      write_str(w, d.source);
      w.Key("id");
      write_str(w, d.rule_id);
      w.Key("title");
      write_str(w, d.title);
      w.Key("kind");
      write_str(w, d.filter ? "filter" : "rule");
      w.Key("status");
      write_str(w, !d.status.is_ok()     ? "unsupported"
                   : !d.left_out.empty() ? "left_out"
                   : d.filter            ? "applied"
                                         : "compiled");
      if (!d.status.is_ok()) {
        w.Key("reason");
        write_str(w, d.status.to_string());
      }
      if (!d.left_out.empty()) {
        w.Key("reason");
        write_str(w, d.left_out);
      }
      if (d.filter) {
        w.Key("applies_to");
        w.StartArray();
        for (const auto& x : d.applies_to) write_str(w, x);
        w.EndArray();
      }
      w.Key("warnings");
      w.StartArray();
      for (const auto& x : d.warnings) write_str(w, x);
      w.EndArray();
      w.Key("risks");
      w.StartArray();
      for (const auto& x : d.risks) write_str(w, x);
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.Key("specification");  // the Sigma specification version implemented
    write_str(w, match::kSigmaSpecificationVersion);
    w.Key("compiled");
    w.Uint64(report.compiled);
    w.Key("unsupported");
    w.Uint64(report.unsupported);
    w.Key("left_out");
    w.Uint64(report.left_out);
    w.Key("filters");
    w.Uint64(report.filters);
    const auto cache = match::DatabaseCache::stats();
    w.Key("databases");
    w.StartObject();
    w.Key("loaded");
    w.Uint64(cache.hits);
    w.Key("load_seconds");
    w.Double(cache.load_seconds);
    w.Key("compiled");
    w.Uint64(cache.misses);
    w.Key("compile_seconds");
    w.Double(cache.compile_seconds);
    w.Key("rebuilt");
    w.Uint64(cache.rejected);
    w.Key("pattern_checks_remembered");
    w.Uint64(cache.checks_remembered);
    w.Key("pattern_checks_made");
    w.Uint64(cache.checks_made);
    w.Key("cache");
    write_str(w, match::DatabaseCache::directory());
    w.EndObject();
    w.EndObject();
    std::printf("%s\n", sb.GetString());
  } else {
    for (const auto& d : report.rules) {
      if (d.status.is_ok() && !d.left_out.empty()) {
        std::printf("left out     %s  %s: %s\n", d.rule_id.c_str(), d.source.c_str(),
                    d.left_out.c_str());
      } else if (d.status.is_ok() && d.filter) {
        std::string targets;
        for (size_t i = 0; i < d.applies_to.size(); ++i) {
          if (i == 5) {
            targets += ", ... (" + std::to_string(d.applies_to.size()) + " rules)";
            break;
          }
          targets += (i ? ", " : "") + d.applies_to[i];
        }
        std::printf("filter       %s  %s -> %s\n", d.rule_id.c_str(), d.source.c_str(),
                    targets.empty() ? "(no rule)" : targets.c_str());
      } else if (d.status.is_ok()) {
        std::printf("ok           %s  %s\n", d.rule_id.c_str(), d.source.c_str());
      } else {
        std::printf("unsupported  %s\n", d.status.to_string().c_str());
      }
      for (const auto& x : d.warnings)
        std::printf("  warning: %s: %s\n", d.source.c_str(), x.c_str());
      for (const auto& x : d.risks) std::printf("  risk: %s: %s\n", d.source.c_str(), x.c_str());
    }
    std::printf("compiled %zu, unsupported %zu", report.compiled, report.unsupported);
    if (report.left_out)
      std::printf(", left out %zu (%s)", report.left_out, selection.describe().c_str());
    if (report.filters) std::printf(", filters applied %zu", report.filters);
    std::printf("\n%s\n", describe_rule_cache().c_str());
    std::printf("Sigma specification %s (rules, modifiers, correlations, filters)\n",
                std::string(match::kSigmaSpecificationVersion).c_str());
  }
  return report.unsupported == 0 ? 0 : 1;
}

// A pySigma pipeline as a vigil mapping: the mapping to `out` (or stdout), notes to stderr.
int import_pysigma(const std::string& pipeline, const std::string& logsources_path,
                   const std::string& out) {
  std::ifstream in(pipeline, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "vigil: cannot read '%s'\n", pipeline.c_str());
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::optional<match::FieldMapping> logsources;
  if (!logsources_path.empty()) {
    auto m = match::FieldMapping::load_file(logsources_path);
    if (!m) {
      std::fprintf(stderr, "vigil: %s\n", m.status().message().c_str());
      return 2;
    }
    logsources = std::move(*m);
  }
  auto r =
      match::import_pysigma_pipeline(text.str(), pipeline, logsources ? &*logsources : nullptr);
  if (!r) {
    std::fprintf(stderr, "vigil: %s\n", r.status().message().c_str());
    return 1;
  }
  for (const auto& n : r->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  if (out.empty()) {
    std::fputs(r->mapping_yaml.c_str(), stdout);
    return 0;
  }
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  o << r->mapping_yaml;
  if (!o.flush()) {
    std::fprintf(stderr, "vigil: cannot write '%s'\n", out.c_str());
    return 2;
  }
  std::fprintf(stderr, "vigil: wrote %s\n", out.c_str());
  return 0;
}

int match_events(const std::vector<std::string>& paths, const std::string& mapping,
                 const match::RuleSelection& selection, const std::string& events_path) {
  auto c = compile_rules(paths, mapping, selection);
  if (!c) {
    std::fprintf(stderr, "vigil: %s\n", c.status().to_string().c_str());
    return 2;
  }
  for (const auto& d : c->report.rules) {
    if (!d.status.is_ok())
      std::fprintf(stderr, "vigil: rule not loaded: %s\n", d.status.to_string().c_str());
  }
  if (c->report.left_out > 0) {
    std::fprintf(stderr,
                 "vigil: %zu rules left out by the selection (%s); `vigil rules check` "
                 "lists them with why\n",
                 c->report.left_out, selection.describe().c_str());
  }
  std::fprintf(stderr, "vigil: %s\n", describe_rule_cache().c_str());
  int fd = STDIN_FILENO;
  if (events_path != "-") {
    fd = ::open(events_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::fprintf(stderr, "vigil: cannot read events '%s'\n", events_path.c_str());
      return 2;
    }
  }
  struct CloseOnExit {
    int fd;
    ~CloseOnExit() {
      if (fd != STDIN_FILENO) ::close(fd);
    }
  } close_on_exit{fd};
  app::LineReader in(fd);
  auto matcher = match::Matcher::create(c->rules);
  if (!matcher) {
    std::fprintf(stderr, "vigil: %s\n", matcher.status().to_string().c_str());
    return 2;
  }
  EventParser parser;
  Event event;
  std::vector<uint32_t> hits;
  const auto& infos = c->rules->rules();
  // Correlations run over the events' own times (the mapping's time field).
  match::Correlator correlator(c->rules);
  std::vector<match::CorrelationHit> fired;
  TimeMs last_time = 0, last_sweep = INT64_MIN / 2;
  bool warned_time = false;
  auto print = [](uint64_t index, const std::string& id, const std::string& title) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("event");
    w.Uint64(index);
    w.Key("rule_id");
    write_str(w, id);
    w.Key("title");
    write_str(w, title);
    w.EndObject();
    std::printf("%s\n", sb.GetString());
  };
  auto print_fired = [&] {
    for (const auto& f : fired) {
      const auto& info = c->rules->correlations()[f.correlation].info;
      // A chain's inner correlation alerts only when a correlation it feeds generates it.
      if (info.emit) print(std::stoull(f.completed_by), info.id, info.title);
    }
    fired.clear();
  };
  const bool correlating = !c->rules->correlations().empty();
  std::string_view line;
  for (size_t index = 0; in.next(line); ++index) {
    const ParseError pe = parser.parse(line, c->rules->fields(), event);
    if (pe != ParseError::kNone) {
      std::fprintf(stderr, "vigil: event %zu: %s\n", index,
                   std::string(parse_error_name(pe)).c_str());
      continue;
    }
    hits.clear();
    if (auto s = (*matcher)->match(event, hits); !s) {
      std::fprintf(stderr, "vigil: event %zu: %s\n", index, s.to_string().c_str());
      continue;
    }
    if (correlating) {
      TimeMs time = last_time;
      const int32_t slot = c->rules->time_slot();
      if (auto t =
              slot >= 0 ? time_value(event.field(static_cast<uint32_t>(slot))) : std::nullopt) {
        time = *t;
      } else if (!warned_time) {
        std::fprintf(stderr,
                     "vigil: event %zu has no time the mapping names; correlations use the last "
                     "known time\n",
                     index);
        warned_time = true;
      }
      last_time = time;
      // Sweeping every group per event would cost O(groups); once per second of event time
      // is enough (a late window end is judged on the same matches).
      if (time >= last_sweep + 1000 || time < last_sweep) {
        correlator.advance(time, fired);
        print_fired();
        last_sweep = time;
      }
      const std::string ref = std::to_string(index);
      for (uint32_t r : hits) correlator.observe(r, event, time, ref, fired);
    }
    for (uint32_t r : hits) {
      if (infos[r].emit) print(index, infos[r].id, infos[r].title);
    }
    print_fired();
  }
  correlator.advance(INT64_MAX, fired);  // the input ended: judge the open windows
  print_fired();
  if (!in.error().is_ok()) {
    std::fprintf(stderr, "vigil: events: %s\n", in.error().to_string().c_str());
    return 2;
  }
  return 0;
}

// A checkpoint of the store: of a local data directory (opened here), or through a server's
// API (POST /api/v1/admin/checkpoints).
int admin_checkpoint(const std::string& target, const std::string& data_dir,
                     const app::ApiTarget& server) {
  if (!data_dir.empty()) {
    // Offline: RocksDB's lock refuses this while vigild runs on the directory.
    if (!std::filesystem::exists(std::filesystem::path(data_dir) / "CURRENT")) {
      std::fprintf(stderr, "vigil: '%s' holds no vigil store\n", data_dir.c_str());
      return 1;
    }
    auto store = store::Store::open({data_dir});
    if (!store) {
      std::fprintf(stderr, "vigil: %s (is vigild running on it? then use --server)\n",
                   store.status().to_string().c_str());
      return 1;
    }
    if (auto s = (*store)->checkpoint(target); !s) {
      std::fprintf(stderr, "vigil: %s\n", s.to_string().c_str());
      return 1;
    }
    std::printf("checkpoint written to %s\n", target.c_str());
    return 0;
  }
  api::ClientRequest req;
  req.method = "POST";
  req.target = "/api/v1/admin/checkpoints?name=" + api::url_encode(target);
  req.bearer_token = app::token_or_default(server.token);
  req.ca_file = app::ca_file_or_default(server.ca_file);
  req.timeout_ms = 600000;
  auto res = api::http_call(app::server_or_default(server.server), req);
  if (!res) {
    std::fprintf(stderr, "vigil: %s\n", res.status().to_string().c_str());
    return 1;
  }
  if (res->status != 201) {
    std::fprintf(stderr, "vigil: checkpoint refused (HTTP %d): %s\n", res->status,
                 res->body.c_str());
    return 1;
  }
  std::printf("%s\n", res->body.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"vigil: command-line tool for the vigil security event pipeline"};
  cli.require_subcommand(1);
  configure_rule_cache();

  auto* rules_cmd = cli.add_subcommand("rules", "Rule tools");
  rules_cmd->require_subcommand(1);
  auto* check = rules_cmd->add_subcommand("check", "Compile rules and report per-rule status");
  std::vector<std::string> check_paths;
  std::string check_mapping;
  bool check_json = false;
  check->add_option("paths", check_paths, "Rule files or directories")->required();
  check->add_option("--mapping", check_mapping, "Field mapping YAML");
  check->add_flag("--json", check_json, "JSON report");
  app::SelectionFlags check_select;
  check_select.add(*check);

  auto* match_cmd = cli.add_subcommand("match", "Match a JSONL file of events against rules");
  std::vector<std::string> match_rules;
  std::string match_mapping, match_events_path;
  match_cmd->add_option("--rules", match_rules, "Rule files or directories")->required();
  match_cmd->add_option("--mapping", match_mapping, "Field mapping YAML");
  app::SelectionFlags match_select;
  match_select.add(*match_cmd);
  match_cmd
      ->add_option("--events", match_events_path, "Events, one JSON object per line ('-': stdin)")
      ->required();

  auto* mapping_cmd = cli.add_subcommand("mapping", "Field mapping tools");
  mapping_cmd->require_subcommand(1);
  auto* import_cmd = mapping_cmd->add_subcommand(
      "import-pysigma", "Convert a pySigma processing pipeline (YAML) into a vigil mapping");
  std::string import_file, import_logsources, import_out;
  import_cmd->add_option("pipeline", import_file, "The pipeline's YAML file")->required();
  import_cmd->add_option("--logsources", import_logsources,
                         "A vigil mapping whose logsources (and host, time fields) fill in those "
                         "the pipeline does not define");
  import_cmd->add_option("-o,--output", import_out, "Write the mapping here (default: stdout)");

  auto* sim_cmd = cli.add_subcommand("simulate", "Produce simulated sensor events to Kafka");
  ingest::ProduceOptions produce;
  ingest::SimulatorOptions sim_options;
  sim_cmd->add_option("--brokers", produce.brokers, "Kafka bootstrap servers")->required();
  sim_cmd->add_option("--topic", produce.topic, "Topic");
  sim_cmd->add_option("--rate", produce.rate, "Events per second (0: as fast as possible)");
  sim_cmd->add_option("--count", produce.max_events, "Stop after this many events (0: never)");
  sim_cmd->add_option("--hosts", sim_options.hosts, "Simulated hosts");
  sim_cmd->add_option("--malicious-ratio", sim_options.malicious_ratio,
                      "Share of malicious events");
  sim_cmd->add_option("--seed", sim_options.seed, "Random seed");

  auto* dev_cmd = cli.add_subcommand("dev", "Developer tools");
  dev_cmd->require_subcommand(1);
  auto* kafka_cmd = dev_cmd->add_subcommand(
      "kafka", "Run a standalone Kafka mock cluster and print its bootstrap address");
  int dev_partitions = 8, dev_brokers = 1;
  std::string dev_topic = "vigil.events";
  kafka_cmd->add_option("--partitions", dev_partitions, "Partitions of the topic");
  kafka_cmd->add_option("--brokers", dev_brokers, "Number of brokers");
  kafka_cmd->add_option("--topic", dev_topic, "Topic to create");
  std::vector<std::string> dev_extra_topics = {"vigil.alerts", "vigil.deadletter"};
  kafka_cmd->add_option("--extra-topics", dev_extra_topics,
                        "One-partition topics to create too (alerts, dead letters)");
  std::string dev_repartition_topic;
  kafka_cmd->add_option("--repartition-topic", dev_repartition_topic,
                        "Cluster mode's correlation topic, as wide as the events topic "
                        "(default <topic>.correlation; the mock serves no CreateTopics)");
  std::string dev_content_topic;
  kafka_cmd->add_option("--content-topic", dev_content_topic,
                        "Cluster mode's rule content topic, one partition (default "
                        "<topic>.content; the mock does not compact it)");

  auto* admin_cmd = cli.add_subcommand("admin", "Operator tools");
  admin_cmd->require_subcommand(1);
  auto* cp_cmd = admin_cmd->add_subcommand(
      "checkpoint", "Consistent on-line copy of the store (RocksDB Checkpoint)");
  std::string cp_target, cp_data_dir;
  app::ApiTarget cp_server;
  cp_cmd
      ->add_option("target", cp_target,
                   "Checkpoint name on the server; with --data-dir, the directory to create")
      ->required();
  cp_cmd->add_option("--data-dir", cp_data_dir,
                     "Checkpoint this data directory directly (vigild not running on it)");
  app::add_target_options(cp_cmd, cp_server);

  app::ApiCommands api_commands(cli);
  app::ContentCommands content_commands(cli);

  CLI11_PARSE(cli, argc, argv);
  (void)init_logging("warn");
  if (const int rc = api_commands.run(); rc >= 0) return rc;
  if (int rc = content_commands.run(); rc >= 0) return rc;
  if (cp_cmd->parsed()) return admin_checkpoint(cp_target, cp_data_dir, cp_server);

  if (import_cmd->parsed()) return import_pysigma(import_file, import_logsources, import_out);
  auto selection = [](const app::SelectionFlags& flags) -> Expected<match::RuleSelection> {
    match::RuleSelection s;
    if (Status st = flags.apply(s); !st.is_ok()) return st;
    return s;
  };
  if (check->parsed() || match_cmd->parsed()) {
    auto sel = selection(check->parsed() ? check_select : match_select);
    if (!sel) {
      std::fprintf(stderr, "vigil: %s\n", sel.status().message().c_str());
      return 2;
    }
    if (check->parsed()) return rules_check(check_paths, check_mapping, *sel, check_json);
    return match_events(match_rules, match_mapping, *sel, match_events_path);
  }
  if (sim_cmd->parsed()) {
    sigset_t signals = app::block_signals();
    std::atomic<bool> stop{false};
    MetricsRegistry metrics;
    ingest::SensorSimulator sim(sim_options, SystemClock::instance());
    Status result;
    std::thread producer([&] {
      result = ingest::run_simulator(produce, sim, stop, metrics);
      kill(getpid(), SIGTERM);  // wake the signal wait below
    });
    int sig = 0;
    sigwait(&signals, &sig);
    stop = true;
    producer.join();
    std::fprintf(
        stderr, "vigil: produced %llu events\n",
        static_cast<unsigned long long>(metrics.counter_value("vigil_simulator_events_total")));
    if (!result) {
      std::fprintf(stderr, "vigil: %s\n", result.to_string().c_str());
      return 1;
    }
    return 0;
  }
  if (kafka_cmd->parsed()) {
    sigset_t signals = app::block_signals();
    auto k = ingest::EmbeddedKafka::start(dev_brokers, dev_topic, dev_partitions);
    if (!k) {
      std::fprintf(stderr, "vigil: %s\n", k.status().to_string().c_str());
      return 1;
    }
    for (const auto& t : dev_extra_topics) {
      if (auto s = (*k)->create_topic(t, 1); !s) {
        std::fprintf(stderr, "vigil: %s\n", s.to_string().c_str());
        return 1;
      }
    }
    if (dev_repartition_topic.empty()) dev_repartition_topic = dev_topic + ".correlation";
    if (auto s = (*k)->create_topic(dev_repartition_topic, dev_partitions); !s) {
      std::fprintf(stderr, "vigil: %s\n", s.to_string().c_str());
      return 1;
    }
    if (dev_content_topic.empty()) dev_content_topic = dev_topic + ".content";
    if (auto s = (*k)->create_topic(dev_content_topic, 1); !s) {
      std::fprintf(stderr, "vigil: %s\n", s.to_string().c_str());
      return 1;
    }
    std::printf("%s\n", (*k)->bootstrap_servers().c_str());
    std::fflush(stdout);
    // Fault injection for tests: one command per stdin line, answered "ok" or "error: ...".
    std::thread([cluster = k->get()] {
      std::string line;
      while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        const Status s = cluster->control(line);
        std::printf("%s\n", s ? "ok" : ("error: " + s.to_string()).c_str());
        std::fflush(stdout);
      }
    }).detach();
    int sig = 0;
    sigwait(&signals, &sig);
    return 0;
  }
  return 2;
}
