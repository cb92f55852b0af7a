// Alert formats (output/src/alert_format.cc) against checkers written from the published
// schemas: ECS 8.11 (the field reference: types, event.kind/category/type allowed values,
// @timestamp and ecs.version required) and OCSF 1.3 Detection Finding 2004 (the class's and
// its parents' required attributes, their types and the derived type_uid).

#include "vigil/output/alert_format.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <set>
#include <string>
#include <vector>

namespace vigil::output {
namespace {

const std::string kAlert =
    R"({"id":"e662bd76129499a5ec00e222d691afc5","time":"2026-12-07T04:53:30.650Z",)"
    R"("detected_at":"2026-12-07T04:53:30.709Z","rule":{"id":"1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e",)"
    R"("title":"Whoami | Privilege = Discovery","level":"high","tags":["attack.discovery",)"
    R"("attack.t1033","attack.privilege_escalation","attack.t1059.001","car.2016-03-001"]},"bundle":3,)"
    R"("host":"WS-0281.corp.example","source":{"cluster":"c","topic":"vigil.events","partition":0,"offset":1797},)"
    R"("matched":[{"field":"CommandLine","value":"whoami /priv"}],)"
    R"("event":{"Hostname":"WS-0281.corp.example","EventID":1,"CommandLine":"whoami /priv"}})";

// An event as Winlogbeat 8 writes it: ECS already.
const std::string kEcsAlert =
    R"({"id":"a1","time":"2026-12-07T04:53:30.650Z","rule":{"id":"r1","title":"T","level":"low","tags":[]},)"
    R"("host":"ws1","matched":[],"event":{"@timestamp":"2026-12-07T04:53:30.650Z","ecs":{"version":"8.0.0"},)"
    R"("event":{"code":"1","kind":"event","provider":"Microsoft-Windows-Sysmon","category":["process"]},)"
    R"("host":{"name":"ws1.corp","os":{"family":"windows"}},"process":{"executable":"C:\\w.exe"},)"
    R"("rule":{"name":"not ours"}}})";

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  EXPECT_FALSE(d.HasParseError()) << json;
  return d;
}

// A field of the schema: a JSON pointer, its JSON type, whether it must be present.
enum class Type { kString, kInteger, kNumber, kBool, kObject, kStringArray, kObjectArray };
struct Field {
  const char* pointer;
  Type type;
  bool required;
};
std::vector<std::string> check(const rapidjson::Document& d, const std::vector<Field>& schema) {
  std::vector<std::string> errors;
  for (const Field& f : schema) {
    const rapidjson::Value* v = rapidjson::Pointer(f.pointer).Get(d);
    if (!v) {
      if (f.required) errors.push_back(std::string(f.pointer) + " is required");
      continue;
    }
    bool ok = false;
    switch (f.type) {
      case Type::kString:
        ok = v->IsString();
        break;
      case Type::kInteger:
        ok = v->IsInt64();
        break;
      case Type::kNumber:
        ok = v->IsNumber();
        break;
      case Type::kBool:
        ok = v->IsBool();
        break;
      case Type::kObject:
        ok = v->IsObject();
        break;
      case Type::kStringArray:
        ok = v->IsArray();
        for (const auto& x : v->GetArray()) ok = ok && x.IsString();
        break;
      case Type::kObjectArray:
        ok = v->IsArray();
        for (const auto& x : v->GetArray()) ok = ok && x.IsObject() && x.MemberCount() > 0;
        break;
    }
    if (!ok) errors.push_back(std::string(f.pointer) + " has the wrong type");
  }
  return errors;
}

// ECS 8.11: @timestamp (date) and ecs.version are the required fields; the rest as typed in
// the field reference; event.kind, event.category and event.type take listed values only.
std::vector<std::string> check_ecs(const rapidjson::Document& d) {
  auto errors = check(d, {{"/@timestamp", Type::kString, true},
                          {"/ecs/version", Type::kString, true},
                          {"/event/kind", Type::kString, true},
                          {"/event/id", Type::kString, true},
                          {"/event/created", Type::kString, false},
                          {"/event/category", Type::kStringArray, false},
                          {"/event/type", Type::kStringArray, false},
                          {"/event/severity", Type::kInteger, false},
                          {"/event/risk_score", Type::kNumber, false},
                          {"/event/original", Type::kString, false},
                          {"/event/module", Type::kString, false},
                          {"/event/dataset", Type::kString, false},
                          {"/rule/id", Type::kString, false},
                          {"/rule/uuid", Type::kString, false},
                          {"/rule/name", Type::kString, false},
                          {"/rule/ruleset", Type::kString, false},
                          {"/rule/version", Type::kString, false},
                          {"/host/name", Type::kString, false},
                          {"/threat/framework", Type::kString, false},
                          {"/threat/tactic/id", Type::kStringArray, false},
                          {"/threat/tactic/name", Type::kStringArray, false},
                          {"/threat/technique/id", Type::kStringArray, false},
                          {"/threat/technique/subtechnique/id", Type::kStringArray, false},
                          {"/tags", Type::kStringArray, false}});
  static const std::set<std::string> kKinds{"alert",  "asset", "enrichment",     "event",
                                            "metric", "state", "pipeline_error", "signal"};
  static const std::set<std::string> kCategories{
      "api",      "authentication", "configuration", "database",      "driver",
      "email",    "file",           "host",          "iam",           "intrusion_detection",
      "library",  "malware",        "network",       "package",       "process",
      "registry", "session",        "threat",        "vulnerability", "web"};
  static const std::set<std::string> kTypes{
      "access",   "admin",        "allowed",  "change", "connection", "creation",
      "deletion", "denied",       "end",      "error",  "group",      "indicator",
      "info",     "installation", "protocol", "start",  "user"};
  if (const auto* k = rapidjson::Pointer("/event/kind").Get(d);
      k && k->IsString() && !kKinds.count(k->GetString()))
    errors.push_back(std::string("event.kind '") + k->GetString() + "' is not an ECS value");
  for (const auto& [ptr, allowed] :
       {std::pair{"/event/category", &kCategories}, std::pair{"/event/type", &kTypes}})
    if (const auto* a = rapidjson::Pointer(ptr).Get(d); a && a->IsArray())
      for (const auto& v : a->GetArray())
        if (v.IsString() && !allowed->count(v.GetString()))
          errors.push_back(std::string(ptr) + " '" + v.GetString() + "' is not an ECS value");
  return errors;
}

// OCSF 1.3 Detection Finding: base event (activity_id, category_uid, class_uid, type_uid,
// severity_id, time, metadata), finding (finding_info), metadata.version and product,
// product.vendor_name, finding_info.uid and title, analytic.type_id, device.type_id.
std::vector<std::string> check_ocsf(const rapidjson::Document& d) {
  auto errors = check(d, {{"/activity_id", Type::kInteger, true},
                          {"/category_uid", Type::kInteger, true},
                          {"/class_uid", Type::kInteger, true},
                          {"/type_uid", Type::kInteger, true},
                          {"/severity_id", Type::kInteger, true},
                          {"/time", Type::kInteger, true},
                          {"/metadata", Type::kObject, true},
                          {"/metadata/version", Type::kString, true},
                          {"/metadata/product", Type::kObject, true},
                          {"/metadata/product/vendor_name", Type::kString, true},
                          {"/metadata/product/name", Type::kString, false},
                          {"/metadata/uid", Type::kString, false},
                          {"/finding_info", Type::kObject, true},
                          {"/finding_info/uid", Type::kString, true},
                          {"/finding_info/title", Type::kString, true},
                          {"/finding_info/analytic/type_id", Type::kInteger, false},
                          {"/finding_info/attacks", Type::kObjectArray, false},
                          {"/finding_info/types", Type::kStringArray, false},
                          {"/evidences", Type::kObjectArray, false},
                          {"/status_id", Type::kInteger, false},
                          {"/is_alert", Type::kBool, false},
                          {"/message", Type::kString, false},
                          {"/raw_data", Type::kString, false},
                          {"/start_time", Type::kInteger, false},
                          {"/end_time", Type::kInteger, false}});
  if (errors.empty()) {
    if (d["class_uid"].GetInt() != 2004) errors.push_back("class_uid is not 2004");
    if (d["category_uid"].GetInt() != 2) errors.push_back("category_uid is not 2 (Findings)");
    if (d["type_uid"].GetInt64() != d["class_uid"].GetInt64() * 100 + d["activity_id"].GetInt64())
      errors.push_back("type_uid is not class_uid * 100 + activity_id");
    const int sev = d["severity_id"].GetInt();
    if (!(sev >= 0 && sev <= 6) && sev != 99) errors.push_back("severity_id out of its enum");
    if (d.HasMember("device") && !rapidjson::Pointer("/device/type_id").Get(d))
      errors.push_back("device.type_id is required in a device");
    if (const auto* a = rapidjson::Pointer("/finding_info/analytic").Get(d);
        a && !a->HasMember("type_id"))
      errors.push_back("analytic.type_id is required in an analytic");
  }
  return errors;
}

TEST(AlertFormat, EcsMeetsTheSchemaAndCarriesTheAlert) {
  auto out = format_alert(kAlert, AlertFormat::kEcs);
  ASSERT_TRUE(out) << out.status().to_string();
  const auto d = parse(*out);
  EXPECT_EQ(check_ecs(d), std::vector<std::string>{}) << *out;
  EXPECT_STREQ(d["event"]["kind"].GetString(), "signal");
  EXPECT_STREQ(d["event"]["id"].GetString(), "e662bd76129499a5ec00e222d691afc5");  // the key
  EXPECT_STREQ(d["rule"]["id"].GetString(), "1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e");
  EXPECT_STREQ(d["host"]["name"].GetString(), "WS-0281.corp.example");
  EXPECT_EQ(d["event"]["severity"].GetInt(), 4);
  // ATT&CK from the tags: tactics by id and name, techniques and sub-techniques.
  const auto& t = d["threat"];
  EXPECT_STREQ(t["tactic"]["id"][0].GetString(), "TA0007");
  EXPECT_STREQ(t["tactic"]["name"][1].GetString(), "Privilege Escalation");
  EXPECT_STREQ(t["technique"]["id"][0].GetString(), "T1033");
  EXPECT_STREQ(t["technique"]["id"][1].GetString(), "T1059");
  EXPECT_STREQ(t["technique"]["subtechnique"]["id"][0].GetString(), "T1059.001");
  // The matched event, whole, as ECS's event.original.
  EXPECT_NE(std::string(d["event"]["original"].GetString()).find("whoami /priv"),
            std::string::npos);
}

TEST(AlertFormat, AnEcsEventJoinsTheAlertWithoutOverridingIt) {
  auto out = format_alert(kEcsAlert, AlertFormat::kEcs);
  ASSERT_TRUE(out) << out.status().to_string();
  const auto d = parse(*out);
  EXPECT_EQ(check_ecs(d), std::vector<std::string>{}) << *out;
  EXPECT_STREQ(d["event"]["kind"].GetString(), "signal");  // not the event's "event"
  EXPECT_STREQ(d["event"]["category"][0].GetString(), "intrusion_detection");
  EXPECT_STREQ(d["event"]["provider"].GetString(), "Microsoft-Windows-Sysmon");  // theirs
  EXPECT_STREQ(d["process"]["executable"].GetString(), "C:\\w.exe");
  EXPECT_STREQ(d["host"]["os"]["family"].GetString(), "windows");
  EXPECT_STREQ(d["host"]["name"].GetString(), "ws1.corp");
  EXPECT_STREQ(d["rule"]["id"].GetString(), "r1");  // the alert's rule, not the event's
  EXPECT_STREQ(d["ecs"]["version"].GetString(), "8.11.0");
}

TEST(AlertFormat, OcsfDetectionFindingMeetsTheSchema) {
  auto out = format_alert(kAlert, AlertFormat::kOcsf);
  ASSERT_TRUE(out) << out.status().to_string();
  const auto d = parse(*out);
  EXPECT_EQ(check_ocsf(d), std::vector<std::string>{}) << *out;
  EXPECT_EQ(d["severity_id"].GetInt(), 4);
  EXPECT_EQ(d["time"].GetInt64(), 1796619210709);  // detected_at (date -u -d ... +%s%3N)
  EXPECT_STREQ(d["finding_info"]["uid"].GetString(), "e662bd76129499a5ec00e222d691afc5");
  EXPECT_STREQ(d["finding_info"]["analytic"]["uid"].GetString(),
               "1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e");
  EXPECT_STREQ(d["finding_info"]["attacks"][1]["sub_technique"]["uid"].GetString(), "T1059.001");
  EXPECT_STREQ(d["evidences"][0]["data"]["matched"][0]["value"].GetString(), "whoami /priv");
  EXPECT_STREQ(d["device"]["hostname"].GetString(), "WS-0281.corp.example");
}

TEST(AlertFormat, TheCheckersRefuseWhatTheSchemasRefuse) {
  // The checkers are the tests' oracle: they must fail on a document that breaks the schema.
  auto bad = parse(R"({"activity_id":1,"category_uid":2,"class_uid":2004,"type_uid":200402,)"
                   R"("severity_id":"high","time":1,"metadata":{"version":"1.3.0","product":{}},)"
                   R"("finding_info":{"uid":"x"},"device":{"hostname":"h"}})");
  const auto errors = check_ocsf(bad);
  EXPECT_GE(errors.size(), 3u);  // severity_id type, product.vendor_name, finding_info.title
  auto bad_ecs =
      parse(R"({"@timestamp":"t","ecs":{"version":"8"},"event":{"kind":"alarm","id":"x",)"
            R"("category":["intrusion"]}})");
  EXPECT_EQ(check_ecs(bad_ecs).size(), 2u);
}

TEST(AlertFormat, TextAndCefAreOneEscapedLine) {
  auto text = alert_text(kAlert);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->rfind("[HIGH] Whoami | Privilege = Discovery on WS-0281.corp.example", 0), 0u)
      << *text;
  EXPECT_NE(text->find("e662bd76129499a5ec00e222d691afc5"), std::string::npos);
  auto cef = alert_cef(kAlert, "0.1.0");
  ASSERT_TRUE(cef);
  EXPECT_EQ(cef->rfind("CEF:0|vigil|vigil|0.1.0|1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e|"
                       "Whoami \\| Privilege = Discovery|8|",
                       0),
            0u)
      << *cef;
  EXPECT_NE(cef->find("cs1=e662bd76129499a5ec00e222d691afc5"), std::string::npos);
  EXPECT_NE(cef->find("msg=CommandLine\\=whoami /priv"), std::string::npos) << *cef;
  EXPECT_EQ(cef->find('\n'), std::string::npos);
}

TEST(AlertFormat, WhatIsNotAnAlertIsRefused) {
  for (const char* bad : {"", "[]", "{}", R"({"id":"x"})", R"({"rule":{}})", "{\"id\":"})
    for (auto f : {AlertFormat::kVigil, AlertFormat::kEcs, AlertFormat::kOcsf})
      EXPECT_FALSE(format_alert(bad, f)) << bad;
  EXPECT_EQ(parse_alert_format("ecs"), AlertFormat::kEcs);
  EXPECT_EQ(parse_alert_format("ECS"), std::nullopt);
}

TEST(AlertFormat, AttackTags) {
  EXPECT_EQ(attack_technique("attack.t1059.001"), "T1059.001");
  EXPECT_EQ(attack_technique("attack.t1059"), "T1059");
  EXPECT_EQ(attack_technique("attack.t105"), std::nullopt);
  EXPECT_EQ(attack_technique("attack.g0016"), std::nullopt);
  EXPECT_EQ(attack_tactic("attack.command-and-control")->id, "TA0011");
  EXPECT_EQ(attack_tactic("attack.defense_evasion")->name, "Defense Evasion");
  EXPECT_EQ(attack_tactic("attack.s0002"), std::nullopt);
}

}  // namespace
}  // namespace vigil::output
