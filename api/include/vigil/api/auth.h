#pragma once
// API authentication: bearer tokens, each with a role.
//
// A token file (a Kubernetes Secret mounted as a file, say) holds one token per line:
//     # comment
//     admin  6f1c0e...        # queries, checkpoints, rule content
//     reader 9a44b2...        # queries only
// VIGIL_API_TOKENS holds the same as a list: "admin:6f1c...,reader:9a44...".
// Tokens are at least 16 characters of printable ASCII without spaces. They are compared
// in constant time and never logged.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vigil/core/status.h"

namespace vigil::api {

enum class Role : uint8_t { kReader, kAdmin };

// What a route requires: nothing, a reader (or admin) token, an admin token.
enum class Access : uint8_t { kOpen, kReader, kAdmin };

std::string_view role_name(Role role);

class TokenSet {
 public:
  static constexpr size_t kMinTokenLength = 16;

  // The token file format above; `origin` names it in errors (never the token itself).
  static Expected<TokenSet> parse_file_text(std::string_view text, std::string_view origin);
  // "role:token,role:token".
  static Expected<TokenSet> parse_list(std::string_view list, std::string_view origin);

  Status add(Role role, std::string token, std::string_view origin);
  // The role of a presented token, comparing it with every known token in constant time
  // (no early exit on a match or on the first differing byte).
  std::optional<Role> role_of(std::string_view presented) const;
  bool empty() const { return tokens_.empty(); }
  size_t size() const { return tokens_.size(); }

 private:
  std::vector<std::pair<Role, std::string>> tokens_;
};

// 32 random bytes from the OS, hex.
std::string generate_token();

// The admin token kept at `path` (mode 0600), created with a new random token when the
// file does not exist. `created` tells whether it was made now.
Expected<std::string> load_or_create_token_file(const std::string& path, bool* created = nullptr);

}  // namespace vigil::api
