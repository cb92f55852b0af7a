#pragma once
// Event view over simdjson on-demand: extracts only the fields a rule bundle references.
//
// A FieldSet is the set of JSON paths a bundle needs, compiled once into a trie. An
// EventParser walks one JSON event per call, visiting each object key once, and fills an
// Event with a FieldValue per path. Nothing is allocated per event in steady state: the
// parser reuses its padded buffer and simdjson's string buffer, and the values are views
// into those buffers, valid until the parser's next parse().
//
// Thread safety: a FieldSet is immutable after construction and may be shared; an
// EventParser and an Event belong to one thread.

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/core/check.h"
#include "vigil/core/time.h"

namespace vigil {

enum class ValueType : uint8_t {
  kMissing,
  kNull,
  kString,
  kNumber,
  kBool,
  kObject,
  kArray,
  // A string whose escapes are not undone yet: `text` is its JSON text between the quotes.
  // Only Event::raw_field() shows one; Event::field() undoes the escapes first.
  kEscapedString
};

struct FieldValue {
  ValueType type = ValueType::kMissing;
  // kString: the unescaped string; kNumber: the number's JSON text ("4", "-1.5e3");
  // kBool: "true"/"false"; kObject/kArray: the raw JSON text; otherwise empty.
  std::string_view text;

  bool present() const { return type != ValueType::kMissing && type != ValueType::kNull; }
};

// The time an event's time field holds: RFC 3339 text, or whole milliseconds since the epoch
// (a number, as OCSF writes `time`); nullopt for anything else.
std::optional<TimeMs> time_value(const FieldValue& v);

class FieldSet {
 public:
  FieldSet();
  // Adds a dotted path ("Event.System.EventID") and returns its slot; adding a path twice
  // returns the same slot. A key containing a dot is written with "\." ("a\.b.c"); a
  // segment "*" matches any one key ("Event.UserData.*.Operation").
  uint32_t add(std::string_view dotted_path);
  // Makes `dotted_path` fill `slot` too, so that a field found at any of several places
  // lands in one slot. Returns false if the path already fills another slot.
  bool add_alias(std::string_view dotted_path, uint32_t slot);
  // Slot of a path already added, or -1.
  int32_t find(std::string_view dotted_path) const;
  size_t size() const { return paths_.size(); }
  const std::string& path(uint32_t slot) const { return paths_[slot]; }

 private:
  friend class EventParser;
  struct Node {
    uint32_t children = 0;  // keyed children, found through edges_
    int32_t wildcard = -1;  // the "*" child
    int32_t slot = -1;
  };
  // A keyed child: (parent node, key) -> child node. The parser looks up every key of every
  // object it walks, so the edges of all nodes share one open-addressing hash table.
  struct Edge {
    uint64_t hash = 0;
    uint32_t parent = 0;
    uint32_t child = kNoChild;
    std::string key;
  };
  static constexpr uint32_t kNoChild = 0xffffffffu;
  static uint64_t edge_hash(uint32_t parent, std::string_view key);
  // Index into edges_ of the edge (node, key), or -1.
  int32_t edge_of(uint32_t node, std::string_view key) const;
  int32_t child(uint32_t node, std::string_view key) const;
  uint32_t node_for(std::string_view dotted_path);
  void insert_edge(Edge edge);

  std::vector<Node> nodes_;  // nodes_[0] is the root
  std::vector<Edge> edges_;  // a power of two in size, at most half full
  size_t edge_count_ = 0;
  std::vector<std::string> paths_;
};

class Event {
 public:
  Event() = default;
  // Values point into buffers of this event and of its parser: no copies.
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&&) = default;
  Event& operator=(Event&&) = default;

  // `slot` is one of the FieldSet's the event was parsed with. A string with escapes has them
  // undone on its first read (most of a 2 KB event's escaped text, a Windows event's message
  // or call trace, is read by no rule for it).
  const FieldValue& field(uint32_t slot) const {
    VIGIL_DCHECK(slot < values_.size());
    FieldValue& v = values_[slot];
    if (v.type == ValueType::kEscapedString) [[unlikely]]
      unescape(v);
    return v;
  }
  // The value as the event writes it: a string with escapes not undone yet is kEscapedString
  // with its JSON text. That text is as good a key as the value itself: two strings with the
  // same JSON text are equal, and no other value's text looks like an escaped string's (its
  // every '"' follows a backslash; an object's or array's text with a backslash holds a
  // string, whose quotes are bare). For a memo keyed by values, without undoing escapes.
  const FieldValue& raw_field(uint32_t slot) const {
    VIGIL_DCHECK(slot < values_.size());
    return values_[slot];
  }
  std::string_view raw() const { return raw_; }
  size_t size() const { return values_.size(); }

 private:
  friend class EventParser;
  // Leaves `size` slots, all empty. A parse fills a few of the slots a rule set references:
  // only those are emptied again when the size is unchanged.
  void reset(size_t size);
  // Undoes the escapes of a kEscapedString value (checked by the parse) into unescaped_.
  void unescape(FieldValue& v) const;

  // Mutable: field() undoes escapes on first read. An Event belongs to one thread.
  mutable std::vector<FieldValue> values_;
  // Room for every string of the event unescaped (never longer than the event): values
  // point into it, so it is sized at the parse and never reallocated until the next.
  mutable std::vector<char> unescaped_;
  mutable size_t unescaped_used_ = 0;
  std::vector<uint32_t> filled_;  // the slots values_ has set; all others are empty
  std::string_view raw_;
};

// Why an event could not be parsed. Every value has a name (see parse_error_name) that is
// used as the dead-letter reason and as a metric label.
// kDuplicateKey: a key the rules read appears twice in one object ({"CommandLine":"mimikatz",
// "CommandLine":"notepad"}). JSON leaves such a document's meaning to the reader and readers
// differ (last wins here, first wins elsewhere), so an attacker could show a detector one
// value and a SIEM another: the event is refused as ambiguous rather than matched on either.
enum class ParseError : uint8_t {
  kNone,
  kTooLarge,
  kInvalidUtf8,
  kMalformedJson,
  kNotAnObject,
  kTooDeep,
  kDuplicateKey
};
std::string_view parse_error_name(ParseError e);

class EventParser {
 public:
  // Events larger than max_event_bytes are refused with kTooLarge. Nesting deeper than
  // max_depth anywhere in the event is refused with kTooDeep. Anything after the root object,
  // and values the rules do not read that cannot start a JSON value (NaN), are kMalformedJson.
  explicit EventParser(size_t max_event_bytes = 1 << 20, size_t max_depth = 64);

  // Parses `raw` and extracts the fields of `fields` into `out`. On error `out` holds no
  // values. The views in `out` are valid until the next call.
  ParseError parse(std::string_view raw, const FieldSet& fields, Event& out);

 private:
  ParseError walk_object(simdjson::ondemand::object obj, const FieldSet& fields, uint32_t node,
                         Event& out, size_t depth, bool via_wildcard);
  // The child node of `key` in an object of `node` whose last key found had edge `previous`
  // (FieldSet::kNoChild at its first), or -1; sets `previous` to the key's edge when found.
  int32_t find_child(const FieldSet& fields, uint32_t node, uint32_t& previous,
                     std::string_view key);

  // Events of one kind list their keys in one order, so the edge found after edge e is most
  // often the one found after it last time (next_edge_[e]), and an object's first the one
  // that came first in the last object of its node (first_edge_[node]). A guess is taken
  // only if its edge has the parent and the key at hand (so a guess left from another
  // FieldSet is merely wrong); otherwise the key is looked up in the hash table and the
  // guess replaced. Sized to the FieldSet of the last parse; kNoChild: no guess.
  std::vector<uint32_t> next_edge_, first_edge_;
  // Per slot: the node that filled it in this event (read only while the slot is filled):
  // the same node twice is a duplicate key; another node is an alias of the same field.
  std::vector<uint32_t> filled_by_;
  size_t max_event_bytes_;
  size_t max_depth_;
  simdjson::ondemand::parser parser_;
  std::vector<char> buffer_;
};

}  // namespace vigil
