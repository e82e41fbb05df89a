#include "common/teacher/retry_after.h"

#include <chrono>
#include <optional>

#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// 2015-10-21T07:28:00Z.
constexpr int64_t kDateMillis = 1445412480000;

TEST(ParseRetryAfterMsTest, ReadsIntegerAndFloatMilliseconds) {
  EXPECT_EQ(ParseRetryAfterMs("250"), Duration(milliseconds(250)));
  EXPECT_EQ(ParseRetryAfterMs("1.5"),
            Duration(std::chrono::microseconds(1500)));
  EXPECT_EQ(ParseRetryAfterMs(" 20.0 "), Duration(milliseconds(20)));
  EXPECT_EQ(ParseRetryAfterMs("0"), Duration(0));
}

TEST(ParseRetryAfterMsTest, RejectsGarbageAndNegatives) {
  EXPECT_EQ(ParseRetryAfterMs(""), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("-5"), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("abc"), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("12ms"), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("inf"), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("nan"), std::nullopt);
  EXPECT_EQ(ParseRetryAfterMs("1 2"), std::nullopt);
}

TEST(ParseRetryAfterSecondsTest, ReadsIntegerAndFloatSeconds) {
  EXPECT_EQ(ParseRetryAfterSeconds("20", 0), Duration(seconds(20)));
  EXPECT_EQ(ParseRetryAfterSeconds("0.5", 0), Duration(milliseconds(500)));
  EXPECT_EQ(ParseRetryAfterSeconds("2.25", 0), Duration(milliseconds(2250)));
}

TEST(ParseRetryAfterSecondsTest, ClampsHugeValues) {
  EXPECT_EQ(ParseRetryAfterSeconds("1e300", 0), kMaxRetryAfter);
  EXPECT_EQ(ParseRetryAfterMs("99999999999999999999"), kMaxRetryAfter);
}

TEST(ParseRetryAfterSecondsTest, ReadsHttpDateRelativeToNow) {
  const int64_t now = kDateMillis - 30'000;
  EXPECT_EQ(ParseRetryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Duration(seconds(30)));
  // RFC 850 and asctime forms.
  EXPECT_EQ(ParseRetryAfterSeconds("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Duration(seconds(30)));
  EXPECT_EQ(ParseRetryAfterSeconds("Wed Oct 21 07:28:00 2015", now),
            Duration(seconds(30)));
}

TEST(ParseRetryAfterSecondsTest, DateInThePastIsZero) {
  EXPECT_EQ(ParseRetryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT",
                                   kDateMillis + 5000),
            Duration(0));
}

TEST(ParseRetryAfterSecondsTest, RejectsGarbageAndNegatives) {
  EXPECT_EQ(ParseRetryAfterSeconds("", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("-1", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("-0.5", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("soon", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("10s", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("Wed, 32 Oct 2015 07:28:00 GMT", 0),
            std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("Wed, 21 Foo 2015 07:28:00 GMT", 0),
            std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("Wed, 21 Oct 2015 25:28:00 GMT", 0),
            std::nullopt);
  EXPECT_EQ(ParseRetryAfterSeconds("Wed, 21 Oct 2015", 0), std::nullopt);
}

TEST(ParseHttpDateTest, KnownInstants) {
  EXPECT_EQ(ParseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777000);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777000);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777000);
  EXPECT_EQ(ParseHttpDate("Thu, 29 Feb 2024 12:00:00 GMT"), 1709208000000);
  EXPECT_EQ(ParseHttpDate("Fri, 29 Feb 2023 12:00:00 GMT"), std::nullopt);
  // RFC 850's two-digit years as absl::ParseTime's %y reads them: 69-99 in
  // the 1900s, 00-68 in the 2000s.
  EXPECT_EQ(ParseHttpDate("Thursday, 01-Jan-70 00:00:00 GMT"), 0);
  EXPECT_EQ(ParseHttpDate("Sunday, 01-Jan-68 00:00:00 GMT"), 3092601600000);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37"), std::nullopt);
}

TEST(ParseRetryAfterTest, MillisecondsHeaderWins) {
  EXPECT_EQ(ParseRetryAfter("1500.5", "7", 0),
            Duration(std::chrono::microseconds(1'500'500)));
}

TEST(ParseRetryAfterTest, FallsBackToSecondsWhenMillisecondsAbsentOrBad) {
  EXPECT_EQ(ParseRetryAfter("", "7", 0), Duration(seconds(7)));
  EXPECT_EQ(ParseRetryAfter("garbage", "7", 0), Duration(seconds(7)));
  EXPECT_EQ(ParseRetryAfter("-3", "7", 0), Duration(seconds(7)));
}

TEST(ParseRetryAfterTest, NeitherHeaderUsable) {
  EXPECT_EQ(ParseRetryAfter("", "", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("x", "y", 0), std::nullopt);
}

}  // namespace
}  // namespace distillery
