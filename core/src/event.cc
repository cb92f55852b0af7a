#include "vigil/core/event.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace vigil {

namespace od = simdjson::ondemand;

std::string_view parse_error_name(ParseError e) {
  switch (e) {
    case ParseError::kNone:
      return "none";
    case ParseError::kTooLarge:
      return "too_large";
    case ParseError::kInvalidUtf8:
      return "invalid_utf8";
    case ParseError::kMalformedJson:
      return "malformed_json";
    case ParseError::kNotAnObject:
      return "not_an_object";
    case ParseError::kTooDeep:
      return "too_deep";
    case ParseError::kDuplicateKey:
      return "duplicate_key";
  }
  return "unknown";
}

FieldSet::FieldSet() : edges_(16) { nodes_.emplace_back(); }

namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\' && i + 1 < path.size() && path[i + 1] == '.') {
      parts.back() += '.';
      ++i;
    } else if (path[i] == '.') {
      parts.emplace_back();
    } else {
      parts.back() += path[i];
    }
  }
  return parts;
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Whether a document that is not an object starts like another JSON value (an array, a
// string, a number or a literal), as opposed to text that is not JSON at all.
// Whether `raw` nests objects and arrays deeper than `max_depth` (the root object is depth 1).
// Nearly every event has fewer opening brackets than the limit and is answered by counting
// them (SSE2, 16 bytes a step); only the others are walked byte by byte, strings skipped.
bool nests_deeper_than(std::string_view raw, size_t max_depth) {
  size_t brackets = 0, i = 0;
#if defined(__SSE2__)
  const __m128i curly = _mm_set1_epi8('{'), square = _mm_set1_epi8('[');
  while (i + 16 <= raw.size() && brackets <= max_depth) {
    // Byte counters: up to 255 blocks before they are summed.
    __m128i counts = _mm_setzero_si128();
    const size_t blocks = std::min<size_t>((raw.size() - i) / 16, 255);
    for (size_t b = 0; b < blocks; ++b, i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(raw.data() + i));
      counts =
          _mm_sub_epi8(counts, _mm_or_si128(_mm_cmpeq_epi8(v, curly), _mm_cmpeq_epi8(v, square)));
    }
    const __m128i sums = _mm_sad_epu8(counts, _mm_setzero_si128());
    brackets += static_cast<size_t>(_mm_cvtsi128_si32(sums)) +
                static_cast<size_t>(_mm_extract_epi16(sums, 4));
  }
#endif
  for (; i < raw.size(); ++i) brackets += raw[i] == '{' || raw[i] == '[';
  if (brackets <= max_depth) return false;
  size_t depth = 0;
  bool in_string = false;
  for (size_t k = 0; k < raw.size(); ++k) {
    const char c = raw[k];
    if (in_string) {
      if (c == '\\')
        ++k;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

bool looks_like_json_value(std::string_view raw) {
  size_t i = 0;
  while (i < raw.size() && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r'))
    ++i;
  if (i == raw.size()) return false;
  const char c = raw[i];
  if (c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9')) return true;
  const std::string_view rest = trim_right(raw.substr(i));
  return rest == "true" || rest == "false" || rest == "null";
}

// The first and last bytes of a key (up to 8 each, overlapping when it is short), read
// without going past it: object keys are short, so these two words nearly always tell
// keys apart, and loading them costs less than hashing every byte.
struct KeyEnds {
  uint64_t head = 0, tail = 0;
};
KeyEnds key_ends(std::string_view key) {
  KeyEnds e;
  const char* p = key.data();
  const size_t n = key.size();
  if (n >= 8) {
    std::memcpy(&e.head, p, 8);
    std::memcpy(&e.tail, p + n - 8, 8);
  } else if (n >= 4) {
    uint32_t h, t;
    std::memcpy(&h, p, 4);
    std::memcpy(&t, p + n - 4, 4);
    e.head = h;
    e.tail = t;
  } else if (n > 0) {
    e.head = static_cast<unsigned char>(p[0]) | static_cast<unsigned char>(p[n / 2]) << 8 |
             static_cast<unsigned char>(p[n - 1]) << 16;
  }
  return e;
}

bool same_key(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.size() > 16) return std::memcmp(a.data(), b.data(), a.size()) == 0;
  const KeyEnds x = key_ends(a), y = key_ends(b);  // with the length, these are all the bytes
  return x.head == y.head && x.tail == y.tail;
}

// The length of the JSON array or object starting at `p` (stage 1 checked its structure).
size_t json_value_length(const char* p, const char* end) {
  size_t depth = 0;
  for (const char* q = p; q < end; ++q) {
    if (*q == '"') {
      for (++q; q < end && *q != '"'; ++q) {
        if (*q == '\\') ++q;
      }
    } else if (*q == '[' || *q == '{') {
      ++depth;
    } else if (*q == ']' || *q == '}') {
      if (--depth == 0) return static_cast<size_t>(q + 1 - p);
    }
  }
  return static_cast<size_t>(end - p);
}

// The length of the JSON string whose text starts at `k` (after its opening quote), up to
// its closing quote; npos if a backslash comes first (the string has escapes) or neither
// comes within `limit` bytes. Reads 16 bytes at a time: up to 15 bytes past `limit`, which
// the parser's padding makes readable.
size_t plain_string_length(const char* k, size_t limit) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
  for (size_t i = 0; i < limit; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i));
    const auto hits = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash))));
    if (hits == 0) continue;
    const size_t at = i + static_cast<size_t>(__builtin_ctz(hits));
    return at < limit && k[at] == '"' ? at : std::string_view::npos;
  }
  return std::string_view::npos;
#else
  const auto* quote = static_cast<const char*>(std::memchr(k, '"', limit));
  if (quote == nullptr || std::memchr(k, '\\', static_cast<size_t>(quote - k)) != nullptr) {
    return std::string_view::npos;
  }
  return static_cast<size_t>(quote - k);
#endif
}

// What escapes the text of a JSON string holds, k[0, n) between its quotes (stage 1 checked
// the string's bounds and its UTF-8): none; only escapes of two characters (\" \\ \/ \b \f \n
// \r \t), which Event::field() undoes when the value is read; or others (a \u escape, which
// simdjson reads at the parse, or an invalid one, which it refuses).
enum class Escapes { kNone, kShort, kOther };

#if defined(__AVX2__)
// 64 bytes at a time, reading up to 63 bytes past n (the parser's padding). Which characters
// an escape covers follows simdjson's own scanner (json_string_scanner::find_escaped): a run of
// backslashes escapes every other character, whatever run the last block ended in.
Escapes classify_escapes(const char* k, size_t n) {
  const __m256i backslash = _mm256_set1_epi8('\\');
  auto mask = [](__m256i lo, __m256i hi) {
    return static_cast<uint32_t>(_mm256_movemask_epi8(lo)) |
           static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(hi))) << 32;
  };
  constexpr uint64_t kEvenBits = 0x5555555555555555ULL;
  uint64_t prev_escaped = 0;  // the next block's first character is escaped
  bool any = false;
  for (size_t i = 0; i < n; i += 64) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + i));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + i + 32));
    uint64_t bs = mask(_mm256_cmpeq_epi8(lo, backslash), _mm256_cmpeq_epi8(hi, backslash));
    if (n - i < 64) bs &= (uint64_t{1} << (n - i)) - 1;
    if (bs == 0 && prev_escaped == 0) continue;
    any = true;
    bs &= ~prev_escaped;
    const uint64_t follows_escape = bs << 1 | prev_escaped;
    const uint64_t odd_starts = bs & ~kEvenBits & ~follows_escape;
    uint64_t even_starts;
    prev_escaped = __builtin_add_overflow(odd_starts, bs, &even_starts) ? 1 : 0;
    const uint64_t escaped = (kEvenBits ^ (even_starts << 1)) & follows_escape;
    if (escaped == 0) continue;
    __m256i ok_lo = _mm256_setzero_si256(), ok_hi = _mm256_setzero_si256();
    for (const char c : {'"', '\\', '/', 'b', 'f', 'n', 'r', 't'}) {
      const __m256i v = _mm256_set1_epi8(c);
      ok_lo = _mm256_or_si256(ok_lo, _mm256_cmpeq_epi8(lo, v));
      ok_hi = _mm256_or_si256(ok_hi, _mm256_cmpeq_epi8(hi, v));
    }
    if (escaped & ~mask(ok_lo, ok_hi)) return Escapes::kOther;
  }
  return any ? Escapes::kShort : Escapes::kNone;
}
#else
Escapes classify_escapes(const char* k, size_t n) {
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    if (k[i] != '\\') continue;
    any = true;
    if (++i == n) return Escapes::kOther;
    switch (k[i]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        break;
      default:
        return Escapes::kOther;
    }
  }
  return any ? Escapes::kShort : Escapes::kNone;
}
#endif

// Reads a string, number, boolean or null `value` (of JSON type `type`) into `fv`.
ParseError read_scalar(od::value& value, od::json_type type, FieldValue& fv) {
  switch (type) {
    case od::json_type::string: {
      // The token runs from the opening quote to the next structural character: its last
      // one but spaces is the closing quote. (A token without both quotes, which stage 1
      // should never give, goes to simdjson's own parse and its error.)
      const std::string_view token = trim_right(value.raw_json_token());
      if (token.size() >= 2 && token.back() == '"') {
        const std::string_view text = token.substr(1, token.size() - 2);
        const Escapes escapes = classify_escapes(text.data(), text.size());
        if (escapes != Escapes::kOther) {
          // Without escapes, the string is its own text in the buffer: no copy. With short
          // ones, they are checked now and undone when a rule reads the value.
          fv.text = text;
          fv.type = escapes == Escapes::kNone ? ValueType::kString : ValueType::kEscapedString;
          return ParseError::kNone;
        }
      }
      if (value.get_string().get(fv.text) != simdjson::SUCCESS) return ParseError::kMalformedJson;
      fv.type = ValueType::kString;
      return ParseError::kNone;
    }
    case od::json_type::number: {
      std::string_view tok = trim_right(value.raw_json_token());
      // raw_json_token does not validate; the number parse does.
      double d;
      if (value.get_double().get(d) != simdjson::SUCCESS) {
        int64_t i;
        uint64_t u;
        if (value.get_int64().get(i) != simdjson::SUCCESS &&
            value.get_uint64().get(u) != simdjson::SUCCESS) {
          return ParseError::kMalformedJson;
        }
      }
      fv.text = tok;
      fv.type = ValueType::kNumber;
      return ParseError::kNone;
    }
    case od::json_type::boolean: {
      bool b;
      if (value.get_bool().get(b) != simdjson::SUCCESS) return ParseError::kMalformedJson;
      fv.text = b ? "true" : "false";
      fv.type = ValueType::kBool;
      return ParseError::kNone;
    }
    case od::json_type::null: {
      bool is_null = false;
      if (value.is_null().get(is_null) != simdjson::SUCCESS || !is_null)
        return ParseError::kMalformedJson;
      fv.type = ValueType::kNull;
      return ParseError::kNone;
    }
    default:
      return ParseError::kMalformedJson;  // objects and arrays are read by the caller
  }
}

// Reads an array `value`: an array of one scalar is that scalar (ECS writes
// registry.data.strings as ["16"]); any other array is its raw JSON text (`end`: the end of
// the event's text).
ParseError read_array(od::value& value, const char* end, FieldValue& fv) {
  const char* start = value.raw_json_token().data();
  od::array arr;
  if (value.get_array().get(arr) != simdjson::SUCCESS) return ParseError::kMalformedJson;
  FieldValue single;
  size_t count = 0;
  for (auto element : arr) {
    if (element.error() != simdjson::SUCCESS) return ParseError::kMalformedJson;
    if (++count > 1) continue;
    od::value& e = element.value_unsafe();
    od::json_type et;
    if (e.type().get(et) != simdjson::SUCCESS) return ParseError::kMalformedJson;
    if (et != od::json_type::object && et != od::json_type::array) {
      if (auto pe = read_scalar(e, et, single); pe != ParseError::kNone) return pe;
    }
  }
  if (count == 1 && single.present()) {
    fv = single;
  } else {
    fv.text = std::string_view(start, json_value_length(start, end));
    fv.type = ValueType::kArray;
  }
  return ParseError::kNone;
}

}  // namespace

uint64_t FieldSet::edge_hash(uint32_t parent, std::string_view key) {
  const KeyEnds e = key_ends(key);
  // Both words multiplied, then splitmix64's finalizer: every input bit reaches the low bits
  // the table is indexed by.
  uint64_t h = (e.head ^ (uint64_t{parent} << 32 | key.size())) * 0x9e3779b97f4a7c15u ^
               e.tail * 0xc2b2ae3d27d4eb4fu;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
  return h ^ (h >> 31);
}

int32_t FieldSet::edge_of(uint32_t node, std::string_view key) const {
  const uint64_t h = edge_hash(node, key);
  const size_t mask = edges_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Edge& e = edges_[i];
    if (e.child == kNoChild) return -1;
    if (e.hash == h && e.parent == node && same_key(e.key, key)) return static_cast<int32_t>(i);
  }
}

int32_t FieldSet::child(uint32_t node, std::string_view key) const {
  const int32_t e = edge_of(node, key);
  return e < 0 ? -1 : static_cast<int32_t>(edges_[static_cast<size_t>(e)].child);
}

void FieldSet::insert_edge(Edge edge) {
  if (2 * (edge_count_ + 1) > edges_.size()) {
    std::vector<Edge> old(edges_.size() * 2);
    old.swap(edges_);
    edge_count_ = 0;
    for (auto& e : old) {
      if (e.child != kNoChild) insert_edge(std::move(e));
    }
  }
  const size_t mask = edges_.size() - 1;
  size_t i = edge.hash & mask;
  while (edges_[i].child != kNoChild) i = (i + 1) & mask;
  edges_[i] = std::move(edge);
  ++edge_count_;
}

uint32_t FieldSet::node_for(std::string_view dotted_path) {
  uint32_t node = 0;
  for (const auto& part : split_path(dotted_path)) {
    int32_t next = part == "*" ? nodes_[node].wildcard : child(node, part);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      if (part == "*") {
        nodes_[node].wildcard = next;
      } else {
        ++nodes_[node].children;
        insert_edge({edge_hash(node, part), node, static_cast<uint32_t>(next), part});
      }
    }
    node = static_cast<uint32_t>(next);
  }
  return node;
}

uint32_t FieldSet::add(std::string_view dotted_path) {
  const uint32_t node = node_for(dotted_path);
  if (nodes_[node].slot < 0) {
    nodes_[node].slot = static_cast<int32_t>(paths_.size());
    paths_.emplace_back(dotted_path);
  }
  return static_cast<uint32_t>(nodes_[node].slot);
}

bool FieldSet::add_alias(std::string_view dotted_path, uint32_t slot) {
  const uint32_t node = node_for(dotted_path);
  if (nodes_[node].slot >= 0) return nodes_[node].slot == static_cast<int32_t>(slot);
  nodes_[node].slot = static_cast<int32_t>(slot);
  return true;
}

int32_t FieldSet::find(std::string_view dotted_path) const {
  uint32_t node = 0;
  for (const auto& part : split_path(dotted_path)) {
    const int32_t next = part == "*" ? nodes_[node].wildcard : child(node, part);
    if (next < 0) return -1;
    node = static_cast<uint32_t>(next);
  }
  return nodes_[node].slot;
}

void Event::reset(size_t size) {
  if (values_.size() == size) {
    for (const uint32_t slot : filled_) values_[slot] = FieldValue{};
  } else {
    values_.assign(size, FieldValue{});
  }
  filled_.clear();
}

void Event::unescape(FieldValue& v) const {
  VIGIL_DCHECK(unescaped_used_ + v.text.size() <= unescaped_.size());
  char* const out = unescaped_.data() + unescaped_used_;
  char* o = out;
  const char* p = v.text.data();
  const char* const end = p + v.text.size();
  while (p < end) {
    const auto* bs = static_cast<const char*>(std::memchr(p, '\\', static_cast<size_t>(end - p)));
    if (bs == nullptr) {
      std::memcpy(o, p, static_cast<size_t>(end - p));
      o += end - p;
      break;
    }
    std::memcpy(o, p, static_cast<size_t>(bs - p));
    o += bs - p;
    switch (bs[1]) {  // the parse let only these through (classify_escapes)
      case 'b':
        *o++ = '\b';
        break;
      case 'f':
        *o++ = '\f';
        break;
      case 'n':
        *o++ = '\n';
        break;
      case 'r':
        *o++ = '\r';
        break;
      case 't':
        *o++ = '\t';
        break;
      default:  // " \ /
        *o++ = bs[1];
    }
    p = bs + 2;
  }
  unescaped_used_ += static_cast<size_t>(o - out);
  v.text = std::string_view(out, static_cast<size_t>(o - out));
  v.type = ValueType::kString;
}

EventParser::EventParser(size_t max_event_bytes, size_t max_depth)
    : max_event_bytes_(max_event_bytes), max_depth_(max_depth) {}

std::optional<TimeMs> time_value(const FieldValue& v) {
  if (v.type == ValueType::kString) return parse_rfc3339(v.text);
  if (v.type != ValueType::kNumber) return std::nullopt;
  TimeMs ms = 0;
  auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), ms);
  if (ec != std::errc() || end != v.text.data() + v.text.size() || ms < 0) return std::nullopt;
  return ms;
}

ParseError EventParser::parse(std::string_view raw, const FieldSet& fields, Event& out) {
  out.reset(fields.size());
  out.raw_ = {};
  if (raw.size() > max_event_bytes_) return ParseError::kTooLarge;

  // The one copy of the event: simdjson needs SIMDJSON_PADDING readable bytes past the end.
  const size_t needed = raw.size() + simdjson::SIMDJSON_PADDING;
  if (buffer_.size() < needed) buffer_.resize(std::max(needed, buffer_.size() * 2));
  std::memcpy(buffer_.data(), raw.data(), raw.size());
  std::memset(buffer_.data() + raw.size(), 0, simdjson::SIMDJSON_PADDING);
  out.raw_ = raw;
  // Room for every escaped string of the event undone: never more bytes than the event.
  if (out.unescaped_.size() < raw.size())
    out.unescaped_.resize(std::max(raw.size(), 2 * out.unescaped_.size()));
  out.unescaped_used_ = 0;

  // iterate() indexes the whole document first, validating its UTF-8 on the way.
  od::document doc;
  if (const auto err = parser_.iterate(buffer_.data(), raw.size(), buffer_.size()).get(doc);
      err != simdjson::SUCCESS) {
    return err == simdjson::UTF8_ERROR ? ParseError::kInvalidUtf8 : ParseError::kMalformedJson;
  }
  od::object root;
  const auto err = doc.get_object().get(root);
  if (err == simdjson::INCORRECT_TYPE)
    return looks_like_json_value(raw) ? ParseError::kNotAnObject : ParseError::kMalformedJson;
  if (err != simdjson::SUCCESS) return ParseError::kMalformedJson;
  if (next_edge_.size() != fields.edges_.size() || first_edge_.size() != fields.nodes_.size()) {
    next_edge_.assign(fields.edges_.size(), FieldSet::kNoChild);
    first_edge_.assign(fields.nodes_.size(), FieldSet::kNoChild);
  }
  if (filled_by_.size() < fields.size()) filled_by_.resize(fields.size());
  // Depth is checked over the whole event, not only along the paths the walk follows: values
  // it skips are stored and rendered too.
  if (nests_deeper_than(raw, max_depth_)) return ParseError::kTooDeep;
  ParseError pe = walk_object(root, fields, 0, out, 1, false);
  // One document per event: anything after the root object ("{...}{...}") is malformed.
  // (current_location() is out of bounds once the whole document has been read.)
  if (pe == ParseError::kNone && doc.current_location().error() == simdjson::SUCCESS)
    pe = ParseError::kMalformedJson;
  if (pe != ParseError::kNone) out.reset(fields.size());
  return pe;
}

int32_t EventParser::find_child(const FieldSet& fields, uint32_t node, uint32_t& previous,
                                std::string_view key) {
  uint32_t& guess = previous == FieldSet::kNoChild ? first_edge_[node] : next_edge_[previous];
  if (guess != FieldSet::kNoChild) {
    const FieldSet::Edge& e = fields.edges_[guess];
    // An empty slot (no child) reads as parent 0 with an empty key: it is no edge.
    if (e.child != FieldSet::kNoChild && e.parent == node && same_key(e.key, key)) {
      previous = guess;
      return static_cast<int32_t>(e.child);
    }
  }
  const int32_t found = fields.edge_of(node, key);
  if (found < 0) return -1;
  guess = static_cast<uint32_t>(found);
  previous = guess;
  return static_cast<int32_t>(fields.edges_[guess].child);
}

ParseError EventParser::walk_object(od::object obj, const FieldSet& fields, uint32_t node,
                                    Event& out, size_t depth, bool via_wildcard) {
  if (depth > max_depth_) return ParseError::kTooDeep;
  uint32_t previous = FieldSet::kNoChild;  // edge of the last key found in this object
  for (auto field_result : obj) {
    // The field and its value by reference: GCC copies on-demand iterators through the
    // stack with stores that the next wide load spans, stalling on store forwarding (copies
    // here were once a quarter of the parse).
    if (field_result.error() != simdjson::SUCCESS) return ParseError::kMalformedJson;
    od::field& field = field_result.value_unsafe();
    // The key as written when it has no escape (nearly always): no copy, no unescaping.
    std::string_view key;
    const char* k = field.key().raw();
    const char* end = buffer_.data() + out.raw_.size();
    if (const size_t length = plain_string_length(k, static_cast<size_t>(end - k));
        length != std::string_view::npos) {
      key = std::string_view(k, length);
    } else if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      return ParseError::kMalformedJson;
    }
    // An exact key wins over the "*" child: an on-demand value can be read only once.
    int32_t next = find_child(fields, node, previous, key);
    // A "*" child takes many keys of one object by design: below it a field seen twice is
    // no duplicate key.
    const bool exact = next >= 0 && !via_wildcard;
    if (next < 0) next = fields.nodes_[node].wildcard;
    if (next < 0) {
      // Not referenced: simdjson skips the value without validating it, so at least its
      // first byte is checked (NaN, Infinity, a bare word are no JSON value).
      od::json_type skipped;
      if (field.value().type().get(skipped) != simdjson::SUCCESS) return ParseError::kMalformedJson;
      continue;
    }
    const auto& n = fields.nodes_[static_cast<uint32_t>(next)];
    od::value& value = field.value();
    od::json_type type;
    if (value.type().get(type) != simdjson::SUCCESS) return ParseError::kMalformedJson;

    if (type == od::json_type::object && (n.children != 0 || n.wildcard >= 0)) {
      od::object child;
      if (value.get_object().get(child) != simdjson::SUCCESS) return ParseError::kMalformedJson;
      if (auto pe = walk_object(child, fields, static_cast<uint32_t>(next), out, depth + 1, !exact);
          pe != ParseError::kNone) {
        return pe;
      }
      continue;
    }
    if (n.slot < 0) continue;  // an intermediate node holding a scalar: the path is absent
    FieldValue& fv = out.values_[static_cast<uint32_t>(n.slot)];
    if (fv.type == ValueType::kMissing) {
      out.filled_.push_back(static_cast<uint32_t>(n.slot));
    } else if (exact && filled_by_[static_cast<uint32_t>(n.slot)] == static_cast<uint32_t>(next)) {
      return ParseError::kDuplicateKey;
    }
    filled_by_[static_cast<uint32_t>(n.slot)] = static_cast<uint32_t>(next);
    switch (type) {
      case od::json_type::array:
        if (auto pe = read_array(value, buffer_.data() + out.raw_.size(), fv);
            pe != ParseError::kNone) {
          return pe;
        }
        break;
      case od::json_type::object: {
        std::string_view rawj;
        if (simdjson::to_json_string(value).get(rawj) != simdjson::SUCCESS)
          return ParseError::kMalformedJson;
        fv.text = trim_right(rawj);
        fv.type = ValueType::kObject;
        break;
      }
      default:
        if (auto pe = read_scalar(value, type, fv); pe != ParseError::kNone) return pe;
    }
  }
  return ParseError::kNone;
}

}  // namespace vigil
