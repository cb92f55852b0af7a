#include "vigil/match/sigma.h"

#include <arpa/inet.h>
#include <xxhash.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
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

bool Logsource::covers(const Logsource& other) const {
  auto agrees = [](const std::string& mine, const std::string& theirs) {
    return mine.empty() || mine == theirs;
  };
  return agrees(product, other.product) && agrees(category, other.category) &&
         agrees(service, other.service);
}

using namespace detail;

namespace {

// A YAML stream's documents, split at its document markers: a line that starts with `---` or
// `...` followed by a space or the line's end. YAML forbids such a line inside any scalar
// (block or quoted), so the split is exact, and a broken document does not hide the others.
struct DocumentText {
  size_t line = 1;  // of its first line in the file
  std::string text;
};

std::vector<DocumentText> split_documents(const std::string& text) {
  std::vector<DocumentText> docs(1);
  size_t line = 1;
  for (size_t pos = 0; pos < text.size(); ++line) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string_view l(text.data() + pos, eol - pos);
    const bool marker = (l.substr(0, 3) == "---" || l.substr(0, 3) == "...") &&
                        (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    if (marker) {
      // `--- text` starts a document with content on the marker's line; `...` ends one.
      const bool inline_content = l[0] == '-' && l.size() > 4;
      docs.push_back({inline_content ? line : line + 1,
                      inline_content ? std::string(l.substr(4)) + "\n" : ""});
    } else if (l.substr(0, 1) == "%" &&
               docs.back().text.find_first_not_of(" \t\r\n") == std::string::npos) {
      // A directive (%YAML, %TAG) before its document's marker: the defaults hold.
    } else {
      docs.back().text.append(l);
      docs.back().text.push_back('\n');
    }
    pos = eol + 1;
  }
  return docs;
}

// Whether a document's text holds nothing but blank lines and comments.
bool blank(const std::string& text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t first = text.find_first_not_of(" \t\r", pos);
    if (first == std::string::npos) return true;
    if (text[first] != '\n' && text[first] != '#') return false;
    const size_t eol = text.find('\n', first);
    if (eol == std::string::npos) return true;
    pos = eol + 1;
  }
  return true;
}

constexpr size_t kMaxDocuments = 10'000;

// `src` merged into a copy of `dest`: maps key by key, recursively; anything else replaced
// (Sigma v1 collections: a rule over its `global` document, a `repeat` over the previous rule).
YAML::Node merged(const YAML::Node& dest, const YAML::Node& src) {
  YAML::Node out = YAML::Clone(dest);
  if (!out.IsMap() || !src.IsMap()) return YAML::Clone(src);
  for (const auto& kv : src) {
    const std::string key = kv.first.Scalar();
    if (out[key] && out[key].IsMap() && kv.second.IsMap())
      out[key] = merged(out[key], kv.second);
    else
      out[key] = YAML::Clone(kv.second);
  }
  return out;
}

YAML::Node without_action(const YAML::Node& doc) {
  YAML::Node out = YAML::Clone(doc);
  out.remove("action");
  return out;
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
                                 bool windash, bool caseless) {
  return to_regex(value, anchor_start, anchor_end, windash, caseless);
}

namespace {

// Title, id, name, status, level, description and tags; every other top-level key that is
// not in `known` is kept as metadata with a warning.
Status parse_metadata(const ParseContext& ctx, const YAML::Node& doc,
                      const std::set<std::string>& known, SigmaRule& rule) {
  rule.title = scalar_or_empty(doc["title"]);
  rule.id = scalar_or_empty(doc["id"]);
  rule.name = scalar_or_empty(doc["name"]);
  rule.status = scalar_or_empty(doc["status"]);
  rule.level = scalar_or_empty(doc["level"]);
  rule.description = scalar_or_empty(doc["description"]);
  if (rule.title.empty()) return ctx.error("missing 'title'");
  if (const auto tags = doc["tags"]; tags && tags.IsSequence()) {
    for (const auto& t : tags) rule.tags.push_back(scalar_or_empty(t));
  }
  for (const auto& kv : doc) {
    const std::string k = scalar_or_empty(kv.first);
    if (!known.count(k))
      rule.warnings.push_back("unknown top-level key '" + k + "' kept as metadata");
  }
  return Status::ok();
}

Status parse_logsource(const ParseContext& ctx, const YAML::Node& doc, Logsource& out) {
  const YAML::Node ls = doc["logsource"];
  if (!ls || !ls.IsMap()) return ctx.error("missing 'logsource' map");
  out.product = scalar_or_empty(ls["product"]);
  out.category = scalar_or_empty(ls["category"]);
  out.service = scalar_or_empty(ls["service"]);
  return Status::ok();
}

// The named searches of a detection (or a filter) and its condition, as the rule's
// predicates and condition tree. `reserved`: keys of the map that are not searches.
Status parse_detection(ParseContext& ctx, const YAML::Node& det, const char* what,
                       const std::set<std::string>& reserved, bool one_condition) {
  std::map<std::string, CondNode> searches;
  YAML::Node condition;
  for (const auto& kv : det) {
    const std::string name = scalar_or_empty(kv.first);
    if (name == "condition") {
      condition = kv.second;
      continue;
    }
    if (reserved.count(name)) continue;
    if (name == "timeframe")
      return ctx.unsupported(
          "'timeframe' (deprecated aggregation) is not supported; use a correlation rule");
    auto node = parse_search(ctx, name, kv.second);
    if (!node) return node.status();
    searches.emplace(name, std::move(*node));
  }
  if (!condition) return ctx.error(std::string(what) + " has no 'condition'");

  std::vector<std::string> conditions;
  if (condition.IsScalar()) {
    conditions.push_back(condition.Scalar());
  } else if (condition.IsSequence() && !one_condition) {
    for (const auto& c : condition) {
      if (!c.IsScalar()) return ctx.error("condition list items must be strings");
      conditions.push_back(c.Scalar());
    }
  } else {
    return ctx.error(std::string("'condition' of the ") + what + " must be a string" +
                     (one_condition ? "" : " or a list of strings"));
  }
  if (conditions.empty()) return ctx.error("empty condition list");

  CondNode any = make_node(CondNode::Kind::kOr);
  for (const auto& text : conditions) {
    auto tree = parse_condition(ctx, searches, text);
    if (!tree) return tree.status();
    any.children.push_back(std::move(*tree));
  }
  ctx.rule.condition = any.children.size() == 1 ? std::move(any.children[0]) : std::move(any);
  return Status::ok();
}

// A Sigma filter's `filter` section: the rules it applies to, its searches and condition.
Status parse_filter(ParseContext& ctx, const YAML::Node& doc) {
  const YAML::Node f = doc["filter"];
  if (!f || !f.IsMap()) return ctx.error("'filter' must be a map (rules, searches, condition)");
  SigmaFilter filter;
  const YAML::Node rules = f["rules"];
  if (!rules)
    return ctx.error(
        "the filter has no 'rules' (rule ids or names, or 'any' for every rule "
        "of its logsource)");
  if (rules.IsScalar()) {
    const std::string r = rules.Scalar();
    if (r != "any" && r != "all") filter.rules.push_back(r);
  } else if (rules.IsSequence()) {
    for (const auto& r : rules) {
      if (!r.IsScalar() || r.Scalar().empty())
        return ctx.error("filter 'rules' items must be rule ids or names");
      filter.rules.push_back(r.Scalar());
    }
    if (filter.rules.empty())
      return ctx.error(
          "filter 'rules' is an empty list; write 'any' to apply it to every "
          "rule of its logsource");
  } else {
    return ctx.error("filter 'rules' must be a rule id or name, a list of them, or 'any'");
  }
  if (Status s = parse_detection(ctx, f, "filter", {"rules"}, true); !s.is_ok()) return s;
  ctx.rule.filter = std::move(filter);
  return Status::ok();
}

const std::set<std::string>& known_filter_top_level_keys() {
  static const std::set<std::string> keys = {
      "title",  "id",         "name",      "description", "author",  "date",     "modified",
      "status", "references", "logsource", "filter",      "license", "taxonomy", "tags"};
  return keys;
}

// The specification makes `id` optional. A rule without one is known by an id derived from
// its title (a UUID's shape, stable while the title is; or its `name`, unique by the
// specification, when it has one), and a warning says so.
void derive_id(SigmaRule& rule) {
  if (!rule.name.empty()) {
    rule.id = rule.name;
  } else {
    const std::string material = "vigil derived rule id\x1f" + rule.title;
    const XXH128_hash_t h = XXH3_128bits(material.data(), material.size());
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                  static_cast<unsigned>(h.high64 >> 32),
                  static_cast<unsigned>((h.high64 >> 16) & 0xffff),
                  static_cast<unsigned>(h.high64 & 0xffff), static_cast<unsigned>(h.low64 >> 48),
                  static_cast<unsigned long long>(h.low64 & 0xffffffffffffULL));
    rule.id = buf;
  }
  rule.warnings.push_back("no 'id': known as '" + rule.id + "' (from its " +
                          (rule.name == rule.id ? "name" : "title") + "); give it an id");
}

// One document (a map) as a rule, a correlation or a filter.
Expected<SigmaRule> parse_document(const YAML::Node& doc, const std::string& source,
                                   const std::string& where) {
  SigmaRule rule;
  rule.source = source;
  ParseContext ctx{where, rule};
  try {
    if (!doc.IsMap()) return ctx.error("not a Sigma rule: the document is not a YAML map");
    if (doc["action"])
      return ctx.error("'action' (" + scalar_or_empty(doc["action"]) +
                       ") is a rule collection's: global, reset or repeat");
    if (doc["correlation"]) {
      if (Status s = parse_metadata(ctx, doc, known_correlation_top_level_keys(), rule); !s.is_ok())
        return s;
      if (rule.id.empty()) derive_id(rule);
      if (doc["detection"] || doc["logsource"])
        return ctx.error("a correlation rule has no 'detection' or 'logsource'");
      Correlation c;
      if (auto s = parse_correlation(ctx, doc, c); !s) return s;
      rule.correlation = std::move(c);
      return rule;
    }
    if (doc["filter"]) {
      if (Status s = parse_metadata(ctx, doc, known_filter_top_level_keys(), rule); !s.is_ok())
        return s;
      if (doc["detection"])
        return ctx.error("a filter has no 'detection' (its searches are in 'filter')");
      if (Status s = parse_logsource(ctx, doc, rule.logsource); !s.is_ok()) return s;
      if (Status s = parse_filter(ctx, doc); !s.is_ok()) return s;
      return rule;
    }
    if (Status s = parse_metadata(ctx, doc, known_top_level_keys(), rule); !s.is_ok()) return s;
    if (rule.id.empty()) derive_id(rule);
    if (Status s = parse_logsource(ctx, doc, rule.logsource); !s.is_ok()) return s;
    const YAML::Node det = doc["detection"];
    if (!det || !det.IsMap()) return ctx.error("missing 'detection' map");
    if (Status s = parse_detection(ctx, det, "detection", {}, false); !s.is_ok()) return s;
  } catch (const YAML::Exception& e) {
    return ctx.error(std::string("YAML error: ") + e.what());
  }
  return rule;
}

}  // namespace

std::vector<Expected<SigmaRule>> parse_sigma_documents(const std::string& yaml_text,
                                                       const std::string& source) {
  std::vector<Expected<SigmaRule>> out;
  // Rule text reaches the API, alerts and reports: it must be valid UTF-8 to be written as JSON.
  if (auto bad = utf8::describe_invalid(yaml_text); !bad.empty()) {
    out.push_back(Status::invalid(source + ": " + bad));
    return out;
  }
  std::vector<DocumentText> docs = split_documents(yaml_text);
  std::erase_if(docs, [](const DocumentText& d) { return blank(d.text); });
  // A file of many tiny documents costs far more parsed than its size: bounded.
  if (docs.size() > kMaxDocuments) {
    out.push_back(Status::invalid(source + ": holds " + std::to_string(docs.size()) +
                                  " documents, more than the limit of " +
                                  std::to_string(kMaxDocuments) + " per file"));
    return out;
  }
  // Sigma v1 collections: `action: global` is merged under every later document (until a
  // `reset`); `action: repeat` is the previous rule with this document merged over it.
  YAML::Node global;
  YAML::Node previous;
  const bool several = docs.size() > 1;
  for (size_t i = 0; i < docs.size(); ++i) {
    const std::string where = several ? source + ", document " + std::to_string(i + 1) + " (line " +
                                            std::to_string(docs[i].line) + ")"
                                      : source;
    YAML::Node node;
    try {
      node = YAML::Load(docs[i].text);
    } catch (const YAML::Exception& e) {
      out.push_back(Status::invalid(where + ": YAML error: " + e.what()));
      continue;
    }
    if (node.IsNull() && node.Tag() != "!") continue;  // `~`, `null`
    const YAML::Node action_node = node.IsMap() ? node["action"] : YAML::Node();
    const std::string action = action_node ? scalar_or_empty(action_node) : "";
    if (action_node && action != "global" && action != "reset" && action != "repeat") {
      out.push_back(Status::invalid(where + ": unknown collection action '" + action +
                                    "' (Sigma knows global, reset and repeat)"));
      continue;
    }
    if (action == "global") {
      global = without_action(node);
      continue;
    }
    if (action == "reset") {
      global = YAML::Node();
      continue;
    }
    YAML::Node doc;
    if (action == "repeat") {
      if (!previous) {
        out.push_back(Status::invalid(where + ": 'action: repeat' has no previous rule to repeat"));
        continue;
      }
      doc = merged(previous, without_action(node));
    } else {
      doc = global ? merged(global, node) : node;
    }
    previous = doc;
    out.push_back(parse_document(doc, source, where));
  }
  if (out.empty()) out.push_back(Status::invalid(source + ": no Sigma rule in the file"));
  return out;
}

Expected<SigmaRule> parse_sigma(const std::string& yaml_text, const std::string& source) {
  auto docs = parse_sigma_documents(yaml_text, source);
  if (docs.size() > 1) {
    return Status::invalid(source + ": holds " + std::to_string(docs.size()) +
                           " rules; one was expected (parse_sigma_documents reads them all)");
  }
  return std::move(docs.front());
}

}  // namespace vigil::match