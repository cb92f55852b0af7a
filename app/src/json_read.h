#pragma once
// How the CLI reads the JSON the server (or a file) gives it: checked first, without
// recursion, for validity and a bounded depth, then parsed iteratively. A hostile or
// broken answer (100,000 nested objects) is refused instead of exhausting the stack or
// the memory of the CLI, and what the CLI then prints (recursively) is bounded too.

#include <rapidjson/document.h>

#include <string>

#include "vigil/core/json_check.h"

namespace vigil::app {

// Parses `text` into `d`; false if it is not valid JSON nested at most kMaxJsonDepth deep.
inline bool parse_bounded_json(rapidjson::Document& d, const std::string& text) {
  if (!is_valid_json(text)) {
    d.SetNull();
    return false;
  }
  d.Parse<rapidjson::kParseIterativeFlag>(text.c_str(), text.size());
  return !d.HasParseError();
}

}  // namespace vigil::app
