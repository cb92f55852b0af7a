#include "vigil/ingest/correlation_hit.h"

#include <simdjson.h>

namespace vigil::ingest {

namespace {

// A JSON string (the values are UTF-8, checked when their event was parsed). Written by hand:
// RapidJSON's writer starts its stacks from null pointers, which clang's UBSan reports.
void put_string(std::string& out, std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace

std::string encode_correlation_hit(const CorrelationHitRecord& r) {
  std::string out;
  out.reserve(160 + r.group.size() + r.value.size());
  out += R"({"v":1,"id":)";
  put_string(out, r.id);
  out += R"(,"correlation":)";
  put_string(out, r.correlation);
  out += R"(,"rule":)";
  put_string(out, r.rule);
  out += R"(,"base":)";
  out += std::to_string(r.base);
  out += R"(,"group":[)";
  const std::string_view g = r.group;
  for (size_t from = 0;;) {
    const size_t to = g.find('\x1f', from);
    put_string(out, g.substr(from, to == std::string_view::npos ? g.npos : to - from));
    if (to == std::string_view::npos) break;
    out += ',';
    from = to + 1;
  }
  out += R"(],"value":)";
  put_string(out, r.value);
  out += R"(,"time":)";
  out += std::to_string(r.time);
  out += R"(,"ref":)";
  put_string(out, r.ref);
  out += '}';
  return out;
}

Expected<CorrelationHitRecord> decode_correlation_hit(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size(), true).get(doc))
    return Status::invalid("correlation hit is not JSON");
  simdjson::dom::object o;
  if (doc.get_object().get(o)) return Status::invalid("correlation hit is not a JSON object");
  int64_t version = 0;
  if (o["v"].get_int64().get(version) || version != 1)
    return Status::invalid("correlation hit of an unknown version (this replica reads v 1)");
  CorrelationHitRecord r;
  auto text = [&](const char* key, std::string& out, bool required) -> bool {
    std::string_view v;
    auto e = o[key];
    if (e.error() == simdjson::NO_SUCH_FIELD) return !required;
    if (e.get_string().get(v)) return false;
    out.assign(v);
    return true;
  };
  if (!text("id", r.id, true) || r.id.size() != 32)
    return Status::invalid("correlation hit without a valid 'id'");
  if (!text("correlation", r.correlation, true) || r.correlation.empty())
    return Status::invalid("correlation hit without 'correlation'");
  if (!text("rule", r.rule, true) || r.rule.empty())
    return Status::invalid("correlation hit without 'rule'");
  if (!text("value", r.value, false) || !text("ref", r.ref, false))
    return Status::invalid("correlation hit with a 'value' or 'ref' that is not a string");
  uint64_t base = 0;
  if (o["base"].get_uint64().get(base) || base > UINT32_MAX)
    return Status::invalid("correlation hit without a valid 'base'");
  r.base = static_cast<uint32_t>(base);
  if (o["time"].get_int64().get(r.time)) return Status::invalid("correlation hit without 'time'");
  simdjson::dom::array group;
  if (o["group"].get_array().get(group))
    return Status::invalid("correlation hit without a 'group' array");
  bool first = true;
  for (simdjson::dom::element v : group) {
    std::string_view s;
    if (v.get_string().get(s)) return Status::invalid("correlation hit group value not a string");
    if (!first) r.group += '\x1f';
    r.group.append(s);
    first = false;
  }
  if (first) return Status::invalid("correlation hit with an empty 'group'");
  return r;
}

std::string correlation_hit_key(std::string_view correlation, std::string_view group) {
  std::string k(correlation);
  k += '\x1f';
  k += group;
  return k;
}

}  // namespace vigil::ingest
