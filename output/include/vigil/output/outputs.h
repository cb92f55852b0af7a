#pragma once
// Alert outputs: where alerts go besides vigil's API and alerts topic. Each output has its
// own durable queue in the store (written in the alert's batch: store::DeliveryRecord), its
// own thread, and its own retries, so a crash or a dead destination loses nothing and one
// slow destination never slows matching or the others. Delivery is at least once; every
// format carries the alert id as its idempotency key.
//
//   outputs:
//     - name: soc-webhook
//       type: webhook                 # webhook, slack, splunk_hec, syslog
//       url: https://hooks.example.com/vigil
//       headers: {X-Team: soc, X-Api-Key: {env: SOC_KEY}}   # {env: NAME} / {file: PATH}
//       format: ecs                   # vigil, ecs, ocsf (webhook, splunk_hec, syslog json)
//       min_level: high               # informational .. critical
//       tags: [attack.*]              # any of these (a trailing * is a prefix); [] all
//       exclude_tags: [attack.discovery]
//       rate_limit: 50                # alerts per second (0: none)
//       batch_size: 100               # alerts per request (Splunk HEC, syslog); webhook 1
//       timeout: 10s
//       retry: {initial: 500ms, max: 5m}  # exponential backoff; Retry-After wins
//       max_backlog: 1000000          # queued alerts kept; the oldest dropped past it
//       tls: {ca_file: /etc/ssl/ca.pem, insecure_skip_verify: false}
//     - {name: hec, type: splunk_hec, url: https://splunk:8088, token: {file: /run/hec-token},
//        index: security, sourcetype: "vigil:alert", source: vigil}
//     - {name: siem, type: syslog, address: "siem:6514", transport: tls, message: cef,
//        facility: local0, app_name: vigil}
//
// Credentials ({env: NAME}, {file: PATH}) are read at start and never logged.

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/output/alert_format.h"
#include "vigil/store/store.h"

namespace vigil::output {

enum class OutputType { kWebhook, kSlack, kSplunkHec, kSyslog };
std::string_view output_type_name(OutputType t);

enum class SyslogTransport { kTcp, kTls, kUdp };
enum class SyslogMessage { kJson, kCef };

struct OutputConfig {
  std::string name;
  OutputType type = OutputType::kWebhook;
  uint64_t id = 0;  // the queue: a hash of the name (renaming an output starts a new queue)

  // Which alerts (applied when the alert is written).
  store::AlertLevel min_level = store::AlertLevel::kInformational;
  std::vector<std::string> tags, exclude_tags;

  // How.
  AlertFormat format = AlertFormat::kVigil;
  double rate_limit = 0;  // alerts per second; 0: none
  size_t batch_size = 100;
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds retry_initial{500}, retry_max{300000};
  uint64_t max_backlog = 1000000;

  // HTTP outputs.
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // values resolved: secrets
  std::string ca_file;
  bool insecure_skip_verify = false;
  // Splunk HEC.
  std::string token, index, sourcetype = "vigil:alert", source = "vigil";
  // syslog.
  std::string host;
  std::string port;
  SyslogTransport transport = SyslogTransport::kTcp;
  SyslogMessage message = SyslogMessage::kJson;
  int facility = 16;  // local0
  std::string app_name = "vigil";

  // True when an alert of this level and these tags goes to this output.
  bool wants(store::AlertLevel level, std::span<const std::string> alert_tags) const;
};

// The `outputs` list of the config file; errors name the output and the key. Secrets are read
// from the environment and files here (read_secrets false: only their form is checked, e.g.
// for `vigild --check-config` away from the pod that mounts them).
Expected<std::vector<OutputConfig>> parse_outputs(const YAML::Node& list, const std::string& where,
                                                  bool read_secrets = true);

// What an output's destination said about one send.
struct SendResult {
  enum class Outcome { kDelivered, kRetry, kRefused } outcome = Outcome::kDelivered;
  std::string error;                                     // kRetry, kRefused: why
  std::optional<std::chrono::milliseconds> retry_after;  // the destination's Retry-After
};

// Sends alert documents (vigil's format) to one destination, formatted for it.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual SendResult send(const std::vector<std::string_view>& alerts) = 0;
};
Expected<std::unique_ptr<Transport>> make_transport(const OutputConfig& config);

// Retry-After: seconds, or an HTTP date.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, int64_t now_ms);

// RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [vigil@32473 id=.. rule=..] MSG
std::string syslog_line(const OutputConfig& config, std::string_view alert_json,
                        std::string_view message, std::string_view hostname, int64_t now_ms);

}  // namespace vigil::output
