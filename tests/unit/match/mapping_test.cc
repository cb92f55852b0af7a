#include "vigil/match/mapping.h"

#include <gtest/gtest.h>

#include "rule_match.h"

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

TEST(FieldMapping, FieldsByLogsourceWinForTheRulesTheyMatch) {
  auto m = FieldMapping::parse(R"(
name: ecs
field_prefix: winlog.event_data.
fields: {Image: process.executable, CommandLine: process.command_line, SourceImage: {same_as: Image}}
fields_by_logsource:
  - match: {product: windows, service: powershell-classic}
    fields: {CommandLine: powershell.command.value}
  - match: {category: image_load}
    fields: {Description: file.pe.description}
  - match: {category: process_creation}
    fields: {Description: process.pe.description, Image: [process.executable, process.name]}
logsources:
  - name: proc
    match: {product: windows, category: process_creation}
)",
                               "m.yml");
  ASSERT_TRUE(m) << m.status().to_string();
  const Logsource proc{"windows", "process_creation", ""},
      classic{"windows", "", "powershell-classic"}, image{"windows", "image_load", ""},
      none{"windows", "", ""};
  EXPECT_EQ(m->json_paths("CommandLine", proc), (std::vector<std::string>{"process.command_line"}));
  EXPECT_EQ(m->json_paths("CommandLine", classic),
            (std::vector<std::string>{"powershell.command.value"}));
  EXPECT_EQ(m->json_paths("Description", image), (std::vector<std::string>{"file.pe.description"}));
  EXPECT_EQ(m->json_paths("Description", proc),
            (std::vector<std::string>{"process.pe.description"}));
  // A rule without the category: no per-logsource entry applies.
  EXPECT_EQ(m->json_paths("Description", none),
            (std::vector<std::string>{"winlog.event_data.Description"}));
  // same_as follows the other field for the same rule.
  EXPECT_EQ(m->json_paths("SourceImage", proc),
            (std::vector<std::string>{"process.executable", "process.name"}));
  EXPECT_EQ(m->json_paths("SourceImage", image), (std::vector<std::string>{"process.executable"}));
}

TEST(FieldMapping, RefusesCyclesUnknownConversionsAndBadEntriesByName) {
  auto refused = [](const std::string& yaml) {
    auto m =
        FieldMapping::parse(yaml + "logsources:\n  - name: a\n    match: {category: c}\n", "m.yml");
    return m ? std::string("accepted") : m.status().message();
  };
  EXPECT_NE(refused("fields: {A: {same_as: B}, B: {same_as: A}}\n").find("cycle: A -> B -> A"),
            std::string::npos);
  // A cycle through a per-logsource entry only.
  EXPECT_NE(refused("fields: {A: {same_as: B}}\nfields_by_logsource:\n  - match: {category: c}\n"
                    "    fields: {B: {same_as: A}}\n")
                .find("cycle"),
            std::string::npos);
  EXPECT_NE(refused("fields: {A: {path: a, convert: {lowercase: true}}}\n")
                .find("unknown conversion 'lowercase'"),
            std::string::npos);
  EXPECT_NE(refused("fields: {A: {path: a, pth: b}}\n").find("unknown key 'pth'"),
            std::string::npos);
  EXPECT_NE(refused("fields: {A: {path: a, same_as: B}}\n").find("exactly one of"),
            std::string::npos);
  EXPECT_NE(refused("fields: {A: {path: a, convert: {values: {}}}}\n").find("non-empty"),
            std::string::npos);
  EXPECT_NE(refused("fields_by_logsource:\n  - match: {categry: c}\n    fields: {A: a}\n")
                .find("unknown key 'categry'"),
            std::string::npos);
  EXPECT_NE(refused("fields: {A: {same_as: B, convert: {registry_dword: true}}}\n")
                .find("'convert' needs the field's own"),
            std::string::npos);
  EXPECT_NE(refused("fields: {A: {paths: [a, b], convert: {split_domain: d}}}\n")
                .find("one path for the name"),
            std::string::npos);
  EXPECT_EQ(refused("fields: {A: {path: a, convert: {values: {'true': egress}}}}\n"), "accepted");
}

// A process_creation rule compiled under a mapping made of `fields` and one logsource.
class Converted : public test_support::RuleMatch {
 public:
  Converted(const std::string& fields, const std::string& detection)
      : RuleMatch(detection, "process_creation", "name: t\n" + fields + R"(
logsources:
  - name: proc
    match: {product: windows, category: process_creation}
)") {}
};

TEST(FieldMapping, ValuesConversionRewritesExactValuesAndRefusesOtherTests) {
  const std::string fields =
      "fields: {Initiated: {path: network.direction, convert: {values: {'true': egress, 'false': "
      "ingress}}}}";
  Converted c(fields, "  sel: {Initiated: 'true'}\n  condition: sel\n");
  ASSERT_TRUE(c.error().empty()) << c.error();
  EXPECT_TRUE(c.matches(R"({"network":{"direction":"egress"}})"));
  EXPECT_FALSE(c.matches(R"({"network":{"direction":"ingress"}})"));
  EXPECT_FALSE(c.matches(R"({"network":{"direction":"true"}})"));
  Converted contains(fields, "  sel: {Initiated|contains: 'tru'}\n  condition: sel\n");
  EXPECT_NE(contains.error().find("field 'Initiated' has a value conversion"), std::string::npos)
      << contains.error();
  EXPECT_NE(contains.error().find("a 'contains' value"), std::string::npos) << contains.error();
}

// A field the shipper cannot carry, or one whose values need converting, is refused wherever
// a rule names it: as the tested field or as the other side of a fieldref.
TEST(FieldMapping, UnsupportedAndConvertedFieldsAreRefusedAsFieldrefOperandsToo) {
  const std::string fields =
      "fields: {Hashes: {unsupported: 'split by the shipper'}, User: {path: user.name, convert: "
      "{split_domain: user.domain}}}";
  Converted hashes(fields, "  a: {Image|fieldref: Hashes}\n  condition: a\n");
  EXPECT_NE(hashes.error().find("field 'Hashes' cannot be tested under mapping 't': split by"),
            std::string::npos)
      << hashes.error();
  Converted user(fields, "  a: {ParentUser|fieldref: User}\n  condition: a\n");
  EXPECT_NE(user.error().find("field 'User' has a value conversion"), std::string::npos)
      << user.error();
  Converted exists(fields, "  a: {Hashes|exists: true}\n  condition: a\n");
  EXPECT_NE(exists.error().find("cannot be tested"), std::string::npos) << exists.error();
}

TEST(FieldMapping, RegistryDwordBecomesTheDecimalNumber) {
  const std::string fields =
      "fields: {Details: {path: registry.data.strings, convert: {registry_dword: true}}}";
  Converted c(fields,
              "  a: {Details: 'DWORD (0x00000010)'}\n  b: {Details|contains: 'calc.exe'}\n"
              "  condition: a or b\n");
  ASSERT_TRUE(c.error().empty()) << c.error();
  EXPECT_TRUE(c.matches(R"({"registry":{"data":{"strings":["16"]}}})"));
  EXPECT_FALSE(c.matches(R"({"registry":{"data":{"strings":["10"]}}})"));
  EXPECT_TRUE(c.matches(R"({"registry":{"data":{"strings":["C:\\calc.exe"]}}})"));
  Converted partial(fields, "  a: {Details|startswith: 'DWORD (0x0000'}\n  condition: a\n");
  EXPECT_NE(partial.error().find("only as the whole"), std::string::npos) << partial.error();
}

TEST(FieldMapping, SplitDomainTestsBothPartsAroundTheBackslash) {
  const std::string fields =
      "fields: {User: {path: user.name, convert: {split_domain: user.domain}}}";
  auto event = [](const std::string& domain, const std::string& name) {
    return R"({"user":{"domain":")" + domain + R"(","name":")" + name + R"("}})";
  };
  Converted exact(fields, "  a: {User: 'NT AUTHORITY\\SYSTEM'}\n  condition: a\n");
  ASSERT_TRUE(exact.error().empty()) << exact.error();
  EXPECT_TRUE(exact.matches(event("NT AUTHORITY", "SYSTEM")));
  EXPECT_TRUE(exact.matches(event("nt authority", "system")));
  EXPECT_FALSE(exact.matches(event("NT AUTHORITY", "LOCAL SERVICE")));
  Converted contains(fields, "  a: {User|contains: ['AUTHORI', 'AUTORI']}\n  condition: a\n");
  ASSERT_TRUE(contains.error().empty()) << contains.error();
  EXPECT_TRUE(contains.matches(event("NT AUTHORITY", "SYSTEM")));
  EXPECT_TRUE(contains.matches(event("AUTORITE NT", "Systeme")));
  EXPECT_FALSE(contains.matches(event("CORP", "alice")));
  Converted across(fields, "  a: {User|contains: 'ITY\\SYS'}\n  condition: a\n");
  EXPECT_TRUE(across.matches(event("NT AUTHORITY", "SYSTEM")));
  EXPECT_FALSE(across.matches(event("NT AUTHORITY", "LOCAL SERVICE")));
  Converted starts(fields, "  a: {User|startswith: 'CORP\\'}\n  condition: a\n");
  EXPECT_TRUE(starts.matches(event("CORP", "alice")));
  EXPECT_FALSE(starts.matches(event("CORPX", "alice")));
  Converted ends(fields, "  a: {User|endswith: '\\alice'}\n  condition: a\n");
  EXPECT_TRUE(ends.matches(event("CORP", "alice")));
  EXPECT_FALSE(ends.matches(event("CORP", "malice")));
  Converted wild(fields, "  a: {User: 'NT*SYSTEM'}\n  condition: a\n");
  EXPECT_NE(wild.error().find("wildcard where the backslash may be"), std::string::npos)
      << wild.error();
}

// Sysmon's Hashes as Winlogbeat writes it: one lowercase field per algorithm.
TEST(FieldMapping, HashesTestTheAlgorithmsOwnField) {
  const std::string fields =
      "fields: {Hashes: {path: winlog.event_data.Hashes, convert: {hashes: {md5: process.hash.md5, "
      "sha256: process.hash.sha256, imphash: process.pe.imphash}}}}";
  const std::string imphash = "F34D5F2D4577ED6D9CEEC516C1F5A744";
  const std::string sha256(64, 'A');
  Converted c(fields, "  a: {Hashes|contains: ['IMPHASH=" + imphash + "', '" + sha256 +
                          "']}\n  condition: a\n");
  ASSERT_TRUE(c.error().empty()) << c.error();
  EXPECT_TRUE(c.matches(R"({"process":{"pe":{"imphash":"f34d5f2d4577ed6d9ceec516c1f5a744"}}})"));
  EXPECT_TRUE(c.matches(R"({"process":{"hash":{"sha256":")" + std::string(64, 'a') + R"("}}})"));
  EXPECT_FALSE(c.matches(R"({"process":{"hash":{"md5":"f34d5f2d4577ed6d9ceec516c1f5a744"}}})"));
  Converted md5(fields, "  a: {Hashes|endswith: 'MD5=" + imphash + "'}\n  condition: a\n");
  EXPECT_TRUE(md5.matches(R"({"process":{"hash":{"md5":"f34d5f2d4577ed6d9ceec516c1f5a744"}}})"));
  for (const std::string& bad :
       std::vector<std::string>{"{Hashes|contains: 'IMPHASH=F34D'}",
                                "{Hashes|contains: 'SHA1=" + std::string(40, 'a') + "'}",
                                "{Hashes|contains: 'IMPHASH=*'}", "{Hashes|exists: true}"}) {
    Converted refused(fields, "  a: " + bad + "\n  condition: a\n");
    EXPECT_NE(refused.error().find("field 'Hashes' has a value conversion"), std::string::npos)
        << bad << ": " << refused.error();
  }
  auto unknown = FieldMapping::parse(
      "name: t\nfields: {Hashes: {path: h, convert: {hashes: {crc32: x}}}}\nlogsources: [{name: "
      "a, match: {product: windows}}]\n",
      "m.yml");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.status().message().find("unknown algorithm 'crc32'"), std::string::npos);
}

}  // namespace
}  // namespace vigil::match
