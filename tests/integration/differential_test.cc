// The compiled matcher against the reference matcher (one PCRE2 program per predicate, rule
// after rule) over the whole SigmaHQ tree: the corpus' real events and, for every rule, an
// event made from its own values so that most rules fire and their filters are exercised.
// Both must report the same rules for every event.

#include <gtest/gtest.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "support/corpus.h"
#include "vigil/match/matcher.h"
#include "vigil/match/reference_matcher.h"

namespace vigil::match {
namespace {

namespace fs = std::filesystem;

// A text the regex of a Sigma string value matches: literal bytes kept, `.*` dropped, `.`
// one letter, the first alternative of a group (windash). Empty for user regexes.
std::string sample_of(const Predicate& p) {
  if (p.user_regex) return "";
  std::string out;
  const std::string& r = p.regex;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r.compare(i, 2, "\\A") == 0 || r.compare(i, 2, "\\z") == 0) {
      ++i;
    } else if (r.compare(i, 2, "\\x") == 0 && i + 3 < r.size() + 0) {
      out += static_cast<char>(std::stoi(r.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else if (r[i] == '\\' && i + 1 < r.size()) {
      out += r[++i];
    } else if (r.compare(i, 2, ".*") == 0) {
      ++i;
    } else if (r[i] == '.') {
      out += 'x';
    } else if (r.compare(i, 3, "(?:") == 0) {
      const size_t bar = r.find('|', i);
      const size_t close = r.find(')', i);
      std::string alt = r.substr(i + 3, std::min(bar, close) - i - 3);
      Predicate q;
      q.regex = alt;
      out += sample_of(q);
      i = close;
    } else {
      out += r[i];
    }
  }
  return out;
}

bool valid_utf8(const std::string& s) { return simdjson::validate_utf8(s.data(), s.size()); }

// A JSON object from dotted paths ("Event.EventData.Image") and string values.
std::string to_json(const std::map<std::string, std::string>& fields) {
  struct Node {
    std::map<std::string, Node> children;
    const std::string* value = nullptr;
  } root;
  for (const auto& [path, value] : fields) {
    Node* n = &root;
    size_t start = 0;
    for (size_t i = 0; i <= path.size(); ++i) {
      if (i == path.size() || path[i] == '.') {
        n = &n->children[path.substr(start, i - start)];
        start = i + 1;
      }
    }
    n->value = &value;
  }
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto write = [&](auto&& self, const Node& n) -> void {
    if (n.value && n.children.empty()) {
      w.String(n.value->data(), static_cast<rapidjson::SizeType>(n.value->size()));
      return;
    }
    w.StartObject();
    for (const auto& [k, c] : n.children) {
      w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
      self(self, c);
    }
    w.EndObject();
  };
  write(write, root);
  return buf.GetString();
}

class Differential : public ::testing::TestWithParam<const char*> {};

TEST_P(Differential, CompiledMatcherAgreesWithTheReferenceOverTheSigmaTree) {
  const fs::path corpus = test::corpus_dir();
  ASSERT_TRUE(fs::exists(corpus / "sigma_rules")) << "corpus missing at " << corpus;
  // "<mapping>+filters": the tree with Sigma filters applied (below).
  std::string name = GetParam();
  const bool with_filters = name.ends_with("+filters");
  if (with_filters) name.resize(name.size() - std::string_view("+filters").size());
  auto mapping =
      FieldMapping::load_file(std::string(VIGIL_SOURCE_DIR "/rules/mappings/") + name + ".yml");
  ASSERT_TRUE(mapping) << mapping.status().to_string();
  CompileReport report;
  const auto unfiltered = load_rules({(corpus / "sigma_rules").string()}, report);
  // A filter on every Windows rule (hosts named FLT-*), and one on the first ten process
  // creation rules by id (a parent process): each rule's event is also sent with the filtered
  // values, where the filtered rules must stay silent in both matchers.
  std::vector<SigmaRule> parsed = unfiltered;
  if (with_filters) {
    std::string ids;
    size_t n = 0;
    for (const auto& r : unfiltered) {
      if (r.logsource.category == "process_creation" && !r.correlation && n++ < 10)
        ids += "\n    - " + r.id;
    }
    for (const std::string& text :
         {std::string("title: Lab hosts\nid: flt-hosts\nlogsource: {product: windows}\nfilter:\n"
                      "  rules: any\n  lab: {Computer|startswith: 'FLT-'}\n  condition: not lab\n"),
          "title: Backup parent\nid: flt-parent\nlogsource: {category: process_creation}\n"
          "filter:\n  rules:" +
              ids +
              "\n  agent: {ParentImage|endswith: '\\fltagent.exe'}\n  condition: not agent\n"}) {
      auto f = parse_sigma(text, "filter.yml");
      ASSERT_TRUE(f) << f.status().to_string();
      parsed.push_back(std::move(*f));
    }
    CompileReport fr;
    parsed = apply_filters(std::move(parsed), {}, fr);
    ASSERT_EQ(fr.filters, 2u);
  }
  auto compiled = RuleSet::compile(parsed, *mapping, report);
  ASSERT_TRUE(compiled) << compiled.status().to_string();
  const auto& rs = **compiled;
  auto matcher = std::move(*Matcher::create(*compiled));
  auto reference = ReferenceMatcher::compile(parsed, *mapping);
  ASSERT_GT(rs.rules().size(), 2000u);

  std::vector<std::string> events;
  for (const auto& f : fs::directory_iterator(corpus / "sigma_public" / "events")) {
    std::ifstream in(f.path());
    for (std::string line; std::getline(in, line);) events.push_back(line);
  }
  const size_t real_events = events.size();
  std::vector<bool> from_filtered_host(events.size(), false);
  std::set<std::string> compiled_ids;
  for (const auto& r : rs.rules()) compiled_ids.insert(r.id);
  std::set<std::string> windows_rules;
  for (const auto& rule : unfiltered) {
    if (rule.logsource.product == "windows") windows_rules.insert(rule.id);
  }
  for (const auto& rule : unfiltered) {
    if (rule.correlation || !compiled_ids.count(rule.id)) continue;
    const auto ls = mapping->logsources_for(rule.logsource);
    std::map<std::string, std::string> fields;
    for (const auto& [path, values] : mapping->logsources()[ls[0]].where) fields[path] = values[0];
    // The rule's tests as the mapping converts them (a value written as the sensor writes it).
    const auto converted = apply_mapping(rule, *mapping);
    ASSERT_TRUE(converted) << converted.status().to_string();
    for (const auto& p : converted->predicates) {
      if (p.kind != Predicate::Kind::kPattern) continue;
      // A keyword is searched in the raw event: any field will carry it.
      const std::string path = p.field.empty()
                                   ? "Event.EventData.Keyword" + std::to_string(fields.size())
                               : !p.path.empty() ? p.path
                                                 : mapping->json_paths(p.field, rule.logsource)[0];
      std::string v = sample_of(p);
      if (!fields.count(path) && valid_utf8(v)) fields[path] = v;
    }
    events.push_back(to_json(fields));
    if (with_filters) {  // the same event from a filtered host, and from the filtered parent
      auto host = fields;
      host[mapping->json_paths("Computer", rule.logsource)[0]] = "FLT-7";
      events.push_back(to_json(host));
      from_filtered_host.resize(events.size(), false);
      from_filtered_host.back() = rule.logsource.product == "windows";
      auto parent = fields;
      parent[mapping->json_paths("ParentImage", rule.logsource)[0]] = "C:\\b\\fltagent.exe";
      events.push_back(to_json(parent));
    }
  }

  EventParser a, b;
  Event ea, eb;
  size_t matched_events = 0, matches = 0;
  std::vector<uint32_t> out_a, out_b;
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(a.parse(events[i], rs.fields(), ea), ParseError::kNone) << events[i];
    ASSERT_EQ(b.parse(events[i], reference->fields(), eb), ParseError::kNone) << events[i];
    out_a.clear();
    out_b.clear();
    ASSERT_TRUE(matcher->match(ea, out_a).is_ok());
    reference->match(eb, out_b);
    std::set<std::string> got, want;
    for (uint32_t r : out_a) got.insert(rs.rules()[r].id);
    for (uint32_t r : out_b) {
      if (compiled_ids.count(reference->rule_ids()[r])) want.insert(reference->rule_ids()[r]);
    }
    ASSERT_EQ(got, want) << "event " << i << (i < real_events ? " (corpus)" : " (made from a rule)")
                         << ": " << events[i];
    matched_events += got.empty() ? 0 : 1;
    matches += got.size();
    if (i < from_filtered_host.size() && from_filtered_host[i]) {
      for (const auto& id : got) {
        EXPECT_EQ(windows_rules.count(id), 0u) << id << " fired on a filtered host: " << events[i];
      }
    }
  }
  std::cout << events.size() << " events (" << real_events << " real), " << matched_events
            << " matched, " << matches << " matches, " << rs.rules().size() << " rules\n";
  // Most rules must fire on the event made from them, or the comparison proves little.
  EXPECT_GT(matched_events, (with_filters ? events.size() / 3 : events.size()) / 2);
}

// The EVTX layout of the corpus' events, vigil's flat layout with every logsource of the tree
// (keywords included), and the ECS and OCSF layouts with their conversions.
INSTANTIATE_TEST_SUITE_P(Mappings, Differential,
                         ::testing::Values("windows-evtx-json", "vigil-sensor", "ecs-windows",
                                           "ocsf-windows", "vigil-sensor+filters"),
                         [](const auto& info) {
                           std::string name;
                           bool upper = true;
                           for (char c : std::string(info.param)) {
                             if (c == '-' || c == '+') {
                               upper = true;
                               continue;
                             }
                             name += upper ? static_cast<char>(std::toupper(c)) : c;
                             upper = false;
                           }
                           return name;
                         });

}  // namespace
}  // namespace vigil::match
