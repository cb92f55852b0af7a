#pragma once
// Writing small JSON documents with RapidJSON: the rollout's records and API documents.
// Private to vigil_ingest.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace vigil::ingest {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// The document `f(writer)` writes.
template <typename F>
std::string write_json(F&& f) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  f(w);
  return std::string(sb.GetString(), sb.GetSize());
}

inline void kv(JsonWriter& w, const char* k, std::string_view v) {
  w.Key(k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}
inline void kv(JsonWriter& w, const char* k, uint64_t v) {
  w.Key(k);
  w.Uint64(v);
}

}  // namespace vigil::ingest
