#include "common/base/logging.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace distillery {
namespace {

TEST(JsonLogLineTest, AnyMessageGivesOneValidJsonObject) {
  const std::string message =
      "quote \" backslash \\ newline \n tab \t bell \x07 bad \xC3\x28 ok \xC3\xA9";
  const std::string line = JsonLogLine(1700000000123, "info", "worker", message);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("time"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j.at("level"), "info");
  EXPECT_EQ(j.at("program"), "worker");
  EXPECT_EQ(j.at("message"),
            "quote \" backslash \\ newline \n tab \t bell \x07 bad "
            "\xEF\xBF\xBD( ok \xC3\xA9");
}

TEST(JsonEscapeTest, EscapesControlsAndReplacesInvalidUtf8) {
  EXPECT_EQ(JsonEscape("a\"b"), "a\\\"b");
  EXPECT_EQ(JsonEscape(std::string("\0\x1f", 2)), "\\u0000\\u001f");
  EXPECT_EQ(JsonEscape("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");  // emoji kept
  EXPECT_EQ(JsonEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // A truncated sequence is one maximal invalid subpart: one U+FFFD, as
  // nlohmann writes it.
  EXPECT_EQ(JsonEscape("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(JsonEscape("\b\f\x7f/"), "\\b\\f\x7f/");
}

}  // namespace
}  // namespace distillery
