#include "api_commands.h"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>

#include "json_read.h"
#include "vigil/api/client.h"

namespace vigil::app {
namespace {

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// Cuts `s` to `width` characters (bytes; the API's text is mostly ASCII), marking the cut.
std::string fit(std::string s, size_t width) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > width) s = s.substr(0, width - 1) + "~";
  return s;
}

// A GET (or `method`) of the API; on failure prints why and returns nullopt.
std::optional<rapidjson::Document> get_json(const ApiTarget& t, const std::string& target,
                                            const char* method = "GET") {
  api::ClientRequest req;
  req.method = method;
  req.target = target;
  req.bearer_token = token_or_default(t.token);
  req.ca_file = ca_file_or_default(t.ca_file);
  auto res = api::http_call(server_or_default(t.server), req);
  if (!res) {
    std::fprintf(stderr, "vigil: %s\n", res.status().to_string().c_str());
    return std::nullopt;
  }
  rapidjson::Document d;
  const bool parsed = parse_bounded_json(d, res->body);
  if (res->status != 200) {
    const std::string detail = parsed && d.IsObject() ? json_str(d, "detail") : res->body;
    std::fprintf(stderr, "vigil: HTTP %d: %s\n", res->status, detail.c_str());
    if (res->status == 401 && req.bearer_token.empty()) {
      std::fprintf(
          stderr,
          "vigil: no token given: use --token, VIGIL_TOKEN, or run where ./data/api-token is\n");
    }
    return std::nullopt;
  }
  if (!parsed) {
    std::fprintf(
        stderr,
        "vigil: the server answered with something that is not JSON (or nests deeper than %zu)\n",
        kMaxJsonDepth);
    return std::nullopt;
  }
  return d;
}

}  // namespace

void add_param(std::string& target, const char* name, const std::string& value) {
  if (value.empty()) return;
  target += target.find('?') == std::string::npos ? '?' : '&';
  target += name;
  target += '=';
  target += api::url_encode(value);
}

std::string server_or_default(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("VIGIL_SERVER"); env && *env) return env;
  return "http://127.0.0.1:8080";
}

std::string token_or_default(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("VIGIL_TOKEN"); env && *env) return env;
  std::ifstream in("data/api-token");
  std::string token;
  in >> token;
  return token;
}

std::string ca_file_or_default(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("VIGIL_CA_FILE"); env && *env) return env;
  return {};
}

void add_target_options(CLI::App* command, ApiTarget& target) {
  command->add_option("--server", target.server,
                      "vigild API (default $VIGIL_SERVER or http://127.0.0.1:8080)");
  command->add_option("--token", target.token,
                      "API bearer token (default $VIGIL_TOKEN or ./data/api-token)");
  command->add_option("--ca-file", target.ca_file,
                      "https: PEM CA bundle to trust (default $VIGIL_CA_FILE, else the system's)");
}

ApiCommands::ApiCommands(CLI::App& cli) {
  auto common = [&](CLI::App* c) {
    add_target_options(c, target_);
    c->add_flag("--json", page_.json, "One JSON document per line instead of a table");
  };
  auto paging = [&](CLI::App* c) {
    c->add_option("--since", page_.since,
                  "Oldest time: RFC 3339, epoch ms, or a duration ago (1h, 7d)");
    c->add_option("--until", page_.until, "Newest time, same forms");
    c->add_option("--limit", page_.limit, "Rows per page (1..1000)")->check(CLI::Range(1, 1000));
    c->add_option("--cursor", page_.cursor, "Start from a page's next_cursor");
    c->add_flag("--all", page_.all, "Follow the pages to the end");
  };
  alerts_ = cli.add_subcommand("alerts", "Alerts from a running vigild, newest first");
  common(alerts_);
  paging(alerts_);
  alerts_->add_option("--rule", rule_, "Rule id");
  alerts_->add_option("--host", host_, "Host");
  alerts_->add_option("--severity", severity_, "Levels, comma-separated (e.g. high,critical)");
  alerts_->add_option("--tag", tag_, "Rule tag (e.g. attack.t1059.001)");
  alerts_->add_option("--text", text_, "Text in the rule title");
  alerts_->add_flag("--full", full_,
                    "With --json: whole alerts (matched fields and event), not summaries");
  show_ = alerts_->add_subcommand("show", "One alert with its event");
  show_->add_option("id", id_, "Alert id (32 hex digits)")->required();
  add_target_options(show_, target_);
  show_->add_flag("--json", page_.json, "Compact JSON instead of indented");
  events_ = cli.add_subcommand("events",
                               "Hunt through the events a running vigild retained, newest first");
  common(events_);
  paging(events_);
  events_->add_option("--field", fields_,
                      "PATH=VALUE, PATH~VALUE (contains) or PATH (exists); repeatable");
  stats_ =
      cli.add_subcommand("stats", "The pipeline of a running vigild: per shard and per partition");
  common(stats_);
  outputs_ = cli.add_subcommand("outputs", "The alert outputs of a running vigild");
  outputs_->require_subcommand(1);
  outputs_status_ = outputs_->add_subcommand(
      "status", "Each output: state, delivered, failed, retried, backlog, last error");
  common(outputs_status_);
  outputs_test_ = outputs_->add_subcommand("test", "Send a test alert through one output now");
  outputs_test_->add_option("name", output_name_, "The output's name")->required();
  add_target_options(outputs_test_, target_);
  // `vigil rules active`, beside `vigil rules check` (added before this).
  rules_ = cli.get_subcommand("rules")->add_subcommand(
      "active", "The active rules of a running vigild: matches, scan costs");
  common(rules_);
}

int ApiCommands::run() const {
  if (show_->parsed()) return alert_show();
  if (alerts_->parsed()) return alerts();
  if (events_->parsed()) return events();
  if (stats_->parsed()) return stats();
  if (outputs_status_->parsed()) return outputs_status();
  if (outputs_test_->parsed()) return outputs_test();
  if (rules_->parsed()) return rules();
  return -1;
}

namespace {

// One replica's pipeline: totals, shards, partitions.
void print_pipeline_stats(const rapidjson::Value& d) {
  auto u64 = json_u64;
  std::printf("uptime %.0f s, %llu events, %llu batches, store errors %llu, kafka errors %llu\n",
              json_double(d, "uptime_seconds"), u64(d, "events"), u64(d, "batches"),
              u64(d, "store_errors"), u64(d, "kafka_errors"));
  std::printf("%-6s  %12s  %10s  %14s  %9s  %9s  %8s  %7s  %6s\n", "SHARD", "EVENTS", "EVENTS/S",
              "BYTES", "ALERTS", "INVALID", "DEAD", "INBOX", "BUNDLE");
  for (const auto& s : json_array(d, "shards")) {
    std::printf("%-6llu  %12llu  %10.0f  %14llu  %9llu  %9llu  %8llu  %7llu  %6llu\n",
                u64(s, "shard"), u64(s, "events"), json_double(s, "events_per_second"),
                u64(s, "bytes"), u64(s, "alerts"), u64(s, "invalid"), u64(s, "dead_letters"),
                u64(s, "inbox"), u64(s, "bundle"));
  }
  std::printf("\n%-32s  %9s  %5s  %10s\n", "TOPIC", "PARTITION", "SHARD", "LAG");
  for (const auto& p : json_array(d, "partitions")) {
    const std::string lag = p.IsObject() && p.HasMember("lag") && p["lag"].IsInt64()
                                ? std::to_string(p["lag"].GetInt64())
                                : "?";
    std::printf("%-32s  %9llu  %5llu  %10s\n", fit(json_str(p, "topic"), 32).c_str(),
                u64(p, "partition"), u64(p, "shard"), lag.c_str());
  }
}

}  // namespace

int ApiCommands::stats() const {
  auto d = get_json(target_, "/api/v1/stats");
  if (!d) return 1;
  if (page_.json) {
    std::printf("%s\n", compact(*d).c_str());
    return 0;
  }
  if (!d->IsObject() || !d->HasMember("replicas")) {  // a single replica
    print_pipeline_stats(*d);
    return 0;
  }
  // Cluster mode: every replica that answered, then those that did not.
  bool first = true;
  for (const auto& r : json_array(*d, "replicas")) {
    std::printf("%sreplica %s\n", first ? "" : "\n", json_str(r, "replica").c_str());
    first = false;
    print_pipeline_stats(r);
  }
  for (const auto& m : json_array(*d, "missing")) {
    std::printf("\nreplica %s did not answer: %s\n", json_str(m, "peer").c_str(),
                fit(json_str(m, "error"), 160).c_str());
  }
  return 0;
}

int ApiCommands::outputs_status() const {
  auto d = get_json(target_, "/api/v1/outputs");
  if (!d) return 1;
  if (page_.json) {
    std::printf("%s\n", compact(*d).c_str());
    return 0;
  }
  const auto outputs = json_array(*d, "outputs");
  if (outputs.Empty()) {
    std::printf("no outputs configured (outputs: in the config file)\n");
    return 0;
  }
  auto u64 = json_u64;
  std::printf("%-20s  %-10s  %-10s  %-6s  %10s  %7s  %7s  %7s  %7s  %8s\n", "NAME", "TYPE", "STATE",
              "FORMAT", "DELIVERED", "FAILED", "RETRIED", "REFUSED", "DROPPED", "BACKLOG");
  for (const auto& o : outputs) {
    std::printf("%-20s  %-10s  %-10s  %-6s  %10llu  %7llu  %7llu  %7llu  %7llu  %8llu\n",
                fit(json_str(o, "name"), 20).c_str(), fit(json_str(o, "type"), 10).c_str(),
                fit(json_str(o, "state"), 10).c_str(), fit(json_str(o, "format"), 6).c_str(),
                u64(o, "delivered"), u64(o, "failed"), u64(o, "retried"), u64(o, "refused"),
                u64(o, "dropped"), u64(o, "backlog"));
    if (const std::string e = json_str(o, "last_error"); !e.empty())
      std::printf("  last error %s: %s\n", json_str(o, "last_error_at").c_str(),
                  fit(e, 160).c_str());
  }
  return 0;
}

int ApiCommands::outputs_test() const {
  auto d = get_json(target_, "/api/v1/outputs/" + api::url_encode(output_name_) + "/test", "POST");
  if (!d) return 1;
  std::printf("output %s: the test alert was delivered\n", output_name_.c_str());
  return 0;
}

int ApiCommands::rules() const {
  auto d = get_json(target_, "/api/v1/rules");
  if (!d) return 1;
  if (page_.json) {
    std::printf("%s\n", compact(*d).c_str());
    return 0;
  }
  std::printf("bundle %llu\n%-36s  %-8s  %10s  %12s  %s\n",
              static_cast<unsigned long long>((*d)["bundle"].GetUint64()), "ID", "LEVEL", "MATCHES",
              "COST NS/EV", "TITLE");
  for (const auto& r : (*d)["rules"].GetArray()) {
    const uint64_t n = r.HasMember("matches") ? r["matches"].GetUint64() : r["alerts"].GetUint64();
    const std::string cost =
        r["cost_ns_per_event"].IsNumber()
            ? std::to_string(static_cast<int64_t>(r["cost_ns_per_event"].GetDouble()))
            : "-";
    std::printf("%-36s  %-8s  %10llu  %12s  %s\n", json_str(r, "id").c_str(),
                fit(json_str(r, "level"), 8).c_str(), static_cast<unsigned long long>(n),
                cost.c_str(), fit(json_str(r, "title"), 60).c_str());
  }
  return 0;
}

int ApiCommands::alerts() const {
  std::string base = "/api/v1/alerts?limit=" + std::to_string(page_.limit);
  add_param(base, "since", page_.since);
  add_param(base, "until", page_.until);
  add_param(base, "rule", rule_);
  add_param(base, "host", host_);
  add_param(base, "severity", severity_);
  add_param(base, "tag", tag_);
  add_param(base, "q", text_);
  if (full_) add_param(base, "view", "full");
  std::string cursor = page_.cursor;
  size_t rows = 0;
  for (bool first = true;; first = false) {
    std::string target = base;
    add_param(target, "cursor", cursor);
    auto d = get_json(target_, target);
    if (!d) return 1;
    // The header once the server accepted the query: an error is printed alone.
    if (first && !page_.json)
      std::printf("%-24s  %-13s  %-20s  %-44s  %s\n", "TIME", "LEVEL", "HOST", "RULE", "ID");
    for (const auto& a : (*d)["alerts"].GetArray()) {
      ++rows;
      if (page_.json) {
        std::printf("%s\n", compact(a).c_str());
        continue;
      }
      const auto& rule = a.HasMember("rule") ? a["rule"] : a;
      std::printf("%-24s  %-13s  %-20s  %-44s  %s\n", fit(json_str(a, "time"), 24).c_str(),
                  fit(json_str(rule, "level"), 13).c_str(), fit(json_str(a, "host"), 20).c_str(),
                  fit(json_str(rule, "title"), 44).c_str(), json_str(a, "id").c_str());
    }
    cursor = (*d)["next_cursor"].IsString() ? (*d)["next_cursor"].GetString() : "";
    if (!page_.all || cursor.empty()) {
      if (!page_.json) {
        std::printf("%zu alert(s)", rows);
        if (!cursor.empty()) std::printf("; more: --cursor %s (or --all)", cursor.c_str());
        std::printf("\n");
      }
      return 0;
    }
  }
}

int ApiCommands::alert_show() const {
  auto d = get_json(target_, "/api/v1/alerts/" + api::url_encode(id_));
  if (!d) return 1;
  rapidjson::StringBuffer sb;
  if (page_.json) {
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    d->Accept(w);
  } else {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    d->Accept(w);
  }
  std::printf("%s\n", sb.GetString());
  return 0;
}

int ApiCommands::events() const {
  std::string base = "/api/v1/events?limit=" + std::to_string(page_.limit);
  add_param(base, "since", page_.since);
  add_param(base, "until", page_.until);
  for (const auto& f : fields_) add_param(base, "field", f);
  if (!page_.json) std::printf("%-24s  %-28s  %s\n", "TIME", "SOURCE", "EVENT");
  std::string cursor = page_.cursor;
  size_t rows = 0;
  for (;;) {
    std::string target = base;
    add_param(target, "cursor", cursor);
    auto d = get_json(target_, target);
    if (!d) return 1;
    for (const auto& e : (*d)["events"].GetArray()) {
      ++rows;
      if (page_.json) {
        std::printf("%s\n", compact(e).c_str());
        continue;
      }
      // The stream is "<cluster id>/<topic>": the topic is what people know.
      const std::string stream = json_str(e, "stream");
      const std::string source = stream.substr(stream.find('/') + 1) + "/" +
                                 std::to_string(e["partition"].GetInt()) + "@" +
                                 std::to_string(e["offset"].GetInt64());
      const std::string body =
          e.HasMember("event") ? compact(e["event"]) : json_str(e, "event_raw");
      std::printf("%-24s  %-28s  %s\n", fit(json_str(e, "time"), 24).c_str(),
                  fit(source, 28).c_str(), fit(body, 120).c_str());
    }
    cursor = (*d)["next_cursor"].IsString() ? (*d)["next_cursor"].GetString() : "";
    const bool partial = (*d)["partial"].IsBool() && (*d)["partial"].GetBool();
    if (!page_.all || cursor.empty()) {
      if (!page_.json) {
        std::printf("%zu event(s)", rows);
        if (!cursor.empty())
          std::printf("; %s: --cursor %s (or --all)",
                      partial ? "scan budget reached, go on" : "more", cursor.c_str());
        std::printf("\n");
      }
      return 0;
    }
  }
}

}  // namespace vigil::app
