// Tests of teacher-sim's JSON writer: structure and separators, and that
// strings are escaped, checked by parsing the output with nlohmann.
#include "services/teacher_sim/json_writer.h"

#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

// Escaping itself is common/base/json_string's, tested there; here, that
// keys and values go through it.
std::string Quote(std::string_view s) {
  JsonWriter w;
  w.String(s);
  return w.Release();
}

TEST(SimJsonStringTest, ValuesAreEscapedAndInvalidUtf8Replaced) {
  EXPECT_EQ(Quote("say \"hi\"\n"), R"("say \"hi\"\n")");
  EXPECT_EQ(Quote(std::string("a\0b", 3)), R"("a\u0000b")");
  // One U+FFFD per maximal invalid subpart, as nlohmann writes it.
  EXPECT_EQ(Quote("a\xFF" "b"), "\"a\xEF\xBF\xBD" "b\"");
  EXPECT_EQ(Quote("\xE4\xB8"), "\"\xEF\xBF\xBD\"");
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
