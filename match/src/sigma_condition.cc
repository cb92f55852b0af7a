// The condition grammar: `and`, `or`, `not`, parentheses, `1 of`, `all of` with globs and
// `them`, over the named searches.

#include <cctype>

#include "sigma_internal.h"

namespace vigil::match::detail {
namespace {

struct Token {
  enum class Kind { kWord, kLParen, kRParen, kEnd } kind;
  std::string text;
};

Expected<std::vector<Token>> tokenize(ParseContext& ctx, const std::string& cond) {
  std::vector<Token> out;
  for (size_t i = 0; i < cond.size();) {
    const char c = cond[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(') {
      out.push_back({Token::Kind::kLParen, "("});
      ++i;
    } else if (c == ')') {
      out.push_back({Token::Kind::kRParen, ")"});
      ++i;
    } else if (c == '|') {
      return ctx.unsupported(
          "condition '" + cond +
          "': aggregation expressions ('|') are deprecated; use a correlation rule");
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '*' || c == '?' ||
               c == '-' || c == '.') {
      size_t j = i;
      while (j < cond.size() &&
             (std::isalnum(static_cast<unsigned char>(cond[j])) || cond[j] == '_' ||
              cond[j] == '*' || cond[j] == '?' || cond[j] == '-' || cond[j] == '.')) {
        ++j;
      }
      out.push_back({Token::Kind::kWord, cond.substr(i, j - i)});
      i = j;
    } else {
      return ctx.error("condition: unexpected character '" + std::string(1, c) + "' in '" + cond +
                       "'");
    }
  }
  out.push_back({Token::Kind::kEnd, ""});
  return out;
}

bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class ConditionParser {
 public:
  ConditionParser(ParseContext& ctx, const std::map<std::string, CondNode>& searches,
                  std::vector<Token> tokens, const std::string& text)
      : ctx_(ctx), searches_(searches), tokens_(std::move(tokens)), text_(text) {}

  Expected<CondNode> parse() {
    auto e = parse_or();
    if (!e) return e;
    if (peek().kind != Token::Kind::kEnd)
      return ctx_.error("condition '" + text_ + "': unexpected '" + peek().text + "'");
    return e;
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }
  bool is_word(const char* w) const {
    return peek().kind == Token::Kind::kWord && lower(peek().text) == w;
  }

  Expected<CondNode> parse_or() {
    auto left = parse_and();
    if (!left) return left;
    if (!is_word("or")) return left;
    CondNode n = make_node(CondNode::Kind::kOr);
    n.children.push_back(std::move(*left));
    while (is_word("or")) {
      ++pos_;
      auto right = parse_and();
      if (!right) return right;
      n.children.push_back(std::move(*right));
    }
    return n;
  }

  Expected<CondNode> parse_and() {
    auto left = parse_not();
    if (!left) return left;
    if (!is_word("and")) return left;
    CondNode n = make_node(CondNode::Kind::kAnd);
    n.children.push_back(std::move(*left));
    while (is_word("and")) {
      ++pos_;
      auto right = parse_not();
      if (!right) return right;
      n.children.push_back(std::move(*right));
    }
    return n;
  }

  // Parentheses and `not` nest; a hostile condition must not exhaust the stack of this
  // parser, of the compiler's passes or of the evaluation, all recursive.
  static constexpr int kMaxDepth = 64;
  struct Nested {
    explicit Nested(int& d) : depth(++d) {}
    ~Nested() { --depth; }
    bool too_deep() const { return depth > kMaxDepth; }
    int& depth;
  };
  Expected<CondNode> too_deep_error() {
    return ctx_.error("condition '" + text_ + "': nested deeper than " + std::to_string(kMaxDepth));
  }

  Expected<CondNode> parse_not() {
    if (is_word("not")) {
      ++pos_;
      Nested nested(depth_);
      if (nested.too_deep()) return too_deep_error();
      auto inner = parse_not();
      if (!inner) return inner;
      CondNode n = make_node(CondNode::Kind::kNot);
      n.children.push_back(std::move(*inner));
      return n;
    }
    return parse_primary();
  }

  Expected<CondNode> parse_primary() {
    const Token& t = peek();
    if (t.kind == Token::Kind::kLParen) {
      ++pos_;
      Nested nested(depth_);
      if (nested.too_deep()) return too_deep_error();
      auto inner = parse_or();
      if (!inner) return inner;
      if (peek().kind != Token::Kind::kRParen)
        return ctx_.error("condition '" + text_ + "': missing ')'");
      ++pos_;
      return inner;
    }
    if (t.kind != Token::Kind::kWord) {
      return ctx_.error("condition '" + text_ + "': expected an identifier, got '" + t.text + "'");
    }
    const std::string word = t.text;
    const std::string lw = lower(word);
    if (lw == "and" || lw == "or" || lw == "of" || lw == "them") {
      return ctx_.error("condition '" + text_ + "': unexpected '" + word + "'");
    }
    // quantifier: "1 of x*", "all of them", "N of ..."
    if (tokens_[pos_ + 1].kind == Token::Kind::kWord && lower(tokens_[pos_ + 1].text) == "of") {
      pos_ += 2;
      const Token& target = peek();
      if (target.kind != Token::Kind::kWord)
        return ctx_.error("condition '" + text_ + "': expected a pattern after 'of'");
      ++pos_;
      return quantifier(lw, target.text);
    }
    ++pos_;
    auto it = searches_.find(word);
    if (it == searches_.end()) {
      return ctx_.error("condition '" + text_ + "': unknown search identifier '" + word + "'");
    }
    return it->second;
  }

  Expected<CondNode> quantifier(const std::string& q, const std::string& target) {
    std::vector<const CondNode*> matched;
    const bool them = lower(target) == "them";
    for (const auto& [name, node] : searches_) {
      if (them ? name.rfind('_', 0) != 0 : glob_match(target, name)) matched.push_back(&node);
    }
    if (matched.empty()) {
      return ctx_.error("condition '" + text_ + "': '" + target + "' matches no search identifier");
    }
    CondNode n;
    if (q == "all") {
      n = make_node(CondNode::Kind::kAnd);
    } else if (q == "any" || q == "1") {
      n = make_node(CondNode::Kind::kOr);
    } else {
      uint32_t k = 0;
      for (char c : q) {
        if (c < '0' || c > '9' || k > 100000)
          return ctx_.error("condition '" + text_ + "': bad quantifier '" + q + "'");
        k = k * 10 + static_cast<uint32_t>(c - '0');
      }
      if (k == 0) return ctx_.error("condition '" + text_ + "': quantifier must be at least 1");
      n = make_node(CondNode::Kind::kAtLeast);
      n.index = k;
    }
    for (const CondNode* m : matched) n.children.push_back(*m);
    if (n.children.size() == 1 && n.kind != CondNode::Kind::kAtLeast)
      return std::move(n.children[0]);
    return n;
  }

  ParseContext& ctx_;
  const std::map<std::string, CondNode>& searches_;
  std::vector<Token> tokens_;
  const std::string& text_;
  size_t pos_ = 0;
  int depth_ = 0;  // of parentheses and `not` around the current position
};

// Counts the documents of a YAML stream without building them. Debian 12's yaml-cpp 0.7
// loops forever in YAML::LoadAll on input such as ",h" (fixed upstream in jbeder/yaml-cpp
// PR #1319): the parser keeps reporting a document holding one bare null. So documents are
// counted here, stopping at the second, and one that is only a root null is not counted.

}  // namespace

Expected<CondNode> parse_condition(ParseContext& ctx,
                                   const std::map<std::string, CondNode>& searches,
                                   const std::string& text) {
  auto tokens = tokenize(ctx, text);
  if (!tokens) return tokens.status();
  return ConditionParser(ctx, searches, std::move(*tokens), text).parse();
}

}  // namespace vigil::match::detail
