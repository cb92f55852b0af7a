#include "vigil/match/mapping.h"

#include <gtest/gtest.h>

namespace vigil::match {
namespace {

TEST(FieldMapping, PrefixExplicitFieldsAndLogsources) {
  auto m = FieldMapping::parse(R"(
name: evtx
field_prefix: [Event.EventData., Event.UserData.*.]
fields: {EventID: Event.System.EventID, Both: [a.b, c.d]}
host_field: Event.System.Computer
logsources:
  - name: proc
    match: {product: windows, category: process_creation}
    where: {Event.System.EventID: [1, 4688]}
  - name: sec
    match: {product: windows, service: security}
)",
                               "m.yml");
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->json_paths("Image"),
            (std::vector<std::string>{"Event.EventData.Image", "Event.UserData.*.Image"}));
  EXPECT_EQ(m->json_paths("EventID"), (std::vector<std::string>{"Event.System.EventID"}));
  EXPECT_EQ(m->json_paths("Both"), (std::vector<std::string>{"a.b", "c.d"}));
  EXPECT_EQ(m->json_paths("a.b")[0], "Event.EventData.a\\.b");
  EXPECT_EQ(m->logsources()[0].where[0].second, (std::vector<std::string>{"1", "4688"}));
  EXPECT_EQ(m->logsources_for({"windows", "process_creation", ""}), (std::vector<uint32_t>{0}));
  EXPECT_EQ(m->logsources_for({"", "process_creation", ""}), (std::vector<uint32_t>{0}));
  EXPECT_EQ(m->logsources_for({"windows", "", ""}), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(m->logsources_for({"windows", "", "security"}), (std::vector<uint32_t>{1}));
  EXPECT_TRUE(m->logsources_for({"linux", "process_creation", ""}).empty());
}

TEST(FieldMapping, StrictAboutUnknownKeys) {
  auto m = FieldMapping::parse(
      "name: x\nlogsources:\n  - name: a\n    match: {category: c}\n    wher: {}\n", "m.yml");
  ASSERT_FALSE(m);
  EXPECT_NE(m.status().message().find("unknown key 'wher'"), std::string::npos);
  EXPECT_FALSE(FieldMapping::parse("name: x\n", "m.yml"));
  EXPECT_FALSE(FieldMapping::parse("name: x\nfield21: y\nlogsources: []\n", "m.yml"));
  EXPECT_FALSE(FieldMapping::parse("[", "m.yml"));
  EXPECT_FALSE(FieldMapping::load_file("/nonexistent/m.yml"));
}

}  // namespace
}  // namespace vigil::match
