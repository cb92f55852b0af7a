// The same attack events written in three layouts (EVTX-JSON as the corpus holds them, the
// flat layout NXLog and Logstash ship, and ECS as Winlogbeat 8 writes it) must raise the same
// detections, rule for rule, under the SigmaHQ tree compiled with each layout's mapping
// (windows-evtx-json, vigil-sensor, ecs-windows).
//
// The conversions and their table: tests/support/evtx_layouts.h.

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "support/corpus.h"
#include "support/evtx_layouts.h"
#include "vigil/match/matcher.h"

namespace vigil::match {
namespace {

namespace fs = std::filesystem;

struct Layout {
  std::string mapping;
  std::shared_ptr<const RuleSet> rules;
  std::unique_ptr<Matcher> matcher;
  EventParser parser;
  Event event;

  std::set<std::string> matches(const std::string& json) {
    EXPECT_EQ(parser.parse(json, rules->fields(), event), ParseError::kNone) << json;
    std::vector<uint32_t> out;
    EXPECT_TRUE(matcher->match(event, out).is_ok());
    std::set<std::string> ids;
    for (uint32_t r : out) ids.insert(rules->rules()[r].id);
    return ids;
  }
};

TEST(Layouts, EvtxFlatAndEcsRaiseTheSameDetectionsRuleForRule) {
  const fs::path corpus = test::corpus_dir();
  CompileReport load_report;
  const auto parsed = load_rules({(corpus / "sigma_rules").string()}, load_report);
  Layout layouts[3];
  const char* names[3] = {"windows-evtx-json", "vigil-sensor", "ecs-windows"};
  std::set<std::string> everywhere;  // rule ids compiled under all three mappings
  for (int i = 0; i < 3; ++i) {
    auto mapping = FieldMapping::load_file(std::string(VIGIL_SOURCE_DIR "/rules/mappings/") +
                                           names[i] + ".yml");
    ASSERT_TRUE(mapping) << mapping.status().to_string();
    CompileReport report;
    auto rs = RuleSet::compile(parsed, *mapping, report);
    ASSERT_TRUE(rs) << rs.status().to_string();
    layouts[i].mapping = names[i];
    layouts[i].rules = *rs;
    layouts[i].matcher = std::move(*Matcher::create(*rs));
    std::set<std::string> ids;
    for (const auto& r : (*rs)->rules()) ids.insert(r.id);
    if (i == 0) {
      everywhere = ids;
    } else {
      std::set<std::string> both;
      for (const auto& id : everywhere) {
        if (ids.count(id)) both.insert(id);
      }
      everywhere = std::move(both);
    }
  }
  ASSERT_GT(everywhere.size(), 2500u);

  size_t events = 0, detections = 0;
  std::ifstream manifest(corpus / "sigma_public" / "manifest.jsonl");
  for (std::string line; std::getline(manifest, line);) {
    rapidjson::Document m;
    m.Parse(line.c_str());
    std::ifstream in(corpus / "sigma_public" / m["events"].GetString());
    for (std::string raw; std::getline(in, raw);) {
      const std::string shapes[3] = {raw, test::evtx_to_flat(raw), test::evtx_to_ecs(raw)};
      std::set<std::string> got[3];
      for (int i = 0; i < 3; ++i) {
        for (const auto& id : layouts[i].matches(shapes[i])) {
          if (everywhere.count(id)) got[i].insert(id);
        }
      }
      EXPECT_EQ(got[0], got[1]) << "flat differs for " << shapes[1];
      EXPECT_EQ(got[0], got[2]) << "ECS differs for " << shapes[2];
      ++events;
      detections += got[0].size();
    }
  }
  std::cout << events << " events, " << detections << " detections in each layout, "
            << everywhere.size() << " rules compiled under all three mappings\n";
  // The corpus' own rules fire on their events: a comparison of empty sets proves nothing.
  EXPECT_GT(detections, 60u);
}

}  // namespace
}  // namespace vigil::match
