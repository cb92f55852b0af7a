#pragma once
// Alert documents in the formats analysts' tools read, made from vigil's own alert document
// (the JSON the API serves with view=full: id, time, detected_at, rule{id,title,level,tags},
// bundle, host, source, matched[{field,value}], event, and for correlations their group).
//
//   vigil  the document as it is
//   ecs    an Elastic Common Schema alert: event.kind "signal", rule.*, host.*, threat.* from
//          the rule's ATT&CK tags, event.original and, for events already in ECS, the event's
//          own fields (never over the alert's)
//   ocsf   an OCSF Detection Finding (class_uid 2004, activity Create): metadata, severity_id,
//          finding_info (uid = the alert id, analytic = the rule, attacks from ATT&CK tags),
//          evidences with the matched fields, device, raw_data
//
// Every format carries the alert id (ECS event.id, OCSF finding_info.uid): the idempotency key
// of an at-least-once delivery. The text forms (Slack, CEF, syslog) are one line each.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vigil/core/status.h"

namespace vigil::output {

enum class AlertFormat { kVigil, kEcs, kOcsf };
std::optional<AlertFormat> parse_alert_format(std::string_view name);  // vigil, ecs, ocsf
std::string_view alert_format_name(AlertFormat f);

// The alert in `format`; an error when `vigil_json` is not an alert document.
Expected<std::string> format_alert(std::string_view vigil_json, AlertFormat format);

// A short text for chat tools: "[HIGH] Rule title on host (rule id) - alert id".
Expected<std::string> alert_text(std::string_view vigil_json);

// ArcSight CEF:0 (Device Vendor vigil, Product vigil, Signature ID the rule id, Name the
// rule title, Severity 0-10 from the level) with rt, dhost, cs1 (the alert id), cs2 (tags) and
// the matched fields as msg; CEF's escaping of '|', '\\' and '=' applied.
Expected<std::string> alert_cef(std::string_view vigil_json, std::string_view version);

// ATT&CK identifiers in Sigma tags: attack.t1059.001 -> technique T1059.001; attack.execution
// (or attack.privilege-escalation / privilege_escalation) -> tactic TA0002 "Execution".
struct AttackTactic {
  std::string_view id, name;
};
std::optional<AttackTactic> attack_tactic(std::string_view tag);
std::optional<std::string> attack_technique(std::string_view tag);

}  // namespace vigil::output
