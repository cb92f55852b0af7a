#pragma once
// Page cursors sealed to the route and query that made them (private to api/):
// "<store position>.<MAC>", the MAC (HMAC-SHA256, the first 128 bits, hex) over the route,
// the request's other parameters as given (sorted; limit and view may change between pages)
// and the position, under a key the server holds. A cursor of another route or query, or one
// made up, does not verify.

#include <string>
#include <string_view>

#include "vigil/api/http.h"

namespace vigil::api {

// What a cursor is bound to: the route and the request's parameters but cursor, limit, view.
std::string cursor_binding(std::string_view route, const HttpRequest& req);
// The hex MAC of `position` under `key` for `binding`.
std::string cursor_mac(const std::string& key, std::string_view binding, std::string_view position);
// "<position>.<mac>", or empty for an empty position (no next page).
std::string seal_cursor(const std::string& key, std::string_view binding,
                        const std::string& position);

}  // namespace vigil::api
