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

// Members of an object the server sent, read without trusting their presence or type: the
// value, or ""/0/false/an empty array when the member is absent or of another type.
inline std::string json_str(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}
inline unsigned long long json_u64(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsUint64() ? v[key].GetUint64() : 0;
}
inline double json_double(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsNumber() ? v[key].GetDouble() : 0;
}
inline bool json_bool(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsBool() && v[key].GetBool();
}
inline rapidjson::Value::ConstArray json_array(const rapidjson::Value& v, const char* key) {
  static const rapidjson::Value empty(rapidjson::kArrayType);
  return v.IsObject() && v.HasMember(key) && v[key].IsArray() ? v[key].GetArray()
                                                              : empty.GetArray();
}

}  // namespace vigil::app
