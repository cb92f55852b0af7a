#include "vigil/core/json_check.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace vigil {

namespace {

// Accepts every value and refuses (stops the parse) past the depth bound.
struct DepthBound : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthBound> {
  explicit DepthBound(size_t max) : max_depth(max) {}
  bool StartObject() { return ++depth <= max_depth; }
  bool EndObject(rapidjson::SizeType) { return --depth, true; }
  bool StartArray() { return ++depth <= max_depth; }
  bool EndArray(rapidjson::SizeType) { return --depth, true; }
  bool Default() { return true; }
  size_t max_depth;
  size_t depth = 0;
};

}  // namespace

bool is_valid_json(std::string_view text, size_t max_depth) {
  rapidjson::Reader reader;
  DepthBound handler(max_depth);
  rapidjson::MemoryStream ms(text.data(), text.size());
  // Iterative: the parser keeps its own stack instead of recursing per level.
  constexpr unsigned kFlags =
      rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
  return !reader.Parse<kFlags>(ms, handler).IsError();
}

}  // namespace vigil
