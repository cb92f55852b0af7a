// Correlation rules (Sigma's correlation specification): type, rules, group-by, timespan,
// condition, aliases, generate.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>

#include "sigma_internal.h"
#include "vigil/core/time.h"

namespace vigil::match {
namespace {

// The correlation types by name, in the order Correlation::Type lists them.
constexpr std::pair<std::string_view, Correlation::Type> kCorrelationTypes[] = {
    {"event_count", Correlation::Type::kEventCount},
    {"value_count", Correlation::Type::kValueCount},
    {"temporal", Correlation::Type::kTemporal},
    {"temporal_ordered", Correlation::Type::kTemporalOrdered},
    {"value_sum", Correlation::Type::kValueSum},
    {"value_avg", Correlation::Type::kValueAvg},
    {"value_min", Correlation::Type::kValueMin},
    {"value_max", Correlation::Type::kValueMax},
    {"value_median", Correlation::Type::kValueMedian},
    {"value_percentile", Correlation::Type::kValuePercentile},
};

std::optional<Correlation::Type> correlation_type_of(std::string_view name) {
  for (const auto& [n, t] : kCorrelationTypes) {
    if (n == name) return t;
  }
  return std::nullopt;
}

// pySigma's extended temporal condition: `not` > `and` > `or` (keywords in any case),
// parentheses, and rule names or ids from `rules`, every one of which it must use. Bounded:
// 4 KB of text, 64 levels.
class RuleExpression {
 public:
  RuleExpression(std::string_view text, const std::vector<std::string>& rules)
      : text_(text), rules_(rules), used_(rules.size(), false) {}

  Expected<CondNode> parse() {
    if (text_.size() > 4096) return Status::invalid("longer than 4096 characters");
    auto e = or_expr(0);
    if (!e) return e;
    if (!next().empty()) return Status::invalid("unexpected '" + std::string(next()) + "'");
    for (size_t i = 0; i < rules_.size(); ++i) {
      if (!used_[i]) return Status::invalid("rule '" + rules_[i] + "' is listed but not used");
    }
    return e;
  }

 private:
  // The next token: a parenthesis or a word (without consuming it).
  std::string_view next() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    if (pos_ >= text_.size()) return {};
    if (text_[pos_] == '(' || text_[pos_] == ')') return text_.substr(pos_, 1);
    size_t end = pos_;
    while (end < text_.size() && !std::isspace(static_cast<unsigned char>(text_[end])) &&
           text_[end] != '(' && text_[end] != ')')
      ++end;
    return text_.substr(pos_, end - pos_);
  }
  static bool keyword(std::string_view token, std::string_view k) {
    return token.size() == k.size() &&
           std::equal(token.begin(), token.end(), k.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           });
  }
  Expected<CondNode> binary(size_t depth, bool is_or) {
    auto first = is_or ? binary(depth, false) : unary(depth);
    if (!first) return first;
    CondNode node;
    node.kind = is_or ? CondNode::Kind::kOr : CondNode::Kind::kAnd;
    node.children.push_back(std::move(*first));
    while (keyword(next(), is_or ? "or" : "and")) {
      pos_ += is_or ? 2 : 3;
      auto more = is_or ? binary(depth, false) : unary(depth);
      if (!more) return more;
      node.children.push_back(std::move(*more));
    }
    if (node.children.size() == 1) return std::move(node.children[0]);
    return node;
  }
  Expected<CondNode> or_expr(size_t depth) { return binary(depth, true); }
  Expected<CondNode> unary(size_t depth) {
    if (depth > 64) return Status::invalid("nested deeper than 64 levels");
    const std::string_view token = next();
    if (token.empty()) return Status::invalid("ends where a rule name was expected");
    if (keyword(token, "not")) {
      pos_ += 3;
      auto inner = unary(depth + 1);
      if (!inner) return inner;
      CondNode node;
      node.kind = CondNode::Kind::kNot;
      node.children.push_back(std::move(*inner));
      return node;
    }
    if (token == "(") {
      ++pos_;
      auto inner = or_expr(depth + 1);
      if (!inner) return inner;
      if (next() != ")") return Status::invalid("a '(' is not closed");
      ++pos_;
      return inner;
    }
    if (token == ")" || keyword(token, "and") || keyword(token, "or"))
      return Status::invalid("unexpected '" + std::string(token) + "'");
    const auto it = std::find(rules_.begin(), rules_.end(), token);
    if (it == rules_.end())
      return Status::invalid("'" + std::string(token) + "' is not one of the correlation's rules");
    pos_ += token.size();
    CondNode leaf;
    leaf.kind = CondNode::Kind::kPred;
    leaf.index = static_cast<uint32_t>(it - rules_.begin());
    used_[leaf.index] = true;
    return leaf;
  }

  std::string_view text_;
  const std::vector<std::string>& rules_;
  std::vector<bool> used_;
  size_t pos_ = 0;
};

Expected<CondNode> parse_rule_expression(std::string_view text,
                                         const std::vector<std::string>& rules) {
  return RuleExpression(text, rules).parse();
}

}  // namespace
}  // namespace vigil::match

namespace vigil::match::detail {
Status parse_correlation(ParseContext& ctx, const YAML::Node& doc, Correlation& c) {
  const YAML::Node node = doc["correlation"];
  if (!node.IsMap()) return ctx.error("'correlation' must be a map");
  static const std::set<std::string> keys = {"type",      "rules",     "group-by", "timespan",
                                             "timeframe", "condition", "aliases",  "generate"};
  for (const auto& kv : node) {
    const std::string k = scalar_or_empty(kv.first);
    if (!keys.count(k)) return ctx.error("correlation: unknown key '" + k + "'");
  }
  const std::string type = scalar_or_empty(node["type"]);
  const auto parsed_type = correlation_type_of(type);
  if (!parsed_type) {
    std::string known;
    for (const auto& [name, t] : kCorrelationTypes)
      known += (known.empty() ? "" : ", ") + std::string(name);
    return ctx.error("correlation: unknown type '" + type + "' (" + known + ")");
  }
  c.type = *parsed_type;

  c.rules = string_or_list(node["rules"]);
  if (c.rules.empty()) return ctx.error("correlation: 'rules' must name at least one rule");
  for (const auto& r : c.rules) {
    if (r.empty()) return ctx.error("correlation: an entry of 'rules' is empty");
  }
  const bool temporal =
      c.type == Correlation::Type::kTemporal || c.type == Correlation::Type::kTemporalOrdered;
  if (temporal && c.rules.size() < 2)
    return ctx.error("correlation: a " + type + " correlation needs at least two rules");
  c.group_by = string_or_list(node["group-by"]);

  const YAML::Node span = node["timespan"] ? node["timespan"] : node["timeframe"];
  const std::string span_text = scalar_or_empty(span);
  const auto ms = parse_duration_ms(span_text);
  if (!ms || *ms <= 0)
    return ctx.error("correlation: 'timespan' must be a duration such as 5m or 1h, not '" +
                     span_text + "'");
  c.timespan_ms = *ms;

  const YAML::Node cond = node["condition"];
  if (cond && cond.IsScalar()) {
    if (!temporal)
      return ctx.error(
          "correlation: a condition written as an expression ('a and b') is for "
          "temporal and temporal_ordered correlations; " +
          type + " needs a map such as {gte: 10}");
    auto e = parse_rule_expression(cond.Scalar(), c.rules);
    if (!e)
      return ctx.error("correlation: condition '" + cond.Scalar() + "': " + e.status().message());
    if (c.type == Correlation::Type::kTemporalOrdered) {
      // The order is the rules' list: only "every rule, joined by and" keeps a meaning.
      std::vector<bool> named(c.rules.size(), false);
      bool conjunction = e->kind == CondNode::Kind::kAnd || c.rules.size() == 1;
      for (const auto& leaf :
           e->kind == CondNode::Kind::kAnd ? e->children : std::vector<CondNode>{*e}) {
        conjunction = conjunction && leaf.kind == CondNode::Kind::kPred;
        if (leaf.kind == CondNode::Kind::kPred) named[leaf.index] = true;
      }
      if (!conjunction ||
          std::count(named.begin(), named.end(), true) != static_cast<std::ptrdiff_t>(named.size()))
        return ctx.error(
            "correlation: a temporal_ordered condition written as an expression must "
            "name every rule joined by 'and' (the order is the rules' list)");
    } else {
      c.expression = std::move(*e);
    }
  } else if (cond) {
    if (!cond.IsMap()) return ctx.error("correlation: 'condition' must be a map such as {gte: 10}");
    static const std::map<std::string, Correlation::Op> ops = {
        {"gt", Correlation::Op::kGt}, {"gte", Correlation::Op::kGte},
        {"lt", Correlation::Op::kLt}, {"lte", Correlation::Op::kLte},
        {"eq", Correlation::Op::kEq}, {"neq", Correlation::Op::kNeq}};
    for (const auto& kv : cond) {
      const std::string k = scalar_or_empty(kv.first);
      if (k == "field") {
        if (kv.second.IsScalar()) {
          c.fields = {scalar_or_empty(kv.second)};
        } else if (kv.second.IsSequence() && kv.second.size() > 0) {
          for (const auto& f : kv.second) {
            if (!f.IsScalar() || scalar_or_empty(f).empty())
              return ctx.error("correlation: each entry of 'condition.field' must be a field name");
            c.fields.push_back(scalar_or_empty(f));
          }
        } else {
          return ctx.error("correlation: 'condition.field' must be a field name or a list of them");
        }
        if (std::any_of(c.fields.begin(), c.fields.end(), [](const auto& f) { return f.empty(); }))
          return ctx.error("correlation: 'condition.field' is empty");
        continue;
      }
      const std::string v = scalar_or_empty(kv.second);
      if (k == "percentile") {
        int p = -1;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
        if (c.type != Correlation::Type::kValuePercentile)
          return ctx.error(
              "correlation: 'condition.percentile' is only meaningful for "
              "value_percentile");
        if (ec != std::errc() || end != v.data() + v.size() || p < 0 || p > 100)
          return ctx.error(
              "correlation: 'condition.percentile' must be an integer from 0 to 100, "
              "not '" +
              v + "'");
        c.percentile = p;
        continue;
      }
      auto op = ops.find(k);
      if (op == ops.end()) return ctx.error("correlation: unknown condition operator '" + k + "'");
      if (c.is_metric()) {  // a metric is compared with any finite number
        double d = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
        if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d))
          return ctx.error("correlation: condition '" + k + "' needs a number, not '" + v + "'");
        c.condition.push_back({op->second, d});
        continue;
      }
      int64_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n < 0) {
        return ctx.error("correlation: condition '" + k + "' needs a non-negative integer, not '" +
                         v + "'");
      }
      c.condition.push_back({op->second, static_cast<double>(n)});
    }
    // One bound, or a range: a lower bound (gt, gte) and an upper one (lt, lte), ANDed.
    using Op = Correlation::Op;
    auto lower = [](Op o) { return o == Op::kGt || o == Op::kGte; };
    auto upper = [](Op o) { return o == Op::kLt || o == Op::kLte; };
    const auto& b = c.condition;
    const bool range =
        b.size() == 2 && ((lower(b[0].op) && upper(b[1].op)) || (upper(b[0].op) && lower(b[1].op)));
    if (b.empty() || (b.size() > 1 && !range))
      return ctx.error(
          "correlation: 'condition' needs one of gt, gte, lt, lte, eq, neq, or a "
          "range of gt/gte with lt/lte");
  } else if (!temporal) {
    return ctx.error("correlation: an " + type + " correlation needs a 'condition'");
  }
  if (c.reads_values() && c.fields.empty()) {
    return ctx.error("correlation: " + type + " needs its field in 'condition.field'");
  }
  if (!c.reads_values() && !c.fields.empty()) {
    return ctx.error(
        "correlation: 'condition.field' is only meaningful for value_count and the "
        "value_* metrics");
  }
  if (c.is_metric() && c.fields.size() != 1) {
    return ctx.error("correlation: " + type + " takes one numeric field in 'condition.field'");
  }
  if (c.type == Correlation::Type::kValuePercentile && c.percentile < 0) {
    return ctx.error("correlation: value_percentile needs 'condition.percentile' (0 to 100)");
  }
  if (const YAML::Node aliases = node["aliases"]) {
    if (!aliases.IsMap()) return ctx.error("correlation: 'aliases' must be a map");
    for (const auto& kv : aliases) {
      auto& [alias, per_rule] = c.aliases.emplace_back();
      alias = scalar_or_empty(kv.first);
      if (!kv.second.IsMap())
        return ctx.error("correlation: alias '" + alias + "' must map rule names to fields");
      for (const auto& r : kv.second)
        per_rule.emplace_back(scalar_or_empty(r.first), scalar_or_empty(r.second));
    }
  }
  const YAML::Node gen = node["generate"] ? node["generate"] : doc["generate"];
  if (gen) {
    const std::string g = scalar_or_empty(gen);
    if (g != "true" && g != "false")
      return ctx.error("correlation: 'generate' must be true or false");
    c.generate = g == "true";
  }
  return Status::ok();
}

}  // namespace vigil::match::detail

namespace vigil::match {

bool Correlation::holds(double v) const {
  for (const Bound& b : condition) {
    bool ok = false;
    switch (b.op) {
      case Op::kGt:
        ok = v > b.value;
        break;
      case Op::kGte:
        ok = v >= b.value;
        break;
      case Op::kLt:
        ok = v < b.value;
        break;
      case Op::kLte:
        ok = v <= b.value;
        break;
      case Op::kEq:
        ok = v == b.value;
        break;
      case Op::kNeq:
        ok = v != b.value;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

bool Correlation::judged_at_window_end() const {
  auto all = [&](auto pred) { return std::all_of(condition.begin(), condition.end(), pred); };
  auto lower = [](const Bound& b) { return b.op == Op::kGt || b.op == Op::kGte; };
  auto upper = [](const Bound& b) { return b.op == Op::kLt || b.op == Op::kLte; };
  if (type == Type::kValueMax) return !all(lower);  // only grows as matches come
  if (type == Type::kValueMin) return !all(upper);  // only falls
  if (is_metric()) return true;
  if (expression) {  // a `not` can be broken by a later match
    std::function<bool(const CondNode&)> has_not = [&](const CondNode& n) {
      return n.kind == CondNode::Kind::kNot ||
             std::any_of(n.children.begin(), n.children.end(), has_not);
    };
    return has_not(*expression);
  }
  return !all(lower);
}

std::string_view correlation_type_name(Correlation::Type t) {
  for (const auto& [name, type] : kCorrelationTypes) {
    if (type == t) return name;
  }
  return "?";
}

}  // namespace vigil::match
