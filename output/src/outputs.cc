#include "vigil/output/outputs.h"

#include <rapidjson/document.h>
#include <xxhash.h>

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "vigil/core/time.h"
#include "vigil/match/selection.h"

namespace vigil::output {

namespace {

struct Reader {
  const YAML::Node& node;
  std::string where;
  bool read_secrets = true;

  Status check_keys(const std::set<std::string>& allowed) const {
    for (const auto& kv : node) {
      const auto k = kv.first.as<std::string>();
      if (!allowed.count(k))
        return Status::invalid(where + ": unknown key '" + k + "' for this output type");
    }
    return Status::ok();
  }
  std::string str(const char* key, std::string def = {}) const {
    return node[key] ? node[key].as<std::string>() : def;
  }
  // A secret: a string, {env: NAME} or {file: PATH} (trailing newlines dropped).
  Expected<std::string> secret(const YAML::Node& v, const std::string& what) const {
    if (!v.IsMap()) return v.as<std::string>();
    if (v.size() != 1 || !(v["env"] || v["file"]))
      return Status::invalid(where + ": " + what +
                             " must be a string, {env: NAME} or {file: PATH}");
    if (!read_secrets) return std::string("(unread)");
    if (v["env"]) {
      const auto name = v["env"].as<std::string>();
      const char* value = std::getenv(name.c_str());
      if (!value || !*value)
        return Status::invalid(where + ": " + what + ": the environment variable " + name +
                               " is not set");
      return std::string(value);
    }
    const auto path = v["file"].as<std::string>();
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::invalid(where + ": " + what + ": cannot read '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (s.empty()) return Status::invalid(where + ": " + what + ": '" + path + "' is empty");
    return s;
  }
  Expected<std::chrono::milliseconds> duration(const YAML::Node& v, const std::string& what,
                                               std::chrono::milliseconds def) const {
    if (!v) return def;
    const auto text = v.as<std::string>();
    const auto ms = parse_duration_ms(text);
    if (!ms || *ms <= 0)
      return Status::invalid(where + ": " + what + " must be a duration such as 10s, not '" + text +
                             "'");
    return std::chrono::milliseconds(*ms);
  }
};

std::vector<std::string> string_list(const YAML::Node& v) {
  std::vector<std::string> out;
  if (!v) return out;
  if (v.IsSequence())
    for (const auto& x : v) out.push_back(x.as<std::string>());
  else
    out.push_back(v.as<std::string>());
  return out;
}

Status split_url(const std::string& url, const std::string& where) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
    return Status::invalid(where + ": url must start with http:// or https://, not '" + url + "'");
  const size_t host = url.find("://") + 3;
  if (host >= url.size() || url[host] == '/' || url[host] == ':')
    return Status::invalid(where + ": url '" + url + "' names no host");
  return Status::ok();
}

const std::pair<std::string_view, int> kFacilities[] = {
    {"kern", 0},      {"user", 1},    {"mail", 2},    {"daemon", 3},  {"auth", 4},
    {"syslog", 5},    {"lpr", 6},     {"news", 7},    {"uucp", 8},    {"cron", 9},
    {"authpriv", 10}, {"ftp", 11},    {"local0", 16}, {"local1", 17}, {"local2", 18},
    {"local3", 19},   {"local4", 20}, {"local5", 21}, {"local6", 22}, {"local7", 23}};

}  // namespace

std::string_view output_type_name(OutputType t) {
  switch (t) {
    case OutputType::kWebhook:
      return "webhook";
    case OutputType::kSlack:
      return "slack";
    case OutputType::kSplunkHec:
      return "splunk_hec";
    case OutputType::kSyslog:
      return "syslog";
  }
  return "webhook";
}

bool OutputConfig::wants(store::AlertLevel level, std::span<const std::string> alert_tags) const {
  // Unknown levels (a rule without one) go everywhere min_level lets informational go.
  const auto effective =
      level == store::AlertLevel::kUnknown ? store::AlertLevel::kInformational : level;
  if (effective < min_level) return false;
  auto any = [&](const std::vector<std::string>& patterns) {
    for (const auto& p : patterns)
      for (const auto& t : alert_tags)
        if (match::tag_matches(p, t)) return true;
    return false;
  };
  if (!tags.empty() && !any(tags)) return false;
  if (!exclude_tags.empty() && any(exclude_tags)) return false;
  return true;
}

Expected<std::vector<OutputConfig>> parse_outputs(const YAML::Node& list, const std::string& where,
                                                  bool read_secrets) {
  std::vector<OutputConfig> out;
  if (!list || list.IsNull()) return out;
  if (!list.IsSequence()) return Status::invalid(where + ": outputs must be a list");
  std::set<std::string> names;
  try {
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node& n = list[i];
      std::string label = where + ": outputs[" + std::to_string(i) + "]";
      if (!n.IsMap()) return Status::invalid(label + " must be a map");
      OutputConfig c;
      c.name = n["name"] ? n["name"].as<std::string>() : "";
      if (c.name.empty()) return Status::invalid(label + " has no name");
      for (char ch : c.name)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
          return Status::invalid(label + ": name '" + c.name +
                                 "' may hold letters, digits, '-', '_' and '.' only");
      label = where + ": output '" + c.name + "'";
      if (!names.insert(c.name).second) return Status::invalid(label + " is defined twice");
      c.id = XXH3_64bits(c.name.data(), c.name.size());
      const std::string type = n["type"] ? n["type"].as<std::string>() : "";
      std::set<std::string> keys{"name",       "type",       "min_level", "tags",  "exclude_tags",
                                 "rate_limit", "batch_size", "timeout",   "retry", "max_backlog"};
      if (type == "webhook") {
        c.type = OutputType::kWebhook;
        keys.insert({"url", "headers", "format", "tls"});
      } else if (type == "slack") {
        c.type = OutputType::kSlack;
        keys.insert({"url", "headers", "tls"});
      } else if (type == "splunk_hec") {
        c.type = OutputType::kSplunkHec;
        keys.insert({"url", "token", "index", "sourcetype", "source", "format", "tls", "headers"});
      } else if (type == "syslog") {
        c.type = OutputType::kSyslog;
        keys.insert({"address", "transport", "message", "format", "facility", "app_name", "tls"});
      } else {
        return Status::invalid(label + ": unknown type '" + type +
                               "' (webhook, slack, splunk_hec, syslog)");
      }
      const Reader r{n, label, read_secrets};
      if (auto s = r.check_keys(keys); !s) return s;

      if (n["min_level"]) {
        const auto l = store::parse_alert_level(n["min_level"].as<std::string>());
        if (!l || *l == store::AlertLevel::kUnknown)
          return Status::invalid(label +
                                 ": min_level must be informational, low, medium, high "
                                 "or critical");
        c.min_level = *l;
      }
      c.tags = string_list(n["tags"]);
      c.exclude_tags = string_list(n["exclude_tags"]);
      if (n["format"]) {
        const auto f = parse_alert_format(n["format"].as<std::string>());
        if (!f) return Status::invalid(label + ": format must be vigil, ecs or ocsf");
        c.format = *f;
      }
      if (n["rate_limit"]) {
        c.rate_limit = n["rate_limit"].as<double>();
        if (c.rate_limit < 0) return Status::invalid(label + ": rate_limit must be >= 0");
      }
      if (n["batch_size"]) {
        const auto b = n["batch_size"].as<int64_t>();
        if (b < 1 || b > 10000) return Status::invalid(label + ": batch_size must be 1-10000");
        c.batch_size = static_cast<size_t>(b);
      }
      if (n["max_backlog"]) {
        const auto b = n["max_backlog"].as<int64_t>();
        if (b < 1) return Status::invalid(label + ": max_backlog must be at least 1");
        c.max_backlog = static_cast<uint64_t>(b);
      }
      auto timeout = r.duration(n["timeout"], "timeout", c.timeout);
      if (!timeout) return timeout.status();
      c.timeout = *timeout;
      if (const auto retry = n["retry"]) {
        const Reader rr{retry, label + " retry"};
        if (auto s = rr.check_keys({"initial", "max"}); !s) return s;
        auto initial = rr.duration(retry["initial"], "initial", c.retry_initial);
        if (!initial) return initial.status();
        auto max = rr.duration(retry["max"], "max", c.retry_max);
        if (!max) return max.status();
        if (*max < *initial) return Status::invalid(label + ": retry.max is below retry.initial");
        c.retry_initial = *initial;
        c.retry_max = *max;
      }
      if (const auto tls = n["tls"]) {
        const Reader tr{tls, label + " tls"};
        if (auto s = tr.check_keys({"ca_file", "insecure_skip_verify"}); !s) return s;
        c.ca_file = tr.str("ca_file");
        if (read_secrets && !c.ca_file.empty() && !std::ifstream(c.ca_file))
          return Status::invalid(label + ": cannot read tls.ca_file '" + c.ca_file + "'");
        c.insecure_skip_verify =
            tls["insecure_skip_verify"] && tls["insecure_skip_verify"].as<bool>();
      }
      if (const auto h = n["headers"]) {
        if (!h.IsMap()) return Status::invalid(label + ": headers must be a map");
        for (const auto& kv : h) {
          const auto name = kv.first.as<std::string>();
          auto value = r.secret(kv.second, "header " + name);
          if (!value) return value.status();
          c.headers.emplace_back(name, std::move(*value));
        }
      }

      if (c.type == OutputType::kSyslog) {
        const auto address = r.str("address");
        const size_t colon = address.rfind(':');
        if (address.empty() || colon == std::string::npos || colon + 1 == address.size())
          return Status::invalid(label + ": address must be host:port, not '" + address + "'");
        c.host = address.substr(0, colon);
        if (c.host.size() > 2 && c.host.front() == '[' && c.host.back() == ']')
          c.host = c.host.substr(1, c.host.size() - 2);
        c.port = address.substr(colon + 1);
        const auto transport = r.str("transport", "tcp");
        if (transport == "tcp")
          c.transport = SyslogTransport::kTcp;
        else if (transport == "tls")
          c.transport = SyslogTransport::kTls;
        else if (transport == "udp")
          c.transport = SyslogTransport::kUdp;
        else
          return Status::invalid(label + ": transport must be tcp, tls or udp");
        const auto message = r.str("message", "json");
        if (message == "json")
          c.message = SyslogMessage::kJson;
        else if (message == "cef")
          c.message = SyslogMessage::kCef;
        else
          return Status::invalid(label + ": message must be json or cef");
        if (n["facility"]) {
          const auto f = n["facility"].as<std::string>();
          bool found = false;
          for (const auto& [fname, code] : kFacilities)
            if (fname == f) {
              c.facility = code;
              found = true;
            }
          if (!found) return Status::invalid(label + ": unknown facility '" + f + "'");
        }
        c.app_name = r.str("app_name", "vigil");
        if (c.app_name.empty() || c.app_name.size() > 48)
          return Status::invalid(label + ": app_name must be 1-48 characters");
      } else {
        c.url = r.str("url");
        if (auto s = split_url(c.url, label); !s) return s;
        if (c.type != OutputType::kSplunkHec) c.batch_size = 1;  // one alert per request
      }
      if (c.type == OutputType::kSplunkHec) {
        if (!n["token"]) return Status::invalid(label + ": token is required");
        auto token = r.secret(n["token"], "token");
        if (!token) return token.status();
        c.token = std::move(*token);
        c.index = r.str("index");
        c.sourcetype = r.str("sourcetype", c.sourcetype);
        c.source = r.str("source", c.source);
      }
      out.push_back(std::move(c));
    }
  } catch (const YAML::Exception& e) {
    return Status::invalid(where + ": outputs: " + e.what());
  }
  return out;
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, int64_t now_ms) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  bool digits = true;
  for (char c : value) digits = digits && c >= '0' && c <= '9';
  if (digits) {
    if (value.size() > 9) return std::chrono::milliseconds(int64_t{999999999} * 1000);
    return std::chrono::milliseconds(std::atoll(std::string(value).c_str()) * 1000);
  }
  // An HTTP date: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  const std::string text(value);
  if (!strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
  const int64_t at = static_cast<int64_t>(timegm(&tm)) * 1000;
  return std::chrono::milliseconds(std::max<int64_t>(0, at - now_ms));
}

namespace {

std::string sd_escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\' || c == ']') out += '\\';
    out += c;
  }
  return out;
}

int syslog_severity(std::string_view level) {
  if (level == "critical") return 2;
  if (level == "high") return 3;
  if (level == "medium") return 4;
  if (level == "low") return 5;
  return 6;  // informational, unknown
}

}  // namespace

std::string syslog_line(const OutputConfig& config, std::string_view alert_json,
                        std::string_view message, std::string_view hostname, int64_t now_ms) {
  rapidjson::Document d;
  d.Parse(alert_json.data(), alert_json.size());
  auto member = [&](const rapidjson::Value& o, const char* k) -> std::string_view {
    if (!o.IsObject()) return {};
    auto it = o.FindMember(k);
    if (it == o.MemberEnd() || !it->value.IsString()) return {};
    return {it->value.GetString(), it->value.GetStringLength()};
  };
  const rapidjson::Value empty(rapidjson::kObjectType);
  const rapidjson::Value& rule = d.IsObject() && d.HasMember("rule") ? d["rule"] : empty;
  const auto level = member(rule, "level");
  std::string out = "<" + std::to_string(config.facility * 8 + syslog_severity(level)) + ">1 ";
  out += format_rfc3339(now_ms);
  out += ' ';
  out += hostname.empty() ? "-" : std::string(hostname.substr(0, 255));
  out += ' ';
  out += config.app_name;
  out += " - alert [vigil@32473 id=\"" + sd_escape(member(d, "id")) + "\" rule=\"" +
         sd_escape(member(rule, "id")) + "\" level=\"" + sd_escape(level) + "\" host=\"" +
         sd_escape(member(d, "host")) + "\"] ";
  out += message;
  return out;
}

}  // namespace vigil::output
