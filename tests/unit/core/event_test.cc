#include "vigil/core/event.h"

#include <gtest/gtest.h>

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
  ASSERT_EQ(parser_.parse(R"({"Event":{"EventData":{"Image\"":"quoted","Imag":"short"}}})", fields_, event_),
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
  ASSERT_EQ(parser.parse(R"({"p19":{"k99":"last","k5":"five"},"p3":{"k0":0}})", f, event), ParseError::kNone);
  EXPECT_EQ(event.field(slots[1999]).text, "last");
  EXPECT_EQ(event.field(slots[1905]).text, "five");
  EXPECT_EQ(event.field(slots[300]).text, "0");
  EXPECT_EQ(event.field(slots[0]).type, ValueType::kMissing);
}

TEST_F(EventParserTest, MissingAndWronglyShapedPathsAreAbsent) {
  ASSERT_EQ(parser_.parse(R"({"Event":{"System":"flat"},"other":1})", fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(id_).type, ValueType::kMissing);
  EXPECT_EQ(event_.field(image_).type, ValueType::kMissing);
}

TEST_F(EventParserTest, ValuesDoNotLeakBetweenEvents) {
  ASSERT_EQ(parser_.parse(R"({"flag":false})", fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(flag_).text, "false");
  ASSERT_EQ(parser_.parse(R"({"nothing":1})", fields_, event_), ParseError::kNone);
  EXPECT_EQ(event_.field(flag_).type, ValueType::kMissing);
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
  EXPECT_EQ(parser_.parse("{\"skipped\":\"\xed\xa0\x80\",\"flag\":1}", fields_, event_), ParseError::kInvalidUtf8);
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

// Found by tests/fuzz/event_parser_fuzz: a token that starts like null but is not one made
// the parser throw from an implicit simdjson_result conversion.
TEST_F(EventParserTest, BrokenLiteralsAreMalformedNotFatal) {
  FieldSet f;
  f.add("Channel");
  f.add("flag");
  for (const char* raw : {R"({"Channel":nnel"x"})", R"({"Channel":nul})", R"({"flag":tru})", R"({"flag":fals})",
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
  ASSERT_EQ(parser.parse(R"({"Event":{"UserData":{"Operation_ClientFailure":{"Operation":"x::cleareventlog"}}}})", f, event),
            ParseError::kNone);
  EXPECT_EQ(event.field(op).text, "x::cleareventlog");
  ASSERT_EQ(parser.parse(R"({"Event":{"EventData":{"Operation":"direct"},"UserData":{"A":{"B":1}}}})", f, event),
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
