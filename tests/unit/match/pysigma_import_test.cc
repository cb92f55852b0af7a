// `vigil mapping import-pysigma`: pySigma processing pipelines (YAML) as vigil mappings. The
// imported mapping is loaded and rules are matched with it, so the test checks what the
// mapping does, not only the text it is.

#include "vigil/match/pysigma_import.h"

#include <gtest/gtest.h>

#include "vigil/match/matcher.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace {

constexpr char kPipeline[] = R"(name: Custom Sysmon on ECS
priority: 20
vars:
  admins: [adm_alice, adm_bob]
transformations:
  - id: sysmon_process_creation
    type: add_condition
    conditions:
      Channel: Microsoft-Windows-Sysmon/Operational
      EventID: 1
    rule_conditions:
      - type: logsource
        product: windows
        category: process_creation
  - id: ps_classic
    type: field_name_mapping
    mapping:
      CommandLine: powershell.command.value
    rule_conditions:
      - type: logsource
        product: windows
        category: ps_classic_start
  - id: hashes_unsupported
    type: detection_item_failure
    message: the sensor splits Hashes into process.hash.*
    field_name_conditions:
      - type: include_fields
        fields: [Hashes]
  - id: ecs_fields
    type: field_name_mapping
    mapping:
      EventID: event.code
      Channel: winlog.channel
      Image: process.executable
      CommandLine: [process.command_line, process.args]
  - id: prefix
    type: field_name_prefix
    prefix: winlog.event_data.
    field_name_cond_not: true
    field_name_conditions:
      - type: processing_item_applied
        processing_item_id: ecs_fields
  - id: placeholders
    type: value_placeholders
  - id: state
    type: set_state
    key: index
    val: logs-*
postprocessing:
  - type: template
    template: "{query}"
)";

bool contains(const std::string& s, std::string_view needle) {
  return s.find(needle) != std::string::npos;
}

TEST(PySigmaImport, FieldsPrefixesConditionsFailuresAndPlaceholders) {
  auto r = import_pysigma_pipeline(kPipeline, "p.yml");
  ASSERT_TRUE(r) << r.status().to_string();
  auto m = FieldMapping::parse(r->mapping_yaml, "imported.yml");
  ASSERT_TRUE(m) << m.status().to_string() << "\n" << r->mapping_yaml;
  EXPECT_EQ(m->name(), "Custom Sysmon on ECS");
  const Logsource proc{"windows", "process_creation", ""};
  const Logsource ps{"windows", "", "ps_classic_start"};
  EXPECT_EQ(m->json_paths("Image", proc), std::vector<std::string>{"process.executable"});
  EXPECT_EQ(m->json_paths("CommandLine", proc),
            (std::vector<std::string>{"process.command_line", "process.args"}));
  // pySigma prefixes every field the ecs_fields item did not map, ps_classic's too.
  EXPECT_EQ(m->json_paths("CommandLine", Logsource{"windows", "ps_classic_start", ""}),
            std::vector<std::string>{"winlog.event_data.powershell.command.value"});
  (void)ps;
  EXPECT_EQ(m->json_paths("ParentUser", proc),
            std::vector<std::string>{"winlog.event_data.ParentUser"});
  EXPECT_FALSE(m->field("Hashes", proc).unsupported.empty());
  ASSERT_NE(m->placeholder("admins"), nullptr);
  EXPECT_EQ(m->placeholder("admins")->size(), 2u);
  ASSERT_EQ(m->logsources().size(), 1u);
  // The added condition's fields are mapped by the items after it.
  EXPECT_EQ(m->logsources()[0].where[0].first, "winlog.channel");
  EXPECT_EQ(m->logsources()[0].where[1].first, "event.code");
  ASSERT_EQ(r->notes.size(), 2u);
  EXPECT_TRUE(contains(r->notes[0], "'set_state' (id state) ignored"));
  EXPECT_TRUE(contains(r->notes[1], "'postprocessing' ignored"));

  // A rule compiled under it matches an ECS event.
  auto rule = parse_sigma(R"(title: T
id: t
logsource: {product: windows, category: process_creation}
detection:
  sel: {Image|endswith: '\whoami.exe', CommandLine|contains: '/all', IntegrityLevel: High}
  condition: sel
)",
                          "t.yml");
  ASSERT_TRUE(rule);
  CompileReport report;
  auto rs = RuleSet::compile({*rule}, *m, report);
  ASSERT_TRUE(rs);
  ASSERT_EQ((*rs)->rules().size(), 1u) << report.rules[0].status.to_string();
  auto matcher = Matcher::create(*rs);
  EventParser parser;
  Event event;
  std::vector<uint32_t> hits;
  ASSERT_EQ(parser.parse(R"({"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational",
    "event_data":{"IntegrityLevel":"High"}},"event":{"code":"1"},
    "process":{"executable":"C:\\Windows\\System32\\whoami.exe","command_line":"whoami /all"}})",
                         (*rs)->fields(), event),
            ParseError::kNone);
  (void)(*matcher)->match(event, hits);
  EXPECT_EQ(hits.size(), 1u);
}

TEST(PySigmaImport, WhatCannotBeExpressedIsRefusedByName) {
  auto r = import_pysigma_pipeline(R"(name: x
transformations:
  - id: lower
    type: replace_string
    regex: a
    replacement: b
  - id: by_tag
    type: field_name_mapping
    mapping: {A: b}
    rule_conditions: [{type: tag, tag: attack.t1059}]
  - id: negated
    type: field_name_mapping
    mapping: {C: d}
    rule_cond_not: true
    rule_conditions: [{type: logsource, product: linux}]
  - id: win_prefix
    type: field_name_prefix
    prefix: win.
    rule_conditions: [{type: logsource, product: windows}]
  - id: fine
    type: field_name_mapping
    mapping: {A2: b2}
  - id: chain
    type: field_name_mapping
    mapping: {b2: c}
  - id: wild
    type: add_condition
    conditions: {index: "win*"}
    rule_conditions: [{type: logsource, product: windows}]
unknown_key: 1
)",
                                   "bad.yml");
  ASSERT_FALSE(r);
  const std::string msg = r.status().message();
  for (const char* needle :
       {"transformation 1 'replace_string' (id lower) cannot be expressed",
        "transformation 2 'field_name_mapping' (id by_tag): rule condition 'tag'",
        "transformation 3 'field_name_mapping' (id negated): a negated rule condition",
        "transformation 4 'field_name_prefix' (id win_prefix): a prefix for some logsources",
        "transformation 6 'field_name_mapping' (id chain): field 'b2' is the name an earlier item",
        "transformation 7 'add_condition' (id wild): value 'win*'", "unknown pipeline key"}) {
    EXPECT_TRUE(contains(msg, needle)) << needle << "\n" << msg;
  }
}

TEST(PySigmaImport, LogsourcesComeFromTheBaseMappingWhenThePipelineHasNone) {
  const char* pipeline =
      "name: fields only\ntransformations:\n  - type: field_name_mapping\n"
      "    mapping: {CommandLine: cmd}\n";
  auto none = import_pysigma_pipeline(pipeline, "p.yml");
  ASSERT_FALSE(none);
  EXPECT_TRUE(contains(none.status().message(), "--logsources"));
  auto base = FieldMapping::load_file(VIGIL_SOURCE_DIR "/rules/mappings/vigil-sensor.yml");
  ASSERT_TRUE(base);
  auto r = import_pysigma_pipeline(pipeline, "p.yml", &*base);
  ASSERT_TRUE(r) << r.status().to_string();
  auto m = FieldMapping::parse(r->mapping_yaml, "imported.yml");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->logsources().size(), base->logsources().size());
  EXPECT_EQ(m->host_field(), base->host_field());
  EXPECT_EQ(m->json_paths("CommandLine"), std::vector<std::string>{"cmd"});
}

}  // namespace
}  // namespace vigil::match
