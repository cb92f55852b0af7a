#include "vigil/core/event.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

namespace vigil {
namespace {

class EventParserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = fields_.add("Event.EventData.Image");
    id_ = fields_.add("Event.System.EventID");
    provider_ = fields_.add("Event.System.Provider.#attributes.Name");
    flag_ = fields_.add("flag");
    nothing_ = fields_.add("nothing");
    obj_ = fields_.add("obj");
    dotted_ = fields_.add("a\\.b");
  }
  FieldSet fields_;
  EventParser parser_;
  Event event_;
  uint32_t image_, id_, provider_, flag_, nothing_, obj_, dotted_;
};

TEST_F(EventParserTest, ExtractsNestedFieldsOfEveryType) {
  const std::string raw =
      R"({"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1},)"
      R"("EventData":{"Image":"C:\\Windows\\cmd.exe","Other":[1,2]}},"flag":true,"nothing":null,"obj":{"x": [1, {"y":2}]},"a.b":"dot"})";
  ASSERT_EQ(parser_.parse(raw, fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(image_).type, ValueType::kString);
  EXPECT_EQ(event_.field(image_).text, "C:\\Windows\\cmd.exe");  // unescaped
  EXPECT_EQ(event_.field(id_).type, ValueType::kNumber);
  EXPECT_EQ(event_.field(id_).text, "1");
  EXPECT_EQ(event_.field(provider_).text, "Microsoft-Windows-Sysmon");
  EXPECT_EQ(event_.field(flag_).text, "true");
  EXPECT_EQ(event_.field(nothing_).type, ValueType::kNull);
  EXPECT_FALSE(event_.field(nothing_).present());
  EXPECT_EQ(event_.field(obj_).type, ValueType::kObject);
  EXPECT_EQ(event_.field(obj_).text, R"({"x": [1, {"y":2}]})");
  EXPECT_EQ(event_.field(dotted_).text, "dot");
  EXPECT_EQ(event_.raw(), raw);
}

// An array of one scalar reads as that scalar (ECS writes registry data as ["16"]); any other
// array is its raw JSON text, whatever its strings hold.
TEST(EventParser, AnArrayOfOneScalarIsThatScalar) {
  FieldSet fields;
  const uint32_t a = fields.add("a"), b = fields.add("b"), c = fields.add("c"), d = fields.add("d"),
                 e = fields.add("e"), f = fields.add("f");
  EventParser parser;
  Event event;
  const std::string raw =
      R"({"a":["C:\\x \"q\""],"b":[ 16 ],"c":[true],"d":["x]", "y\"]"],"e":[],"f":[{"k":[1]}],"g":1})";
  ASSERT_EQ(parser.parse(raw, fields, event), ParseError::kNone);
  EXPECT_EQ(event.field(a).type, ValueType::kString);
  EXPECT_EQ(event.field(a).text, "C:\\x \"q\"");
  EXPECT_EQ(event.field(b).type, ValueType::kNumber);
  EXPECT_EQ(event.field(b).text, "16");
  EXPECT_EQ(event.field(c).text, "true");
  EXPECT_EQ(event.field(d).type, ValueType::kArray);
  EXPECT_EQ(event.field(d).text, R"(["x]", "y\"]"])");
  EXPECT_EQ(event.field(e).text, "[]");
  EXPECT_EQ(event.field(f).text, R"([{"k":[1]}])");
  EXPECT_EQ(parser.parse(R"({"d":[1,})", fields, event), ParseError::kMalformedJson);
}

// An event's time: RFC 3339 text or (OCSF `time`) whole milliseconds since the epoch.
TEST(EventTime, TextOrEpochMilliseconds) {
  EXPECT_EQ(time_value({ValueType::kString, "1970-01-01T00:00:01.5Z"}), 1500);
  EXPECT_EQ(time_value({ValueType::kNumber, "1700000000123"}), 1700000000123);
  EXPECT_FALSE(time_value({ValueType::kNumber, "1.5e3"}));
  EXPECT_FALSE(time_value({ValueType::kNumber, "-5"}));
  EXPECT_FALSE(time_value({ValueType::kString, "yesterday"}));
  EXPECT_FALSE(time_value({ValueType::kBool, "true"}));
  EXPECT_FALSE(time_value({}));
}

// Keys are compared as written unless they hold an escape; an escaped key is unescaped first.
TEST_F(EventParserTest, EscapedKeysAreFoundByTheirUnescapedName) {
  const std::string raw =
      R"({"Ev\u0065nt":{"EventData":{"Im\u0061ge":"a","Image\"":"quoted"},"System":{"EventID":4}},)"
      R"("fl\u0061g":false,"a.b":"dot","a\\.b":"backslash"})";
  ASSERT_EQ(parser_.parse(raw, fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(image_).text, "a");
  EXPECT_EQ(event_.field(id_).text, "4");
  EXPECT_EQ(event_.field(flag_).text, "false");
  EXPECT_EQ(event_.field(dotted_).text, "dot");
  // A key that only starts like a wanted one is another key.
  ASSERT_EQ(parser_.parse(R"({"Event":{"EventData":{"Image\"":"quoted","Imag":"short"}}})", fields_,
                          event_),
            ParseError::kNone);
  EXPECT_EQ(event_.field(image_).type, ValueType::kMissing);
}

TEST(FieldSet, ManyKeysUnderManyParentsStayDistinct) {
  FieldSet f;
  std::vector<uint32_t> slots;
  for (int parent = 0; parent < 20; ++parent) {
    for (int key = 0; key < 100; ++key) {
      slots.push_back(f.add("p" + std::to_string(parent) + ".k" + std::to_string(key)));
    }
  }
  ASSERT_EQ(f.size(), 2000u);
  for (int parent = 0; parent < 20; ++parent) {
    for (int key = 0; key < 100; ++key) {
      EXPECT_EQ(f.find("p" + std::to_string(parent) + ".k" + std::to_string(key)),
                static_cast<int32_t>(slots[static_cast<size_t>(parent * 100 + key)]));
    }
  }
  EXPECT_EQ(f.find("p0.k100"), -1);
  EXPECT_EQ(f.find("k0"), -1);
  EventParser parser;
  Event event;
  ASSERT_EQ(parser.parse(R"({"p19":{"k99":"last","k5":"five"},"p3":{"k0":0}})", f, event),
            ParseError::kNone);
  EXPECT_EQ(event.field(slots[1999]).text, "last");
  EXPECT_EQ(event.field(slots[1905]).text, "five");
  EXPECT_EQ(event.field(slots[300]).text, "0");
  EXPECT_EQ(event.field(slots[0]).type, ValueType::kMissing);
}

// Keys and plain strings are read as written, 16 bytes at a time, up to the first quote or
// backslash: every length around those blocks, with an escape at every place, reads back.
TEST(EventParser, KeysAndStringsOfEveryLengthReadBackWhereverTheirEscapes) {
  for (size_t n = 0; n <= 40; ++n) {
    std::string key, text;
    for (size_t i = 0; i < n; ++i) {
      key += static_cast<char>('a' + i % 26);
      text += static_cast<char>('A' + (i * 7) % 26);
    }
    FieldSet f;
    const uint32_t slot = f.add(key);
    const uint32_t longer = f.add(key + "x");
    EventParser parser;
    Event event;
    // A shorter and a longer key around it, which share its first bytes (the empty key has
    // no shorter one: it would be itself, a duplicate key).
    const std::string shorter = n > 0 ? "\"" + key.substr(0, n / 2) + "\":1," : "";
    const std::string plain =
        "{" + shorter + "\"" + key + "x\":\"L\",\"" + key + "\":\"" + text + "\"}";
    ASSERT_EQ(parser.parse(plain, f, event), ParseError::kNone) << plain;
    EXPECT_EQ(event.field(slot).type, ValueType::kString) << plain;
    EXPECT_EQ(event.field(slot).text, text) << plain;
    EXPECT_EQ(event.field(longer).text, "L") << plain;
    for (size_t at = 0; at <= n; ++at) {
      // An escaped quote in the value, and an escaped letter in the key, at `at`.
      std::string escaped_key = key, escaped_text = text, want = text;
      escaped_text.insert(at, "\\\"");
      want.insert(at, "\"");
      if (at < n) {
        char escape[8];
        std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(key[at]));
        escaped_key.replace(at, 1, escape);
      }
      const std::string raw = "{\"" + escaped_key + "\":\"" + escaped_text + "\"}";
      ASSERT_EQ(parser.parse(raw, f, event), ParseError::kNone) << raw;
      EXPECT_EQ(event.field(slot).text, want) << raw;
      EXPECT_EQ(event.field(longer).type, ValueType::kMissing) << raw;
    }
  }
}

// A string with escapes of two characters is checked at the parse and unescaped when read
// (raw_field() shows it as written); one with \u escapes is read at the parse; an invalid
// escape is refused at the parse, read or not, as before.
TEST(EventParser, EscapesAreCheckedAtTheParseAndUndoneWhenRead) {
  FieldSet f;
  const uint32_t a = f.add("a"), b = f.add("b"), u = f.add("u"), arr = f.add("arr");
  EventParser parser;
  Event event;
  const std::string raw = R"({"a":"C:\\Windows\\System32\\lsass.exe","b":"q\"\/\b\f\n\r\t\\z",)"
                          R"("u":"\u00e9\ud83d\ude00x","arr":["x\ty"]})";
  ASSERT_EQ(parser.parse(raw, f, event), ParseError::kNone) << raw;
  EXPECT_EQ(event.raw_field(a).type, ValueType::kEscapedString);
  EXPECT_EQ(event.raw_field(a).text, R"(C:\\Windows\\System32\\lsass.exe)");
  EXPECT_TRUE(event.raw_field(a).present());
  EXPECT_EQ(event.raw_field(u).type, ValueType::kString);  // \u: unescaped by the parse
  EXPECT_EQ(event.field(u).text, "\xc3\xa9\xf0\x9f\x98\x80x");
  EXPECT_EQ(event.field(a).type, ValueType::kString);
  EXPECT_EQ(event.field(a).text, R"(C:\Windows\System32\lsass.exe)");
  EXPECT_EQ(event.raw_field(a).text, R"(C:\Windows\System32\lsass.exe)");  // now undone
  EXPECT_EQ(event.field(b).text, std::string("q\"/\b\f\n\r\t\\z"));
  EXPECT_EQ(event.field(b).text, std::string("q\"/\b\f\n\r\t\\z"));  // read twice
  EXPECT_EQ(event.field(arr).text, "x\ty");
  // The same parser, a shorter event: nothing of the last one shows.
  ASSERT_EQ(parser.parse(R"({"b":"\\"})", f, event), ParseError::kNone);
  EXPECT_EQ(event.field(b).text, "\\");
  EXPECT_EQ(event.field(a).type, ValueType::kMissing);
  // Invalid escapes, in a value read or not, and an escape cut by the end of the string.
  for (const char* bad : {R"({"a":"x\qy"})", R"({"skipped":"x\qy","a":"\n"})", R"({"a":"x\u12"})",
                          R"({"a":"\ud800"})", R"({"a":"x\"})"}) {
    const ParseError pe = parser.parse(bad, f, event);
    if (std::string_view(bad).find("skipped") != std::string_view::npos) {
      // A value no rule reads is not checked (simdjson skips it), as before.
      EXPECT_EQ(pe, ParseError::kNone) << bad;
    } else {
      EXPECT_EQ(pe, ParseError::kMalformedJson) << bad;
    }
  }
}

// Escapes are classified 64 bytes at a time: runs of backslashes of every length, at every
// place around those blocks, followed by every kind of character, read back as simdjson's DOM
// parser reads them, and are refused where it refuses them.
TEST(EventParser, RunsOfBackslashesAcrossBlocksReadAsSimdjsonReadsThem) {
  FieldSet f;
  const uint32_t slot = f.add("v");
  EventParser parser;
  Event event;
  simdjson::dom::parser dom;
  size_t checked = 0, refused = 0;
  for (size_t at = 0; at < 140; at += (at < 50 || at > 120) ? 1 : 7) {
    for (size_t run = 1; run <= 5; ++run) {
      for (const char after : {'n', '"', '/', 'u', 'q', 'x', 't'}) {
        std::string text(at, 'a');
        text.append(run, '\\');
        text += after;
        if (after == 'u') text += "00e9";
        text.append(70, 'b');
        const std::string raw = "{\"v\":\"" + text + "\"}";
        const simdjson::padded_string padded(raw);
        simdjson::dom::element doc;
        const bool valid = dom.parse(padded).get(doc) == simdjson::SUCCESS;
        const ParseError pe = parser.parse(raw, f, event);
        if (!valid) {
          EXPECT_NE(pe, ParseError::kNone) << raw;
          ++refused;
          continue;
        }
        ASSERT_EQ(pe, ParseError::kNone) << raw;
        std::string_view want;
        ASSERT_EQ(doc["v"].get(want), simdjson::SUCCESS);
        EXPECT_EQ(event.field(slot).text, want) << raw;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000u);
  EXPECT_GT(refused, 500u);
}

// Keys are hashed by their length and first and last bytes: keys alike in all of those,
// differing only in the middle, are still told apart.
TEST(FieldSet, KeysDifferingOnlyInTheMiddleStayDistinct) {
  FieldSet f;
  std::vector<std::string> keys;
  for (char c = 'a'; c <= 'z'; ++c) keys.push_back("PrefixOf8_" + std::string(1, c) + "_SuffixOf8");
  std::string raw = "{";
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(f.add(keys[i]), i);
    raw += (i ? ",\"" : "\"") + keys[i] + "\":" + std::to_string(i);
  }
  raw += "}";
  EventParser parser;
  Event event;
  ASSERT_EQ(parser.parse(raw, f, event), ParseError::kNone);
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(f.find(keys[i]), static_cast<int32_t>(i));
    EXPECT_EQ(event.field(static_cast<uint32_t>(i)).text, std::to_string(i));
  }
  EXPECT_EQ(f.find("PrefixOf8_A_SuffixOf8"), -1);
}

// The parser guesses each key's place in the FieldSet from the keys it met before (in the
// last objects of the same node, in order); a guess is taken only when its parent and key are
// the ones at hand. Keys in any order, unknown keys between known ones, the same key under
// other parents, and a parser switching between FieldSets of other sizes all read back as
// the fields they are.
TEST(EventParser, KeysAreFoundWhateverTheOrderTheParserMetBefore) {
  FieldSet small;
  const uint32_t ax = small.add("a.x"), ay = small.add("a.y"), bx = small.add("b.x"),
                 by = small.add("b.y"), c = small.add("c"), azx = small.add("a.z.x");
  FieldSet big;  // the same paths among many others, added in another order
  for (int i = 0; i < 50; ++i) big.add("k" + std::to_string(i) + ".x");
  const uint32_t big_by = big.add("b.y"), big_ax = big.add("a.x"), big_c = big.add("c");
  struct Case {
    std::string raw;
    std::vector<std::pair<uint32_t, std::string>> values;  // slot -> text; other slots missing
  };
  const std::vector<Case> events = {
      {R"({"a":{"x":1,"y":2},"b":{"x":3,"y":4},"c":5})",
       {{ax, "1"}, {ay, "2"}, {bx, "3"}, {by, "4"}, {c, "5"}}},
      {R"({"c":50,"b":{"y":40,"x":30},"a":{"y":20,"x":10}})",
       {{ax, "10"}, {ay, "20"}, {bx, "30"}, {by, "40"}, {c, "50"}}},
      {R"({"a":{"w":0,"x":100,"yy":1,"z":{"x":7},"y":200},"b":{"y":400},"d":{"x":9}})",
       {{ax, "100"}, {ay, "200"}, {by, "400"}, {azx, "7"}}},
      {R"({"b":{"x":"b"},"a":{"x":"a"}})", {{ax, "a"}, {bx, "b"}}},
      {R"({"a":{"y":"only"}})", {{ay, "only"}}},
  };
  EventParser parser;
  Event event;
  auto check = [&](size_t i) {
    const auto& [raw, expected] = events[i];
    ASSERT_EQ(parser.parse(raw, small, event), ParseError::kNone) << raw;
    for (uint32_t slot = 0; slot < small.size(); ++slot) {
      const auto it = std::find_if(expected.begin(), expected.end(),
                                   [&](const auto& e) { return e.first == slot; });
      if (it == expected.end()) {
        EXPECT_EQ(event.field(slot).type, ValueType::kMissing) << raw << " " << small.path(slot);
      } else {
        EXPECT_EQ(event.field(slot).text, it->second) << raw << " " << small.path(slot);
      }
    }
  };
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < events.size(); ++i) check(i);
    for (size_t i = events.size(); i-- > 0;) check(i);
    check(1);
    check(1);
    check(0);
    // Another FieldSet in between: its guesses must not carry over.
    ASSERT_EQ(parser.parse(events[1].raw, big, event), ParseError::kNone);
    EXPECT_EQ(event.field(big_ax).text, "10");
    EXPECT_EQ(event.field(big_by).text, "40");
    EXPECT_EQ(event.field(big_c).text, "50");
  }
}

// A guess left from another FieldSet of the same sizes can point at an empty slot of the
// edge table, which looks like an edge of the root with an empty key: it is no guess, and the
// root's "*" child still takes the key.
TEST(EventParser, AGuessAtAnEmptySlotIsNoEdge) {
  FieldSet empty_key;
  const uint32_t first = empty_key.add("");
  FieldSet wildcard;  // as many nodes and table slots, no keyed edge
  const uint32_t any = wildcard.add("*");
  EventParser parser;
  Event event;
  ASSERT_EQ(parser.parse(R"({"":"v"})", empty_key, event), ParseError::kNone);
  EXPECT_EQ(event.field(first).text, "v");
  ASSERT_EQ(parser.parse(R"({"":"w"})", wildcard, event), ParseError::kNone);
  EXPECT_EQ(event.field(any).text, "w");
}

TEST_F(EventParserTest, MissingAndWronglyShapedPathsAreAbsent) {
  ASSERT_EQ(parser_.parse(R"({"Event":{"System":"flat"},"other":1})", fields_, event_),
            ParseError::kNone);
  EXPECT_EQ(event_.field(id_).type, ValueType::kMissing);
  EXPECT_EQ(event_.field(image_).type, ValueType::kMissing);
}

TEST_F(EventParserTest, ValuesDoNotLeakBetweenEvents) {
  ASSERT_EQ(parser_.parse(R"({"flag":false})", fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(flag_).text, "false");
  ASSERT_EQ(parser_.parse(R"({"nothing":1})", fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(flag_).type, ValueType::kMissing);
  // Nor through a parse that fails half way, nor into an event parsed for other fields.
  ASSERT_EQ(parser_.parse(R"({"a.b":"dot","obj":{"x":1},"flag":tru})", fields_, event_),
            ParseError::kMalformedJson);
  for (uint32_t slot = 0; slot < fields_.size(); ++slot) {
    EXPECT_EQ(event_.field(slot).type, ValueType::kMissing) << fields_.path(slot);
    EXPECT_TRUE(event_.field(slot).text.empty()) << fields_.path(slot);
  }
  ASSERT_EQ(parser_.parse(R"({"flag":true,"a.b":"dot"})", fields_, event_), ParseError::kNone);
  FieldSet other;
  const uint32_t first = other.add("a\\.b");
  ASSERT_EQ(parser_.parse(R"({"flag":false})", other, event_), ParseError::kNone);
  EXPECT_EQ(event_.size(), 1u);
  EXPECT_EQ(event_.field(first).type, ValueType::kMissing);
  ASSERT_EQ(parser_.parse(R"({"nothing":null})", fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(flag_).type, ValueType::kMissing);
  EXPECT_EQ(event_.field(dotted_).type, ValueType::kMissing);
  EXPECT_EQ(event_.field(nothing_).type, ValueType::kNull);
}

TEST_F(EventParserTest, NamesEveryKindOfBadInput) {
  EXPECT_EQ(parser_.parse("not json", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse("", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse("[1,2]", fields_, event_), ParseError::kNotAnObject);
  EXPECT_EQ(parser_.parse("\"str\"", fields_, event_), ParseError::kNotAnObject);
  EXPECT_EQ(parser_.parse(R"({"flag": tru})", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"flag": 1)", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse("{\"flag\":\"\xff\xfe\"}", fields_, event_), ParseError::kInvalidUtf8);
  // Wherever it is: in a key, in a value no rule reads, after the object.
  EXPECT_EQ(parser_.parse("{\"fl\xc3\":1}", fields_, event_), ParseError::kInvalidUtf8);
  EXPECT_EQ(parser_.parse("{\"skipped\":\"\xed\xa0\x80\",\"flag\":1}", fields_, event_),
            ParseError::kInvalidUtf8);
  EXPECT_EQ(parser_.parse("{\"flag\":1} \xff", fields_, event_), ParseError::kInvalidUtf8);
  EventParser small(16);
  EXPECT_EQ(small.parse(R"({"flag":"0123456789abcdef"})", fields_, event_), ParseError::kTooLarge);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += R"({"Event":)";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "}";
  FieldSet deep_fields;
  std::string path = "Event";
  for (int i = 1; i < 100; ++i) path += ".Event";
  deep_fields.add(path);
  EXPECT_EQ(parser_.parse(deep, deep_fields, event_), ParseError::kTooDeep);
  EXPECT_EQ(parse_error_name(ParseError::kInvalidUtf8), "invalid_utf8");
}

// Depth is the event's, not the referenced paths': a value no rule reads nested 100,000
// deep is refused too (it would be stored, and its readers would recurse on it).
TEST_F(EventParserTest, DepthIsCheckedOverTheWholeEvent) {
  auto nested = [](size_t depth, const char* open, const char* close) {
    std::string s = R"({"flag":1,"x":)";
    for (size_t i = 0; i < depth; ++i) s += open;
    s += "1";
    for (size_t i = 0; i < depth; ++i) s += close;
    return s + "}";
  };
  EXPECT_EQ(parser_.parse(nested(100000, R"({"a":)", "}"), fields_, event_), ParseError::kTooDeep);
  EXPECT_EQ(parser_.parse(nested(100000, "[", "]"), fields_, event_), ParseError::kTooDeep);
  EXPECT_EQ(parser_.parse(nested(64, "[", "]"), fields_, event_),
            ParseError::kTooDeep);  // 65 with the root
  EXPECT_EQ(parser_.parse(nested(63, "[", "]"), fields_, event_), ParseError::kNone);
  // Brackets inside strings are text: many of them are no nesting.
  std::string brackets =
      R"({"flag":")" + std::string(5000, '{') + std::string(5000, '[') + R"(x\"["})";
  EXPECT_EQ(parser_.parse(brackets, fields_, event_), ParseError::kNone);
}

// Two objects back to back, and values that are no JSON where no rule reads them.
TEST_F(EventParserTest, TrailingDocumentsAndBareWordsAreMalformed) {
  EXPECT_EQ(parser_.parse(R"({"flag":1}{"flag":2})", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"flag":1} {})", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"flag":1} 7)", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"A":NaN})", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"A":Infinity,"flag":1})", fields_, event_),
            ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"flag":NaN})", fields_, event_), ParseError::kMalformedJson);
  EXPECT_EQ(parser_.parse(R"({"flag":1}  )", fields_, event_), ParseError::kNone);
}

// A key the rules read, twice in one object: ambiguous (which value would a SIEM show?), in
// either order, so refused; keys no rule reads, aliases and "*" children are not duplicates.
TEST(EventParser, DuplicateReadKeysAreAmbiguous) {
  FieldSet f;
  const uint32_t cmd = f.add("CommandLine");
  const uint32_t op = f.add("Event.EventData.Operation");
  ASSERT_TRUE(f.add_alias("Event.UserData.*.Operation", op));
  EventParser parser;
  Event event;
  EXPECT_EQ(
      parser.parse(R"({"CommandLine":"mimikatz sekurlsa","CommandLine":"notepad.exe"})", f, event),
      ParseError::kDuplicateKey);
  EXPECT_EQ(
      parser.parse(R"({"CommandLine":"notepad.exe","CommandLine":"mimikatz sekurlsa"})", f, event),
      ParseError::kDuplicateKey);
  EXPECT_EQ(
      parser.parse(
          R"({"Event":{"EventData":{"Operation":"a"}},"Event":{"EventData":{"Operation":"b"}}})", f,
          event),
      ParseError::kDuplicateKey);
  EXPECT_EQ(parse_error_name(ParseError::kDuplicateKey), "duplicate_key");
  ASSERT_EQ(parser.parse(R"({"Other":1,"Other":2,"CommandLine":"x"})", f, event),
            ParseError::kNone);
  EXPECT_EQ(event.field(cmd).text, "x");
  ASSERT_EQ(parser.parse(R"({"Event":{"UserData":{"A":{"Operation":"1"},"B":{"Operation":"2"}}}})",
                         f, event),
            ParseError::kNone);
  ASSERT_EQ(parser.parse(
                R"({"Event":{"EventData":{"Operation":"1"},"UserData":{"B":{"Operation":"2"}}}})",
                f, event),
            ParseError::kNone);
  // The next event with the key once is fine.
  ASSERT_EQ(parser.parse(R"({"CommandLine":"y"})", f, event), ParseError::kNone);
  EXPECT_EQ(event.field(cmd).text, "y");
}

// Found by tests/fuzz/event_parser_fuzz: a token that starts like null but is not one made
// the parser throw from an implicit simdjson_result conversion.
TEST_F(EventParserTest, BrokenLiteralsAreMalformedNotFatal) {
  FieldSet f;
  f.add("Channel");
  f.add("flag");
  for (const char* raw :
       {R"({"Channel":nnel"x"})", R"({"Channel":nul})", R"({"flag":tru})", R"({"flag":fals})",
        R"({"Channel":-})", R"({"Channel":1e})", R"({"Channel":"unterminated})"}) {
    EXPECT_EQ(parser_.parse(raw, f, event_), ParseError::kMalformedJson) << raw;
  }
}

TEST(FieldSet, WildcardSegmentsAndAliasesFillOneSlot) {
  FieldSet f;
  const uint32_t op = f.add("Event.EventData.Operation");
  ASSERT_TRUE(f.add_alias("Event.UserData.*.Operation", op));
  const uint32_t other = f.add("Event.EventData.Other");
  EXPECT_FALSE(f.add_alias("Event.EventData.Operation", other));  // already op's
  EXPECT_TRUE(f.add_alias("Event.UserData.*.Operation", op));     // idempotent
  EXPECT_EQ(f.find("Event.UserData.*.Operation"), static_cast<int32_t>(op));
  EventParser parser;
  Event event;
  ASSERT_EQ(
      parser.parse(
          R"({"Event":{"UserData":{"Operation_ClientFailure":{"Operation":"x::cleareventlog"}}}})",
          f, event),
      ParseError::kNone);
  EXPECT_EQ(event.field(op).text, "x::cleareventlog");
  ASSERT_EQ(
      parser.parse(R"({"Event":{"EventData":{"Operation":"direct"},"UserData":{"A":{"B":1}}}})", f,
                   event),
      ParseError::kNone);
  EXPECT_EQ(event.field(op).text, "direct");
}

TEST(FieldSet, SamePathSameSlot) {
  FieldSet f;
  EXPECT_EQ(f.add("a.b"), 0u);
  EXPECT_EQ(f.add("a.c"), 1u);
  EXPECT_EQ(f.add("a.b"), 0u);
  EXPECT_EQ(f.find("a.c"), 1);
  EXPECT_EQ(f.find("a"), -1);
  EXPECT_EQ(f.find("zzz"), -1);
  EXPECT_EQ(f.size(), 2u);
}

}  // namespace
}  // namespace vigil
