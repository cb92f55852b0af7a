#include "vigil/match/sigma.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "sigma_internal.h"
#include "vigil/core/time.h"
#include "vigil/core/utf8.h"

namespace vigil::match {

std::string Logsource::to_string() const {
  std::string out;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += v;
  };
  add("product", product);
  add("category", category);
  add("service", service);
  return out.empty() ? "(none)" : out;
}

using namespace detail;

namespace {

class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override { events_ = 0; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { ++events_; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { events_ += 2; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    events_ += 2;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    events_ += 2;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    events_ += 2;
  }
  void OnMapEnd() override {}
  // True if the last document had content beyond a single root null.
  bool had_content() const { return events_ > 1; }

 private:
  int events_ = 0;
};

// Number of documents with content in `text`, counting at most two.
size_t count_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  size_t docs = 0;
  while (docs < 2 && parser.HandleNextDocument(counter)) {
    if (!counter.had_content()) break;
    ++docs;
  }
  return docs;
}

}  // namespace

std::string detail::scalar_or_empty(const YAML::Node& n) {
  return n && n.IsScalar() ? n.Scalar() : std::string();
}

namespace {

const std::set<std::string>& known_top_level_keys() {
  static const std::set<std::string> keys = {"title",
                                             "id",
                                             "name",
                                             "status",
                                             "description",
                                             "references",
                                             "author",
                                             "date",
                                             "modified",
                                             "tags",
                                             "logsource",
                                             "detection",
                                             "fields",
                                             "falsepositives",
                                             "level",
                                             "related",
                                             "license",
                                             "taxonomy",
                                             "scope",
                                             "simulation",
                                             "regression_tests_path",
                                             "tests"};
  return keys;
}

const std::set<std::string>& known_correlation_top_level_keys() {
  static const std::set<std::string> keys = {
      "title",       "id",      "name",     "status",   "description", "references",
      "author",      "date",    "modified", "tags",     "level",       "falsepositives",
      "correlation", "related", "license",  "taxonomy", "scope",       "generate"};
  return keys;
}

}  // namespace

std::vector<std::string> detail::string_or_list(const YAML::Node& n) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& x : n) out.push_back(scalar_or_empty(x));
  }
  return out;
}

// The `correlation` section. Every key that decides what is detected must be known.

std::string sigma_value_to_regex(const std::string& value, bool anchor_start, bool anchor_end,
                                 bool windash) {
  return to_regex(value, anchor_start, anchor_end, windash);
}

Expected<SigmaRule> parse_sigma(const std::string& yaml_text, const std::string& source) {
  SigmaRule rule;
  rule.source = source;
  ParseContext ctx{source, rule};
  // Rule text reaches the API, alerts and reports: it must be valid UTF-8 to be written as JSON.
  if (auto bad = utf8::describe_invalid(yaml_text); !bad.empty()) return ctx.error(bad);
  try {
    if (count_documents(yaml_text) > 1) {
      return ctx.unsupported("multi-document rule files (rule collections) are not supported yet");
    }
    const YAML::Node doc = YAML::Load(yaml_text);
    if (!doc.IsMap()) return ctx.error("not a Sigma rule: the document is not a YAML map");

    if (doc["action"])
      return ctx.unsupported("rule collection actions ('action') are not supported");

    rule.title = scalar_or_empty(doc["title"]);
    rule.id = scalar_or_empty(doc["id"]);
    rule.name = scalar_or_empty(doc["name"]);
    if (doc["correlation"]) {
      rule.status = scalar_or_empty(doc["status"]);
      rule.level = scalar_or_empty(doc["level"]);
      rule.description = scalar_or_empty(doc["description"]);
      if (rule.title.empty()) return ctx.error("missing 'title'");
      if (rule.id.empty()) return ctx.error("missing 'id'");
      if (const auto tags = doc["tags"]; tags && tags.IsSequence()) {
        for (const auto& t : tags) rule.tags.push_back(scalar_or_empty(t));
      }
      if (doc["detection"] || doc["logsource"])
        return ctx.error("a correlation rule has no 'detection' or 'logsource'");
      for (const auto& kv : doc) {
        const std::string k = scalar_or_empty(kv.first);
        if (!known_correlation_top_level_keys().count(k))
          rule.warnings.push_back("unknown top-level key '" + k + "' kept as metadata");
      }
      Correlation c;
      if (auto s = parse_correlation(ctx, doc, c); !s) return s;
      rule.correlation = std::move(c);
      return rule;
    }
    rule.status = scalar_or_empty(doc["status"]);
    rule.level = scalar_or_empty(doc["level"]);
    rule.description = scalar_or_empty(doc["description"]);
    if (rule.title.empty()) return ctx.error("missing 'title'");
    if (rule.id.empty()) return ctx.error("missing 'id'");
    if (const auto tags = doc["tags"]; tags && tags.IsSequence()) {
      for (const auto& t : tags) rule.tags.push_back(scalar_or_empty(t));
    }
    for (const auto& kv : doc) {
      const std::string k = scalar_or_empty(kv.first);
      if (!known_top_level_keys().count(k))
        rule.warnings.push_back("unknown top-level key '" + k + "' kept as metadata");
    }

    const YAML::Node ls = doc["logsource"];
    if (!ls || !ls.IsMap()) return ctx.error("missing 'logsource' map");
    rule.logsource.product = scalar_or_empty(ls["product"]);
    rule.logsource.category = scalar_or_empty(ls["category"]);
    rule.logsource.service = scalar_or_empty(ls["service"]);

    const YAML::Node det = doc["detection"];
    if (!det || !det.IsMap()) return ctx.error("missing 'detection' map");
    std::map<std::string, CondNode> searches;
    YAML::Node condition;
    for (const auto& kv : det) {
      const std::string name = scalar_or_empty(kv.first);
      if (name == "condition") {
        condition = kv.second;
        continue;
      }
      if (name == "timeframe")
        return ctx.unsupported(
            "'timeframe' (deprecated aggregation) is not supported; use a correlation rule");
      auto node = parse_search(ctx, name, kv.second);
      if (!node) return node.status();
      searches.emplace(name, std::move(*node));
    }
    if (!condition) return ctx.error("detection has no 'condition'");

    std::vector<std::string> conditions;
    if (condition.IsScalar()) {
      conditions.push_back(condition.Scalar());
    } else if (condition.IsSequence()) {
      for (const auto& c : condition) {
        if (!c.IsScalar()) return ctx.error("condition list items must be strings");
        conditions.push_back(c.Scalar());
      }
    } else {
      return ctx.error("'condition' must be a string or a list of strings");
    }
    if (conditions.empty()) return ctx.error("empty condition list");

    CondNode any = make_node(CondNode::Kind::kOr);
    for (const auto& text : conditions) {
      auto tree = parse_condition(ctx, searches, text);
      if (!tree) return tree.status();
      any.children.push_back(std::move(*tree));
    }
    rule.condition = any.children.size() == 1 ? std::move(any.children[0]) : std::move(any);
  } catch (const YAML::Exception& e) {
    return ctx.error(std::string("YAML error: ") + e.what());
  }
  return rule;
}

}  // namespace vigil::match