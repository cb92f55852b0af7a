#include "vigil/api/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace vigil::api {
namespace {

bool valid_token_chars(std::string_view t) {
  for (const char c : t) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<Role> parse_role(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "reader") return Role::kReader;
  return std::nullopt;
}

// Equal in time that depends on the lengths only: every byte of `known` is visited.
bool constant_time_equal(std::string_view presented, std::string_view known) {
  unsigned diff = presented.size() == known.size() ? 0u : 1u;
  for (size_t i = 0; i < known.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= p ^ static_cast<unsigned char>(known[i]);
  }
  return diff == 0;
}

}  // namespace

std::string_view role_name(Role role) { return role == Role::kAdmin ? "admin" : "reader"; }

Status TokenSet::add(Role role, std::string token, std::string_view origin) {
  if (token.size() < kMinTokenLength) {
    return Status::invalid(std::string(origin) + ": a token is shorter than " +
                           std::to_string(kMinTokenLength) + " characters");
  }
  if (!valid_token_chars(token))
    return Status::invalid(std::string(origin) +
                           ": a token has a character that is not printable ASCII");
  for (const auto& [r, t] : tokens_) {
    if (t == token) return Status::invalid(std::string(origin) + ": a token is listed twice");
  }
  tokens_.emplace_back(role, std::move(token));
  return Status::ok();
}

Expected<TokenSet> TokenSet::parse_file_text(std::string_view text, std::string_view origin) {
  TokenSet set;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const size_t sp = line.find_first_of(" \t");
    const std::string where = std::string(origin) + ":" + std::to_string(line_no);
    if (sp == std::string_view::npos) return Status::invalid(where + ": expected '<role> <token>'");
    const auto role = parse_role(line.substr(0, sp));
    if (!role)
      return Status::invalid(where + ": unknown role '" + std::string(line.substr(0, sp)) +
                             "' (admin or reader)");
    if (auto s = set.add(*role, std::string(trim(line.substr(sp))), where); !s) return s;
  }
  return set;
}

Expected<TokenSet> TokenSet::parse_list(std::string_view list, std::string_view origin) {
  TokenSet set;
  size_t index = 0;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    ++index;
    if (item.empty()) continue;
    const std::string where = std::string(origin) + " item " + std::to_string(index);
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos) return Status::invalid(where + ": expected 'role:token'");
    const auto role = parse_role(item.substr(0, colon));
    if (!role)
      return Status::invalid(where + ": unknown role '" + std::string(item.substr(0, colon)) +
                             "' (admin or reader)");
    if (auto s = set.add(*role, std::string(item.substr(colon + 1)), where); !s) return s;
  }
  return set;
}

std::optional<Role> TokenSet::role_of(std::string_view presented) const {
  bool reader = false, admin = false;
  for (const auto& [role, token] : tokens_) {
    const bool match = constant_time_equal(presented, token);
    reader |= match && role == Role::kReader;
    admin |= match && role == Role::kAdmin;
  }
  if (admin) return Role::kAdmin;
  if (reader) return Role::kReader;
  return std::nullopt;
}

std::string generate_token() {
  std::random_device rd;  // getrandom(2) / /dev/urandom on Linux
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    const uint32_t v = rd();
    for (int b = 0; b < 4; ++b) {
      const unsigned byte = (v >> (8 * b)) & 0xff;
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

Expected<std::string> load_or_create_token_file(const std::string& path, bool* created) {
  if (created) *created = false;
  std::ifstream in(path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token(trim(ss.str()));
    if (token.size() < TokenSet::kMinTokenLength || !valid_token_chars(token)) {
      return Status::invalid("token file '" + path +
                             "' does not hold a valid token; delete it to have a new one made");
    }
    return token;
  }
  const std::string token = generate_token();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status::io_error("cannot create token file '" + path + "': " + std::strerror(errno));
  const std::string line = token + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Status::io_error("cannot write token file '" + path + "'");
  }
  if (created) *created = true;
  return token;
}

}  // namespace vigil::api
