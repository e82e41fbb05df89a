// Tests of teacher-sim's own JSON writer: escaping, UTF-8 handling and
// structure, checked by parsing the output with an independent parser.
#include "services/teacher_sim/json_writer.h"

#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

TEST(SimJsonStringTest, EscapesQuoteBackslashAndShortForms) {
  EXPECT_EQ(Quote("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(Quote("a\\b"), R"("a\\b")");
  EXPECT_EQ(Quote("l1\nl2\r\tx\b\f"), R"("l1\nl2\r\tx\b\f")");
  EXPECT_EQ(Quote("/"), R"("/")");
  EXPECT_EQ(Quote(""), R"("")");
}

TEST(SimJsonStringTest, EscapesOtherControlCharactersAsUnicode) {
  EXPECT_EQ(Quote(std::string("\x01", 1)), R"("\u0001")");
  EXPECT_EQ(Quote(std::string("\x1f", 1)), R"("\u001f")");
  EXPECT_EQ(Quote(std::string("a\0b", 3)), R"("a\u0000b")");
  // DEL is not a control character for JSON.
  EXPECT_EQ(Quote("\x7f"), "\"\x7f\"");
}

TEST(SimJsonStringTest, PassesValidUtf8Through) {
  const std::string text =
      "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x89";
  EXPECT_EQ(Quote(text), "\"" + text + "\"");
}

TEST(SimJsonStringTest, ReplacesInvalidUtf8) {
  EXPECT_EQ(Quote("a\xFF"
                  "b"),
            R"("a\ufffdb")");
  // A sequence cut short, an overlong '/', and a UTF-16 surrogate.
  EXPECT_EQ(Quote("\xE4\xB8"), R"("\ufffd\ufffd")");
  EXPECT_EQ(Quote("\xC0\xAF"), R"("\ufffd\ufffd")");
  EXPECT_EQ(Quote("\xED\xA0\x80"), R"("\ufffd\ufffd\ufffd")");
  EXPECT_EQ(Quote("\xF4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");
}

TEST(SimJsonStringTest, EveryAsciiCharacterRoundTripsThroughAParser) {
  std::string all;
  for (int c = 0; c < 128; ++c) all.push_back(static_cast<char>(c));
  all += "\xE2\x82\xAC\xF0\x9F\x98\x80";  // euro sign, emoji
  JsonWriter w;
  w.BeginObject().Key("s").String(all).EndObject();
  const auto parsed = nlohmann::json::parse(w.str());
  EXPECT_EQ(parsed.at("s").get<std::string>(), all);
}

TEST(SimJsonWriterTest, WritesNestedStructureWithSeparators) {
  JsonWriter w;
  w.BeginObject();
  w.Key("a").Int(1);
  w.Key("b").BeginArray().Int(1).String("x").Null().Bool(true).Bool(false);
  w.BeginObject().EndObject().BeginArray().EndArray().EndArray();
  w.Key("c").BeginObject().Key("d").Double(0.5).EndObject();
  w.EndObject();
  EXPECT_EQ(w.str(),
            R"({"a":1,"b":[1,"x",null,true,false,{},[]],"c":{"d":0.5}})");
  EXPECT_NO_THROW(nlohmann::json::parse(w.str()));
}

TEST(SimJsonWriterTest, WritesIntegerExtremesAndNonFiniteDoublesAsNull) {
  JsonWriter w;
  w.BeginArray()
      .Int(std::numeric_limits<int64_t>::min())
      .Int(std::numeric_limits<int64_t>::max())
      .Double(std::nan(""))
      .Double(std::numeric_limits<double>::infinity())
      .Double(1e300)
      .EndArray();
  EXPECT_EQ(w.str(),
            "[-9223372036854775808,9223372036854775807,null,null,1e+300]");
  const auto parsed = nlohmann::json::parse(w.str());
  EXPECT_EQ(parsed[0].get<int64_t>(), std::numeric_limits<int64_t>::min());
}

TEST(SimJsonWriterTest, EscapesKeys) {
  JsonWriter w;
  w.BeginObject().Key("k\"\n").Int(1).EndObject();
  EXPECT_EQ(w.str(), R"({"k\"\n":1})");
}

}  // namespace
}  // namespace distillery::teacher_sim
