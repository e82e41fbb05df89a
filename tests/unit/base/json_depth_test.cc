// CheckJsonDepth: the limit is exact (64 passes, 65 fails, counting the top
// level), brackets inside strings do not count, escapes are honoured, and a
// 200,000-deep text is refused without recursion.
#include "common/base/json_depth.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/base/deep_json.h"

namespace distillery {
namespace {

TEST(JsonDepthTest, TheLimitIsSixtyFourLevelsCountingTheTop) {
  EXPECT_TRUE(CheckJsonDepth(testing::NestedArrays(kMaxJsonDepth)).ok());
  const absl::Status s = CheckJsonDepth(testing::NestedArrays(kMaxJsonDepth + 1));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "JSON nests deeper than 64 levels");
  EXPECT_TRUE(CheckJsonDepth(testing::NestedObjects(kMaxJsonDepth)).ok());
  EXPECT_FALSE(CheckJsonDepth(testing::NestedObjects(kMaxJsonDepth + 1)).ok());
}

TEST(JsonDepthTest, TwoHundredThousandLevelsAreRefused) {
  EXPECT_FALSE(CheckJsonDepth(testing::NestedArrays(200'000)).ok());
  EXPECT_FALSE(CheckJsonDepth(testing::NestedObjects(200'000)).ok());
}

TEST(JsonDepthTest, SiblingsDoNotAddUp) {
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += (i ? ",[[]]" : "[[]]");
  wide += "]";
  EXPECT_TRUE(CheckJsonDepth(wide, 3).ok());
  EXPECT_FALSE(CheckJsonDepth(wide, 2).ok());
}

TEST(JsonDepthTest, BracketsInStringsDoNotCount) {
  EXPECT_TRUE(CheckJsonDepth(R"({"a":"[[[[{{{{"})", 1).ok());
  // An escaped quote does not end the string; an escaped backslash does not
  // escape the quote after it.
  EXPECT_TRUE(CheckJsonDepth(R"({"a":"\"[[[["})", 1).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"a":"\\",[[[0]]]})", 3).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"a":"\\",[[[0]]]})", 4).ok());
}

TEST(JsonDepthTest, StrayClosersBuyNoDepth) {
  EXPECT_FALSE(CheckJsonDepth("]]]][[[", 2).ok());
  EXPECT_TRUE(CheckJsonDepth("", 0).ok());
  EXPECT_TRUE(CheckJsonDepth("42", 0).ok());
}

}  // namespace
}  // namespace distillery
