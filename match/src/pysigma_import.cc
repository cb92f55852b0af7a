// import_pysigma_pipeline() (pysigma_import.h): a pySigma processing pipeline (YAML) as a
// vigil field mapping.

#include "vigil/match/pysigma_import.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "sigma_internal.h"
#include "vigil/core/utf8.h"

namespace vigil::match {
namespace {

// The Sigma parser's YAML readers: a scalar's text or "", a scalar or a list of them.
using detail::scalar_or_empty;
using detail::string_or_list;

bool truthy(const YAML::Node& n) {
  const std::string s = scalar_or_empty(n);
  return s == "true" || s == "True" || s == "yes";
}

// One field as the mapping writes it.
struct FieldOut {
  std::vector<std::string> paths;
  std::string unsupported;
};

// A set of fields for rules of one logsource (`any`: every rule), from one pipeline item.
struct Entry {
  Logsource match;
  bool any = true;
  size_t item = 0;  // index of the pipeline item it comes from
  std::string item_id;
  std::vector<std::pair<std::string, FieldOut>> fields;
};

// An add_condition item: the logsource its rules are of, and the fields and values it adds.
struct Condition {
  std::string name;
  Logsource match;
  size_t item = 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> where;  // Sigma field -> values
};

class Importer {
 public:
  Importer(const std::string& source, const FieldMapping* logsources_from)
      : source_(source), logsources_from_(logsources_from) {}

  Expected<PySigmaImport> run(const std::string& text) {
    if (auto bad = utf8::describe_invalid(text); !bad.empty())
      return Status::invalid(source_ + ": " + bad);
    YAML::Node doc;
    try {
      doc = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return Status::invalid(source_ + ": YAML error: " + e.what());
    }
    if (!doc.IsMap()) return Status::invalid(source_ + ": a pipeline is a YAML map");
    try {
      read(doc);
    } catch (const YAML::Exception& e) {
      refuse("YAML error: " + std::string(e.what()));
    }
    PySigmaImport out;
    if (refusals_.empty()) out.mapping_yaml = emit();
    if (!refusals_.empty()) {
      std::string msg = source_ + ": the pipeline cannot be expressed as a vigil mapping:";
      for (const auto& r : refusals_) msg += "\n  - " + r;
      return Status::invalid(msg);
    }
    out.notes = std::move(notes_);
    // The result must be a mapping vigil loads: checked here, not by the user later.
    if (auto m = FieldMapping::parse(out.mapping_yaml, source_ + " (imported)"); !m)
      return m.status();
    return out;
  }

 private:
  void refuse(const std::string& why) { refusals_.push_back(why); }

  void read(const YAML::Node& doc) {
    for (const auto& kv : doc) {
      const std::string k = scalar_or_empty(kv.first);
      if (k == "name") {
        name_ = scalar_or_empty(kv.second);
      } else if (k == "priority" || k == "allowed_backends") {
      } else if (k == "vars") {
        if (!kv.second.IsMap()) {
          refuse("'vars' must be a map");
          continue;
        }
        for (const auto& v : kv.second)
          vars_.emplace_back(scalar_or_empty(v.first), string_or_list(v.second));
      } else if (k == "transformations") {
        if (!kv.second.IsSequence()) {
          refuse("'transformations' must be a list");
          continue;
        }
        for (size_t i = 0; i < kv.second.size(); ++i) item(kv.second[i], i);
      } else if (k == "postprocessing" || k == "finalizers") {
        if (kv.second.IsSequence() && kv.second.size() > 0)
          notes_.push_back("'" + k +
                           "' ignored: it shapes the query text a backend writes, "
                           "not what matches");
      } else {
        refuse("unknown pipeline key '" + k + "'");
      }
    }
    if (name_.empty()) name_ = "imported";
  }

  // The logsources a processing item applies to: alternatives (or), each a logsource that
  // rules must agree with; nullopt: every rule. Anything but logsource conditions is refused.
  std::optional<std::vector<Logsource>> logsources(const YAML::Node& item, const std::string& who,
                                                   bool& ok) {
    const YAML::Node conds = item["rule_conditions"];
    for (const char* k : {"rule_cond_expr", "rule_condition_expression"}) {
      if (item[k]) {
        refuse(who + ": '" + std::string(k) + "' (named rule conditions) is not supported");
        ok = false;
      }
    }
    for (const char* k : {"rule_cond_not", "rule_condition_negation"}) {
      if (truthy(item[k])) {
        refuse(who + ": a negated rule condition ('" + std::string(k) +
               "') cannot be expressed: a mapping entry applies to the logsources it names");
        ok = false;
      }
    }
    if (!conds || (conds.IsSequence() && conds.size() == 0)) return std::nullopt;
    if (!conds.IsSequence()) {
      refuse(who + ": 'rule_conditions' must be a list");
      ok = false;
      return std::nullopt;
    }
    std::string op = scalar_or_empty(item["rule_cond_op"]);
    if (op.empty()) op = scalar_or_empty(item["rule_condition_linking"]);
    const bool any_of = op == "or" || op == "any";
    if (!op.empty() && !any_of && op != "and" && op != "all") {
      refuse(who + ": unknown rule condition operator '" + op + "'");
      ok = false;
    }
    std::vector<Logsource> alternatives;
    Logsource all;
    for (const auto& c : conds) {
      const std::string type = scalar_or_empty(c["type"]);
      if (type != "logsource") {
        refuse(who + ": rule condition '" + type +
               "' cannot be expressed (vigil's mapping selects fields by logsource only)");
        ok = false;
        continue;
      }
      Logsource ls;
      for (const auto& kv : c) {
        const std::string k = scalar_or_empty(kv.first);
        std::string* slot = k == "product"    ? &ls.product
                            : k == "category" ? &ls.category
                            : k == "service"  ? &ls.service
                                              : nullptr;
        if (k == "type") continue;
        if (!slot) {
          refuse(who + ": logsource condition key '" + k + "' is not product, category or service");
          ok = false;
          continue;
        }
        *slot = scalar_or_empty(kv.second);
      }
      if (any_of) {
        alternatives.push_back(ls);
        continue;
      }
      for (auto [mine, theirs] :
           {std::pair{&all.product, &ls.product}, std::pair{&all.category, &ls.category},
            std::pair{&all.service, &ls.service}}) {
        if (theirs->empty()) continue;
        if (!mine->empty() && *mine != *theirs) {
          refuse(who + ": its logsource conditions are joined by 'and' but disagree ('" + *mine +
                 "' and '" + *theirs + "'): no rule can match both");
          ok = false;
        }
        *mine = *theirs;
      }
    }
    if (!any_of) alternatives.push_back(all);
    return alternatives;
  }

  // include_fields / exclude_fields / processing_item_applied of a field-name transformation.
  struct FieldFilter {
    std::vector<std::string> include, exclude;
    std::set<std::string> not_applied_by;  // fields not mapped by these items
    bool present = false;
  };
  FieldFilter field_filter(const YAML::Node& item, const std::string& who, bool& ok) {
    FieldFilter f;
    const YAML::Node conds = item["field_name_conditions"];
    if (!conds || (conds.IsSequence() && conds.size() == 0)) return f;
    f.present = true;
    if (!conds.IsSequence()) {
      refuse(who + ": 'field_name_conditions' must be a list");
      ok = false;
      return f;
    }
    const bool negated =
        truthy(item["field_name_cond_not"]) || truthy(item["field_name_condition_negation"]);
    std::string op = scalar_or_empty(item["field_name_cond_op"]);
    if (op.empty()) op = scalar_or_empty(item["field_name_condition_linking"]);
    for (const auto& c : conds) {
      const std::string type = scalar_or_empty(c["type"]);
      if (type == "include_fields" || type == "exclude_fields") {
        if (negated || conds.size() > 1) {
          refuse(who + ": '" + type +
                 "' combined with other or negated field conditions is not "
                 "supported");
          ok = false;
          continue;
        }
        if (truthy(c["regex"])) {
          refuse(who + ": '" + type + "' with regex fields is not supported");
          ok = false;
          continue;
        }
        auto fields = string_or_list(c["fields"]);
        (type == "include_fields" ? f.include : f.exclude) = fields;
      } else if (type == "processing_item_applied") {
        if (!negated || (conds.size() > 1 && op != "or" && op != "any")) {
          refuse(who +
                 ": 'processing_item_applied' is supported negated (the fields the named "
                 "items did not map), alone or joined by 'or'");
          ok = false;
          continue;
        }
        f.not_applied_by.insert(scalar_or_empty(c["processing_item_id"]));
      } else {
        refuse(who + ": field name condition '" + type + "' cannot be expressed");
        ok = false;
      }
    }
    return f;
  }

  void no_detection_item_conditions(const YAML::Node& item, const std::string& who, bool& ok) {
    if (item["detection_item_conditions"] && item["detection_item_conditions"].size() > 0) {
      refuse(who +
             ": detection item conditions cannot be expressed (a mapping maps fields, "
             "not single values)");
      ok = false;
    }
  }

  void item(const YAML::Node& it, size_t index) {
    const std::string type = scalar_or_empty(it["type"]);
    const std::string id = scalar_or_empty(it["id"]);
    const std::string who = "transformation " + std::to_string(index + 1) + " '" + type + "'" +
                            (id.empty() ? "" : " (id " + id + ")");
    bool ok = true;
    if (type == "set_state" || type == "set_custom_attribute") {
      notes_.push_back(who + " ignored: it does not change what matches");
      return;
    }
    if (type == "field_name_mapping") {
      auto ls = logsources(it, who, ok);
      no_detection_item_conditions(it, who, ok);
      const FieldFilter filter = field_filter(it, who, ok);
      if (!filter.not_applied_by.empty()) {
        refuse(who + ": 'processing_item_applied' on a field mapping is not supported");
        ok = false;
      }
      const YAML::Node mapping = it["mapping"];
      if (!mapping || !mapping.IsMap()) {
        refuse(who + ": 'mapping' must be a map of field names to names");
        ok = false;
      }
      if (prefixed_all_) {
        refuse(who +
               ": comes after a prefix given to every field, so it maps prefixed names; "
               "vigil's prefix applies to the fields no entry maps");
        ok = false;
      }
      if (!ok) return;
      Entry e;
      e.item = index;
      e.item_id = id;
      for (const auto& kv : mapping) {
        const std::string field = scalar_or_empty(kv.first);
        if (!filter.include.empty() &&
            std::find(filter.include.begin(), filter.include.end(), field) == filter.include.end())
          continue;
        if (std::find(filter.exclude.begin(), filter.exclude.end(), field) != filter.exclude.end())
          continue;
        FieldOut out;
        out.paths = string_or_list(kv.second);
        if (out.paths.empty() || std::any_of(out.paths.begin(), out.paths.end(),
                                             [](const std::string& p) { return p.empty(); })) {
          refuse(who + ": field '" + field + "' maps to no name");
          continue;
        }
        if (outputs_.count(field)) {
          refuse(who + ": field '" + field +
                 "' is the name an earlier item mapped another field "
                 "to; pySigma would map it twice (a chain vigil's mapping does not express)");
          continue;
        }
        e.fields.emplace_back(field, std::move(out));
      }
      for (const auto& [f, out] : e.fields) outputs_.insert(out.paths.begin(), out.paths.end());
      add_entries(std::move(e), ls);
      return;
    }
    if (type == "field_name_prefix") {
      no_detection_item_conditions(it, who, ok);
      if (it["rule_conditions"] && it["rule_conditions"].size() > 0) {
        refuse(who +
               ": a prefix for some logsources only cannot be expressed (vigil's "
               "field_prefix holds for every rule)");
        ok = false;
      }
      const FieldFilter filter = field_filter(it, who, ok);
      const std::string prefix = scalar_or_empty(it["prefix"]);
      if (prefix.empty()) {
        refuse(who + ": no 'prefix'");
        ok = false;
      }
      if (!ok) return;
      if (!filter.include.empty()) {
        Entry e;
        e.item = index;
        e.item_id = id;
        for (const auto& f : filter.include) {
          if (prefix_outputs(prefix, [&](const std::string& p) { return p == f; })) continue;
          e.fields.emplace_back(f, FieldOut{{prefix + f}, ""});
        }
        add_entries(std::move(e), std::nullopt);
        return;
      }
      for (const auto& known : filter.not_applied_by) {
        if (!item_ids_.count(known)) {
          refuse(who + ": names processing item '" + known + "', which no earlier item is");
          return;
        }
      }
      // Every other field gets the prefix: mapped ones on their mapped names, unless the
      // condition spares them.
      prefix_entries(prefix, [&](const Entry& e, const std::string& path) {
        if (filter.not_applied_by.count(e.item_id)) return false;
        return std::find(filter.exclude.begin(), filter.exclude.end(), path) ==
               filter.exclude.end();
      });
      for (auto& p : prefixes_) p = prefix + p;
      if (!filter.exclude.empty()) {
        Entry e;  // the excluded fields keep their names
        e.item = index;
        e.item_id = id;
        for (const auto& f : filter.exclude) e.fields.emplace_back(f, FieldOut{{f}, ""});
        add_entries(std::move(e), std::nullopt);
      }
      if (!filter.present) prefixed_all_ = true;
      return;
    }
    if (type == "add_condition") {
      auto ls = logsources(it, who, ok);
      no_detection_item_conditions(it, who, ok);
      if (!ls) {
        refuse(who +
               ": a condition added to every rule is not a logsource (give it a "
               "logsource rule condition)");
        ok = false;
      }
      if (truthy(it["negated"]) || truthy(it["template"])) {
        refuse(who + ": negated or templated conditions cannot be expressed");
        ok = false;
      }
      const YAML::Node conds = it["conditions"];
      if (!conds || !conds.IsMap() || conds.size() == 0) {
        refuse(who + ": 'conditions' must be a map of fields to values");
        ok = false;
      }
      if (!ok) return;
      std::vector<std::pair<std::string, std::vector<std::string>>> where;
      for (const auto& kv : conds) {
        std::string field = scalar_or_empty(kv.first);
        if (field.find('|') != std::string::npos) {
          refuse(who + ": condition on '" + field +
                 "' uses a modifier; logsources test exact "
                 "values");
          continue;
        }
        auto values = string_or_list(kv.second);
        for (const auto& v : values) {
          if (v.find_first_of("*?") != std::string::npos) {
            refuse(who + ": value '" + v + "' of '" + field +
                   "' has a wildcard; logsources test exact values");
          }
        }
        where.emplace_back(field, std::move(values));
      }
      for (size_t i = 0; i < ls->size(); ++i) {
        Condition c;
        c.name = (id.empty() ? "logsource_" + std::to_string(index + 1) : id) +
                 (ls->size() > 1 ? "_" + std::to_string(i + 1) : "");
        c.match = (*ls)[i];
        c.item = index;
        c.where = where;
        conditions_.push_back(std::move(c));
      }
      return;
    }
    if (type == "detection_item_failure") {
      auto ls = logsources(it, who, ok);
      no_detection_item_conditions(it, who, ok);
      const FieldFilter filter = field_filter(it, who, ok);
      if (filter.include.empty()) {
        refuse(who + ": only a failure for named fields (include_fields) can be expressed");
        ok = false;
      }
      if (!ok) return;
      std::string message = scalar_or_empty(it["message"]);
      if (message.empty()) message = "refused by pipeline " + name_;
      Entry e;
      e.item = index;
      e.item_id = id;
      for (const auto& f : filter.include) e.fields.emplace_back(f, FieldOut{{}, message});
      add_entries(std::move(e), ls);
      return;
    }
    if (type == "value_placeholders") {
      (void)logsources(it, who, ok);
      if (it["rule_conditions"] && it["rule_conditions"].size() > 0) {
        refuse(who + ": placeholders for some rules only cannot be expressed");
        return;
      }
      auto include = string_or_list(it["include"]);
      for (const auto& [name, values] : vars_) {
        if (include.empty() || std::find(include.begin(), include.end(), name) != include.end())
          placeholders_.emplace_back(name, values);
      }
      if (placeholders_.empty())
        notes_.push_back(who +
                         ": the pipeline's 'vars' give no values; rules using "
                         "placeholders will be refused");
      return;
    }
    refuse(who + " cannot be expressed in vigil's mapping format");
  }

  void add_entries(Entry e, const std::optional<std::vector<Logsource>>& ls) {
    if (!e.item_id.empty()) item_ids_.insert(e.item_id);
    if (e.fields.empty()) return;
    if (!ls) {
      entries_.push_back(std::move(e));
      return;
    }
    for (const auto& l : *ls) {
      Entry copy = e;
      copy.any = false;
      copy.match = l;
      entries_.push_back(std::move(copy));
    }
  }

  // Prefixes the mapped paths `which` selects; true if one was.
  template <typename F>
  bool prefix_outputs(const std::string& prefix, F&& which) {
    return prefix_entries(prefix, [&](const Entry&, const std::string& p) { return which(p); });
  }
  template <typename F>
  bool prefix_entries(const std::string& prefix, F&& which) {
    bool any = false;
    for (auto& e : entries_) {
      for (auto& [field, out] : e.fields) {
        for (auto& p : out.paths) {
          if (!which(e, p)) continue;
          p = prefix + p;
          any = true;
        }
      }
    }
    return any;
  }

  // The JSON path of a Sigma field an add_condition item adds, for rules of `ls`: the mapping
  // items after it decide, as in pySigma.
  std::string resolve(const std::string& field, const Logsource& ls, size_t after) {
    for (const auto& e : entries_) {
      if (e.item <= after || (!e.any && !e.match.covers(ls))) continue;
      for (const auto& [f, out] : e.fields) {
        if (f != field) continue;
        if (!out.unsupported.empty() || out.paths.empty()) return field;
        if (out.paths.size() > 1)
          notes_.push_back("logsource condition on '" + field + "' tests its first name '" +
                           out.paths[0] + "' only");
        return out.paths[0];
      }
    }
    return prefixed_all_ ? prefixes_.front() + field : field;
  }

  static void emit_match(YAML::Emitter& y, const Logsource& ls) {
    y << YAML::Key << "match" << YAML::Value << YAML::Flow << YAML::BeginMap;
    if (!ls.product.empty()) y << YAML::Key << "product" << YAML::Value << ls.product;
    if (!ls.category.empty()) y << YAML::Key << "category" << YAML::Value << ls.category;
    if (!ls.service.empty()) y << YAML::Key << "service" << YAML::Value << ls.service;
    y << YAML::EndMap;
  }

  static void emit_fields(YAML::Emitter& y,
                          const std::vector<std::pair<std::string, FieldOut>>& fs) {
    y << YAML::BeginMap;
    std::set<std::string> seen;
    for (const auto& [f, out] : fs) {
      if (!seen.insert(f).second) continue;  // the first item that maps a field wins
      y << YAML::Key << f << YAML::Value;
      if (!out.unsupported.empty())
        y << YAML::Flow << YAML::BeginMap << YAML::Key << "unsupported" << YAML::Value
          << out.unsupported << YAML::EndMap;
      else if (out.paths.size() == 1)
        y << out.paths[0];
      else
        y << YAML::Flow << out.paths;
    }
    y << YAML::EndMap;
  }

  std::string emit() {
    // Entries for every rule after the last logsource-bound one are the fallback `fields`;
    // any earlier one keeps its place among fields_by_logsource, as `match: {}`.
    size_t tail = entries_.size();
    while (tail > 0 && entries_[tail - 1].any) --tail;
    std::vector<std::pair<std::string, FieldOut>> fallback;
    for (size_t i = tail; i < entries_.size(); ++i)
      fallback.insert(fallback.end(), entries_[i].fields.begin(), entries_[i].fields.end());

    std::vector<LogsourceMapping> logsources;
    for (const auto& c : conditions_) {
      LogsourceMapping lm{c.name, c.match, {}};
      for (const auto& [field, values] : c.where)
        lm.where.emplace_back(resolve(field, c.match, c.item), values);
      logsources.push_back(std::move(lm));
    }
    std::string host_field, time_field;
    if (logsources_from_) {
      host_field = logsources_from_->host_field();
      time_field = logsources_from_->time_field();
      for (const auto& theirs : logsources_from_->logsources()) {
        const bool defined = std::any_of(logsources.begin(), logsources.end(), [&](const auto& l) {
          return l.match.product == theirs.match.product &&
                 l.match.category == theirs.match.category &&
                 l.match.service == theirs.match.service;
        });
        if (!defined) logsources.push_back(theirs);
      }
    }
    if (logsources.empty())
      refuse(
          "the pipeline adds no logsource condition (add_condition with a logsource rule "
          "condition), and vigil needs to know which events each logsource is: give "
          "--logsources MAPPING to take them from a vigil mapping");

    YAML::Emitter y;
    y << YAML::BeginMap;
    y << YAML::Key << "name" << YAML::Value << name_;
    y << YAML::Key << "description" << YAML::Value
      << "imported from the pySigma pipeline '" + name_ + "' by vigil mapping import-pysigma";
    if (prefixes_.size() != 1 || !prefixes_[0].empty())
      y << YAML::Key << "field_prefix" << YAML::Value << YAML::Flow << prefixes_;
    if (!host_field.empty()) y << YAML::Key << "host_field" << YAML::Value << host_field;
    if (!time_field.empty()) y << YAML::Key << "time_field" << YAML::Value << time_field;
    if (!fallback.empty()) {
      y << YAML::Key << "fields" << YAML::Value;
      emit_fields(y, fallback);
    }
    if (tail > 0) {
      y << YAML::Key << "fields_by_logsource" << YAML::Value << YAML::BeginSeq;
      for (size_t i = 0; i < tail; ++i) {
        y << YAML::BeginMap;
        emit_match(y, entries_[i].any ? Logsource{} : entries_[i].match);
        y << YAML::Key << "fields" << YAML::Value;
        emit_fields(y, entries_[i].fields);
        y << YAML::EndMap;
      }
      y << YAML::EndSeq;
    }
    if (!placeholders_.empty()) {
      y << YAML::Key << "placeholders" << YAML::Value << YAML::BeginMap;
      for (const auto& [name, values] : placeholders_)
        y << YAML::Key << name << YAML::Value << YAML::Flow << values;
      y << YAML::EndMap;
    }
    y << YAML::Key << "logsources" << YAML::Value << YAML::BeginSeq;
    for (const auto& l : logsources) {
      y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << l.name;
      emit_match(y, l.match);
      y << YAML::Key << "where" << YAML::Value << YAML::Flow << YAML::BeginMap;
      for (const auto& [path, values] : l.where) {
        y << YAML::Key << path << YAML::Value;
        if (values.size() == 1)
          y << values[0];
        else
          y << values;
      }
      y << YAML::EndMap << YAML::EndMap;
    }
    y << YAML::EndSeq << YAML::EndMap;
    return std::string(
               "# Imported from a pySigma processing pipeline by `vigil mapping "
               "import-pysigma`.\n") +
           y.c_str() + "\n";
  }

  const std::string& source_;
  const FieldMapping* logsources_from_;
  std::string name_;
  std::vector<std::pair<std::string, std::vector<std::string>>> vars_, placeholders_;
  std::vector<Entry> entries_;
  std::vector<Condition> conditions_;
  std::vector<std::string> prefixes_{""};
  std::set<std::string> outputs_;   // names fields were mapped to
  std::set<std::string> item_ids_;  // ids of the field items so far
  bool prefixed_all_ = false;
  std::vector<std::string> refusals_, notes_;
};

}  // namespace

Expected<PySigmaImport> import_pysigma_pipeline(const std::string& yaml_text,
                                                const std::string& source,
                                                const FieldMapping* logsources_from) {
  return Importer(source, logsources_from).run(yaml_text);
}

}  // namespace vigil::match
