// Requests, responses and the router: routes by method and path template, their access
// (open, reader, admin) checked against the bearer tokens.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <boost/beast/http/status.hpp>
#include <cctype>

#include "vigil/api/http.h"
#include "vigil/core/utf8.h"

namespace vigil::api {

namespace http = boost::beast::http;

std::optional<std::string_view> HttpRequest::param(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view HttpRequest::path_param(std::string_view name) const {
  for (const auto& [k, v] : path_params) {
    if (k == name) return v;
  }
  return {};
}

HttpResponse HttpResponse::json(std::string body, int status) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::problem(int status, std::string_view detail) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  w.StartObject();
  w.Key("type");
  w.String("about:blank");
  w.Key("title");
  w.String(reason.data(), static_cast<rapidjson::SizeType>(reason.size()));
  w.Key("status");
  w.Int(status);
  w.Key("detail");
  // The detail often quotes the request (a path, a parameter): never its invalid bytes.
  const std::string safe = utf8::repaired(detail);
  w.String(safe.data(), static_cast<rapidjson::SizeType>(safe.size()));
  w.EndObject();
  HttpResponse r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body.assign(sb.GetString(), sb.GetSize());
  return r;
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi << 4 | lo);
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    auto k = percent_decode(part.substr(0, eq), true);
    auto v = percent_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1),
                            true);
    if (!k || !v) return std::nullopt;
    out.emplace_back(std::move(*k), std::move(*v));
  }
  return out;
}

namespace {

std::vector<std::string> split_segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const size_t j = path.find('/', i);
    out.emplace_back(path.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j;
  }
  return out;
}

}  // namespace

void Router::add(std::string method, std::string path_template, Handler handler, Access access,
                 Cost cost) {
  auto segments = split_segments(path_template);
  routes_.push_back({std::move(method), std::move(path_template), std::move(segments),
                     std::move(handler), access, cost});
}

Router::Resolved Router::resolve(const HttpRequest& request) const {
  const auto segments = split_segments(request.path);
  Resolved out;
  for (size_t k = 0; k < routes_.size(); ++k) {
    const Route& r = routes_[k];
    if (r.segments.size() != segments.size()) continue;
    out.params.clear();
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const std::string& t = r.segments[i];
      if (t.size() > 2 && t.front() == '{' && t.back() == '}') {
        out.params.emplace_back(t.substr(1, t.size() - 2), segments[i]);
      } else {
        ok = t == segments[i];
      }
    }
    if (!ok) continue;
    out.path_known = true;
    if (r.method != request.method && !(request.method == "HEAD" && r.method == "GET")) continue;
    out.index = k;
    out.cost = r.cost;
    return out;
  }
  out.params.clear();
  return out;
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back({r.method, r.path_template, r.access});
  return out;
}

namespace {

// Who made an authorized request, for audit logs: the role and a fingerprint of the token.
std::string principal_of(std::string_view authorization, const TokenSet& tokens) {
  std::string_view h =
      authorization.substr(std::min(authorization.size(), authorization.find(' ') + 1));
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  const auto role = tokens.role_of(h);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s token %08zx",
                role ? std::string(role_name(*role)).c_str() : "unknown",
                std::hash<std::string_view>{}(h)&0xffffffffu);
  return buf;
}

}  // namespace

std::optional<HttpResponse> Router::authorize(const HttpRequest& request, Access access) const {
  if (access == Access::kOpen) return std::nullopt;
  auto unauthorized = [](std::string_view detail, bool bad_token) {
    HttpResponse r = HttpResponse::problem(401, detail);
    r.headers.emplace_back(
        "WWW-Authenticate",
        bad_token ? R"(Bearer realm="vigil", error="invalid_token")" : R"(Bearer realm="vigil")");
    return r;
  };
  std::string_view h = request.authorization;
  if (h.empty())
    return unauthorized("this route needs a bearer token: Authorization: Bearer <token>", false);
  const size_t sp = h.find(' ');
  std::string scheme(h.substr(0, sp));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer" || sp == std::string_view::npos) {
    return unauthorized("the Authorization header must be 'Bearer <token>'", false);
  }
  h.remove_prefix(sp + 1);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  const std::optional<Role> role = tokens_ ? tokens_->role_of(h) : std::nullopt;
  if (!role) return unauthorized("the bearer token is not valid", true);
  if (access == Access::kAdmin && *role != Role::kAdmin) {
    return HttpResponse::problem(
        403, "this route needs an admin token; the token given has the reader role");
  }
  return std::nullopt;
}

std::optional<HttpResponse> Router::admit(const HttpRequest& request,
                                          const Resolved& resolved) const {
  if (resolved.index == SIZE_MAX) {
    if (resolved.path_known)
      return HttpResponse::problem(
          405, "method " + request.method + " is not allowed on " + request.path);
    return HttpResponse::problem(404, "no route for " + request.path);
  }
  return authorize(request, routes_[resolved.index].access);
}

HttpResponse Router::route(HttpRequest& request, Resolved resolved) const {
  if (resolved.index == SIZE_MAX) {
    if (resolved.path_known)
      return HttpResponse::problem(
          405, "method " + request.method + " is not allowed on " + request.path);
    return HttpResponse::problem(404, "no route for " + request.path);
  }
  const Route& r = routes_[resolved.index];
  if (auto denied = authorize(request, r.access)) return std::move(*denied);
  if (r.access != Access::kOpen) request.principal = principal_of(request.authorization, *tokens_);
  request.path_params = std::move(resolved.params);
  return r.handler(request);
}

}  // namespace vigil::api
