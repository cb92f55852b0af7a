#include "content_commands.h"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>
#include <fstream>

#include "config.h"
#include "json_read.h"
#include "vigil/api/client.h"
#include "vigil/core/time.h"
#include "vigil/ingest/simulator.h"
#include "vigil/match/bundle.h"

namespace vigil::app {
namespace {

std::string pretty(const std::string& body) {
  rapidjson::Document d;
  if (!parse_bounded_json(d, body)) return body;
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  d.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// `vigil rollout status` for people: policy and state, the active, known-good and target
// bundles, the stage, the last breach and notice, and each shard's bundle.
std::string rollout_summary(const rapidjson::Document& d) {
  auto str = [&](const char* k) { return json_str(d, k); };
  auto num = json_u64;
  std::string out = "policy " + str("policy") + ", " + str("state") + "\n";
  out += "active bundle " + std::to_string(num(d, "active"));
  if (!str("active_since").empty()) out += " since " + str("active_since");
  out += "; last known good " + std::to_string(num(d, "last_known_good")) + "\n";
  if (d.HasMember("target") && d["target"].IsUint64()) {
    out += "rolling out bundle " + std::to_string(d["target"].GetUint64());
    if (d.HasMember("stage") && d["stage"].IsObject()) {
      const auto& st = d["stage"];
      out += ": stage " + std::to_string(num(st, "index") + 1) + " of " +
             std::to_string(num(st, "stages")) + " (" + std::to_string(num(st, "shards")) +
             " shard(s))";
      if (st.HasMember("started") && st["started"].IsString())
        out += " since " + std::string(st["started"].GetString());
    }
    out += "\n";
  }
  if (!str("last_breach").empty()) out += "last breach: " + str("last_breach") + "\n";
  if (!str("notice").empty()) out += "notice: " + str("notice") + "\n";
  if (d.HasMember("shards") && d["shards"].IsArray() && !d["shards"].Empty()) {
    out += "shards:";
    for (const auto& sh : d["shards"].GetArray()) {
      out += " " + std::to_string(num(sh, "shard")) + "=" + std::to_string(num(sh, "bundle"));
      if (num(sh, "assigned") != num(sh, "bundle"))
        out += "(to " + std::to_string(num(sh, "assigned")) + ")";
    }
    out += "\n";
  }
  return out;
}

// `vigil bundle list`: a table, newest first.
std::string bundle_list_summary(const rapidjson::Document& d) {
  if (!d.HasMember("bundles") || !d["bundles"].IsArray()) return "";
  char line[512];
  std::snprintf(line, sizeof line, "%7s  %-11s  %-10s  %6s  %-24s  %-10s  %s\n", "VERSION",
                "STATUS", "ROLE", "RULES", "CREATED", "BY", "NAME");
  std::string out = line;
  for (const auto& b : d["bundles"].GetArray()) {
    std::string role = json_bool(b, "active")        ? "active"
                       : json_bool(b, "rolling_out") ? "rolling"
                                                     : "";
    if (json_bool(b, "last_known_good")) role += role.empty() ? "lkg" : ",lkg";
    std::snprintf(line, sizeof line, "%7llu  %-11s  %-10s  %6llu  %-24s  %-10s  %s\n",
                  json_u64(b, "version"), json_str(b, "status").c_str(), role.c_str(),
                  json_u64(b, "rules"), json_str(b, "created_at").c_str(),
                  json_str(b, "created_by").c_str(), json_str(b, "name").c_str());
    out += line;
  }
  if (d["bundles"].Empty()) out += "(no bundle stored)\n";
  return out;
}

// `vigil bundle dry-run`: the totals, then the rules whose matches change.
std::string dry_run_summary(const rapidjson::Document& d) {
  std::string out = "bundle " + std::to_string(json_u64(d, "version")) + " against active " +
                    std::to_string(json_u64(d, "active")) + " over " +
                    std::to_string(json_u64(d, "events")) + " stored events";
  if (!json_str(d, "since").empty()) out += " since " + json_str(d, "since");
  if (!json_str(d, "until").empty()) out += " until " + json_str(d, "until");
  if (json_bool(d, "partial")) out += " (partial: the event limit was reached)";
  out += "\n";
  if (d.HasMember("totals") && d["totals"].IsObject()) {
    const auto& t = d["totals"];
    out += "matches: active " + std::to_string(json_u64(t, "active_matches")) + ", candidate " +
           std::to_string(json_u64(t, "candidate_matches")) + " (gained " +
           std::to_string(json_u64(t, "gained")) + ", lost " + std::to_string(json_u64(t, "lost")) +
           ")\n";
  }
  size_t unchanged = 0;
  if (d.HasMember("rules") && d["rules"].IsArray()) {
    for (const auto& r : d["rules"].GetArray()) {
      const std::string status = json_str(r, "status");
      if (status == "unchanged") {
        ++unchanged;
        continue;
      }
      char line[512];
      std::snprintf(line, sizeof line, "  %-9s %s  %s: %llu -> %llu (gained %llu, lost %llu)\n",
                    status.c_str(), json_str(r, "id").c_str(), json_str(r, "title").c_str(),
                    json_u64(r, "active_matches"), json_u64(r, "candidate_matches"),
                    json_u64(r, "gained"), json_u64(r, "lost"));
      out += line;
    }
  }
  out += std::to_string(unchanged) + " rule(s) unchanged; correlations not evaluated\n";
  return out;
}

// `vigil bundle show`: the stored bundle, its validation in short, each problem on a line.
std::string bundle_show_summary(const rapidjson::Document& d) {
  std::string out = "bundle " + std::to_string(json_u64(d, "version"));
  if (!json_str(d, "name").empty()) out += " \"" + json_str(d, "name") + "\"";
  out += " (" + json_str(d, "hash") + "): " + json_str(d, "status");
  if (json_bool(d, "active")) out += ", active";
  if (json_bool(d, "rolling_out")) out += ", rolling out";
  if (json_bool(d, "last_known_good")) out += ", last known good";
  out += "\ncreated " + json_str(d, "created_at") + " by " + json_str(d, "created_by") + "; " +
         std::to_string(json_u64(d, "rules")) + " rules, " + std::to_string(json_u64(d, "files")) +
         " files\n";
  if (!d.HasMember("report") || !d["report"].IsObject()) return out;
  const auto& r = d["report"];
  auto lines = [&](const rapidjson::Value& v, const char* key, const char* label) {
    if (!v.HasMember(key) || !v[key].IsArray()) return;
    for (const auto& x : v[key].GetArray()) {
      if (x.IsString()) out += std::string("  ") + label + ": " + x.GetString() + "\n";
    }
  };
  out += "validation: " + std::to_string(json_u64(r, "rules_ok")) + " rules ok, " +
         std::to_string(json_u64(r, "rules_failed")) + " refused, " +
         std::to_string(json_u64(r, "rules_left_out")) + " left out by the selection; mapping " +
         json_str(r, "mapping") + "\n";
  lines(r, "errors", "error");
  lines(r, "warnings", "warning");
  if (r.HasMember("rules") && r["rules"].IsArray()) {
    for (const auto& rule : r["rules"].GetArray()) {
      const bool ok = json_bool(rule, "ok");
      if (ok && json_str(rule, "left_out").empty()) continue;
      out += std::string(ok ? "  left out " : "  REFUSED  ") + json_str(rule, "source") + " " +
             json_str(rule, "id") + (ok ? ": " + json_str(rule, "left_out") : std::string()) + "\n";
      lines(rule, "errors", "  error");
    }
  }
  out += "(--json for the whole report)\n";
  return out;
}

// `vigil rollout audit`: one line per transition, newest first.
std::string audit_summary(const rapidjson::Document& d) {
  if (!d.HasMember("audit") || !d["audit"].IsArray()) return "";
  std::string out;
  for (const auto& e : d["audit"].GetArray()) {
    out += json_str(e, "time") + "  #" + std::to_string(json_u64(e, "seq")) + "  " +
           json_str(e, "actor") + "  " + json_str(e, "action") + " bundle " +
           std::to_string(json_u64(e, "version"));
    if (json_u64(e, "from")) out += " (from " + std::to_string(json_u64(e, "from")) + ")";
    if (!json_str(e, "reason").empty()) out += ": " + json_str(e, "reason");
    out += "\n";
  }
  if (d["audit"].Empty()) out += "(no transition yet)\n";
  return out;
}

}  // namespace

ContentCommands::ContentCommands(CLI::App& cli) {
  auto server = [&](CLI::App* c) {
    add_target_options(c, target_);
    c->add_flag("--json", json_, "The server's JSON (for machines) instead of the summary");
  };
  auto* bundle =
      cli.add_subcommand("bundle", "Rule bundles: validate, push to vigild, list, dry-run");
  bundle->require_subcommand(1);
  validate_ = bundle->add_subcommand(
      "validate", "Validate a bundle (directory or archive) locally; exit 1 if refused");
  validate_->add_option("path", path_, "Bundle directory, rule file or archive")->required();
  validate_->add_option("--mapping", mapping_,
                        "Mapping for a bundle that names none (default: vigil-sensor)");
  validate_->add_option("--max-rule-cost-ns", max_rule_cost_ns_,
                        "Per-rule scan cost budget (0: not measured)");
  validate_->add_option(
      "--reference-events", reference_,
      "JSONL events to measure scan costs on (default: 500 simulated sensor events)");
  validate_->add_flag("--json", json_, "The report as JSON");
  push_ = bundle->add_subcommand("push", "Validate and store a bundle in a running vigild");
  push_->add_option("path", path_, "Bundle directory, rule file or archive")->required();
  server(push_);
  list_ = bundle->add_subcommand("list", "Stored bundles, newest first");
  server(list_);
  show_ = bundle->add_subcommand("show", "One stored bundle with its validation report");
  show_->add_option("version", version_, "Bundle version")->required();
  server(show_);
  dry_run_ = bundle->add_subcommand("dry-run",
                                    "Run a stored bundle over stored events beside the active one");
  dry_run_->add_option("version", version_, "Bundle version")->required();
  dry_run_->add_option("--since", since_,
                       "Oldest event time: RFC 3339, epoch ms or a duration ago (default 1h)");
  dry_run_->add_option("--until", until_, "Newest event time");
  dry_run_->add_option("--max-events", max_events_, "Events examined at most");
  server(dry_run_);

  auto* rollout = cli.add_subcommand("rollout", "Rule bundle rollouts of a running vigild");
  rollout->require_subcommand(1);
  status_ =
      rollout->add_subcommand("status", "The rollout state: policy, active bundle, stage, shards");
  audit_ = rollout->add_subcommand("audit", "The audit log of content transitions, newest first");
  start_ = rollout->add_subcommand("start", "Roll out a stored bundle by the deployment's policy");
  start_->add_option("version", version_, "Bundle version")->required();
  promote_ = rollout->add_subcommand("promote", "Advance the rollout to its next stage now");
  pause_ = rollout->add_subcommand("pause", "Hold the rollout at its stage");
  resume_ = rollout->add_subcommand("resume", "Resume a paused rollout");
  rollback_ = rollout->add_subcommand(
      "rollback", "Roll back the rollout, or the active bundle to the previous one");
  policy_ = rollout->add_subcommand("policy", "Set the rollout policy");
  policy_->add_option("policy", policy_name_, "staged, immediate or pinned")->required();
  for (CLI::App* c : {status_, audit_, start_, promote_, pause_, resume_, rollback_, policy_}) {
    server(c);
    if (c != status_ && c != audit_ && c != policy_)
      c->add_option("--reason", reason_, "Why, for the audit log");
  }
}

int ContentCommands::validate() const {
  auto b = match::Bundle::load(path_);
  if (!b) {
    std::fprintf(stderr, "vigil: %s\n", b.status().to_string().c_str());
    return 1;
  }
  auto mapping =
      match::FieldMapping::load_file(mapping_.empty() ? default_mapping("vigil-sensor") : mapping_);
  if (!mapping) {
    std::fprintf(stderr, "vigil: %s\n", mapping.status().to_string().c_str());
    return 1;
  }
  match::BundleValidationOptions o;
  o.default_mapping = &*mapping;
  o.max_rule_cost_ns = max_rule_cost_ns_;
  if (!reference_.empty()) {
    std::ifstream in(reference_);
    if (!in) {
      std::fprintf(stderr, "vigil: cannot read '%s'\n", reference_.c_str());
      return 1;
    }
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) o.reference_events.push_back(std::move(line));
    }
  } else {
    ingest::SensorSimulator sim({300, 0.05, 7}, SystemClock::instance());
    ingest::SimulatedEvent e;
    for (int i = 0; i < 500; ++i) {
      sim.next(e);
      o.reference_events.push_back(e.json);
    }
  }
  const match::BundleReport report = match::validate_bundle(*b, o);
  if (json_) {
    std::printf("%s\n", report.to_json().c_str());
  } else {
    for (const auto& r : report.rules) {
      std::printf("%-8s %s %s",
                  !r.ok()               ? "REFUSED"
                  : !r.left_out.empty() ? "left out"
                                        : "ok",
                  r.source.c_str(), r.id.c_str());
      if (!r.left_out.empty()) std::printf(": %s", r.left_out.c_str());
      if (r.filter) std::printf(" (filter, applied to %zu rules)", r.applies_to.size());
      if (r.cost_ns_per_event >= 0) std::printf(" (%.0f ns/event)", r.cost_ns_per_event);
      if (r.tests_passed + r.tests_failed)
        std::printf(" tests %zu/%zu", r.tests_passed, r.tests_passed + r.tests_failed);
      std::printf("\n");
      for (const auto& err : r.errors) std::printf("  error: %s\n", err.c_str());
      for (const auto& w : r.warnings) std::printf("  warning: %s\n", w.c_str());
    }
    for (const auto& err : report.errors) std::printf("error: %s\n", err.c_str());
    for (const auto& w : report.warnings) std::printf("warning: %s\n", w.c_str());
    std::printf("bundle %s: %s, %zu rules ok, %zu refused", report.hash.c_str(),
                report.ok() ? "VALID" : "REFUSED", report.rules_ok, report.rules_failed);
    if (report.rules_left_out)
      std::printf(", %zu left out by the selection", report.rules_left_out);
    std::printf("\n");
  }
  return report.ok() ? 0 : 1;
}

int ContentCommands::call(const std::string& method, const std::string& target,
                          const std::string& body, int ok_status,
                          std::string (*human)(const rapidjson::Document&)) const {
  api::ClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.bearer_token = token_or_default(target_.token);
  req.ca_file = ca_file_or_default(target_.ca_file);
  req.timeout_ms = 600000;
  auto res = api::http_call(server_or_default(target_.server), req);
  if (!res) {
    std::fprintf(stderr, "vigil: %s\n", res.status().to_string().c_str());
    return 1;
  }
  const bool ok = res->status == ok_status || (ok_status == 201 && res->status == 200);
  if (!ok) {
    rapidjson::Document d;
    if (parse_bounded_json(d, res->body) && d.IsObject() && d.HasMember("detail") &&
        d["detail"].IsString()) {
      std::fprintf(stderr, "vigil: HTTP %d: %s\n", res->status, d["detail"].GetString());
    } else {
      std::fprintf(stderr, "vigil: HTTP %d\n", res->status);
    }
    if (res->status != 422) return 1;
  }
  rapidjson::Document d;
  if (!json_ && ok && human != nullptr && parse_bounded_json(d, res->body) && d.IsObject()) {
    std::printf("%s", human(d).c_str());
  } else {
    std::printf("%s\n", json_ ? res->body.c_str() : pretty(res->body).c_str());
  }
  return ok ? 0 : 1;
}

int ContentCommands::run() const {
  if (validate_->parsed()) return validate();
  if (push_->parsed()) {
    auto b = match::Bundle::load(path_);
    if (!b) {
      std::fprintf(stderr, "vigil: %s\n", b.status().to_string().c_str());
      return 1;
    }
    return call("POST", "/api/v1/bundles", b->to_tar(), 201);
  }
  if (list_->parsed()) return call("GET", "/api/v1/bundles", "", 200, &bundle_list_summary);
  if (show_->parsed())
    return call("GET", "/api/v1/bundles/" + std::to_string(version_), "", 200,
                &bundle_show_summary);
  if (dry_run_->parsed()) {
    std::string t = "/api/v1/bundles/" + std::to_string(version_) + "/dry-run";
    add_param(t, "since", since_);
    add_param(t, "until", until_);
    if (max_events_) add_param(t, "max_events", std::to_string(max_events_));
    return call("POST", t, "", 200, &dry_run_summary);
  }
  if (status_->parsed()) return call("GET", "/api/v1/rollout", "", 200, &rollout_summary);
  if (audit_->parsed()) return call("GET", "/api/v1/rollout/audit", "", 200, &audit_summary);
  if (policy_->parsed()) {
    std::string t = "/api/v1/rollout/policy";
    add_param(t, "policy", policy_name_);
    return call("POST", t, "", 200);
  }
  const std::pair<CLI::App*, const char*> actions[] = {{start_, "start"},
                                                       {promote_, "promote"},
                                                       {pause_, "pause"},
                                                       {resume_, "resume"},
                                                       {rollback_, "rollback"}};
  for (const auto& [cmd, action] : actions) {
    if (!cmd->parsed()) continue;
    std::string t = std::string("/api/v1/rollout/") + action;
    if (cmd == start_) add_param(t, "version", std::to_string(version_));
    add_param(t, "reason", reason_);
    return call("POST", t, "", 200);
  }
  return -1;
}

}  // namespace vigil::app
