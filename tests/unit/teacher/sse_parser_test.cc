#include "common/teacher/sse_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace distillery {
namespace {

std::vector<SseEvent> FeedInPieces(std::string_view body, size_t piece,
                                   bool* truncated = nullptr) {
  SseParser parser;
  std::vector<SseEvent> events;
  for (size_t i = 0; i < body.size(); i += piece) {
    parser.Feed(body.substr(i, piece), &events);
  }
  const bool unfinished = parser.Finish();
  if (truncated != nullptr) *truncated = unfinished;
  return events;
}

TEST(SseParserTest, DataLinesAndDone) {
  bool truncated = true;
  auto events = ParseSseStream(
      "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n", &truncated);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].data, "{\"a\":1}");
  EXPECT_EQ(events[0].event, "");
  EXPECT_EQ(events[1].data, "{\"b\":2}");
  EXPECT_EQ(events[2].data, "[DONE]");
  EXPECT_FALSE(truncated);
}

TEST(SseParserTest, EventNamesAsAnthropicSendsThem) {
  auto events = ParseSseStream(
      "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
      "event: ping\ndata: {\"type\": \"ping\"}\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "message_start");
  EXPECT_EQ(events[1].event, "ping");
  EXPECT_EQ(events[1].data, "{\"type\": \"ping\"}");
}

TEST(SseParserTest, CommentsAreKeepAlivesAndSkipped) {
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed(": keep-alive\n\n: keep-alive\n\ndata: x\n\n", &events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
  EXPECT_EQ(parser.comments(), 2u);
  EXPECT_FALSE(parser.Finish());
}

TEST(SseParserTest, CrLfAndLoneCr) {
  auto crlf = ParseSseStream("event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n");
  ASSERT_EQ(crlf.size(), 2u);
  EXPECT_EQ(crlf[0].event, "a");
  EXPECT_EQ(crlf[0].data, "1");
  EXPECT_EQ(crlf[1].data, "2");
  auto cr = ParseSseStream("data: 1\r\rdata: 2\r\r");
  ASSERT_EQ(cr.size(), 2u);
  EXPECT_EQ(cr[1].data, "2");
}

TEST(SseParserTest, CrLfSplitAcrossFeedsIsOneLineEnd) {
  const std::string body = "data: 1\r\n\r\ndata: 2\r\n\r\n: c\r\ndata: 3\r\n\r\n";
  for (size_t piece = 1; piece <= body.size(); ++piece) {
    bool truncated = true;
    auto events = FeedInPieces(body, piece, &truncated);
    ASSERT_EQ(events.size(), 3u) << "piece " << piece;
    EXPECT_EQ(events[0].data, "1");
    EXPECT_EQ(events[1].data, "2");
    EXPECT_EQ(events[2].data, "3");
    EXPECT_FALSE(truncated);
  }
}

TEST(SseParserTest, MultiLineDataIsJoinedWithNewlines) {
  auto events = ParseSseStream("data: first\ndata:second\ndata:  third\n\n");
  ASSERT_EQ(events.size(), 1u);
  // One optional space after the colon is removed, no more.
  EXPECT_EQ(events[0].data, "first\nsecond\n third");
}

TEST(SseParserTest, EmptyDataAndFieldWithoutColon) {
  auto events = ParseSseStream("data\n\ndata:\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, "");
  EXPECT_EQ(events[1].data, "");
}

TEST(SseParserTest, EventWithoutDataIsDropped) {
  auto events = ParseSseStream("event: ping\n\nid: 7\n\ndata: x\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "");  // the event name does not leak
  EXPECT_EQ(events[0].id, "7");    // the last id does carry over
}

TEST(SseParserTest, UnknownFieldsAndRetryIgnored) {
  auto events = ParseSseStream("retry: 1000\nfoo: bar\ndata: x\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
}

TEST(SseParserTest, UnterminatedEventIsReportedAndDropped) {
  bool truncated = false;
  auto events = ParseSseStream("data: 1\n\ndata: {\"partial", &truncated);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(truncated);
  events = ParseSseStream("data: 1\n\ndata: 2\n", &truncated);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(truncated);
}

TEST(SseParserTest, ByteOrderMarkAtStartIsSkipped) {
  const std::string body = "\xEF\xBB\xBF" "data: x\n\n";
  for (size_t piece = 1; piece <= body.size(); ++piece) {
    auto events = FeedInPieces(body, piece);
    ASSERT_EQ(events.size(), 1u) << piece;
    EXPECT_EQ(events[0].data, "x");
  }
}

TEST(SseParserTest, ShortStreamThatLooksLikeABomStart) {
  bool truncated = false;
  auto events = ParseSseStream("\xEF", &truncated);
  EXPECT_TRUE(events.empty());
  EXPECT_TRUE(truncated);
}

TEST(SseParserTest, PiecewiseFeedingMatchesWholeFeeding) {
  const std::string body =
      "event: message_start\ndata: {\"a\":\n data: 1}\n\n: ping\n"
      "data: [DONE]\n\n";
  auto whole = ParseSseStream(body);
  for (size_t piece = 1; piece < body.size(); ++piece) {
    auto parts = FeedInPieces(body, piece);
    ASSERT_EQ(parts.size(), whole.size());
    for (size_t i = 0; i < parts.size(); ++i) {
      EXPECT_EQ(parts[i].data, whole[i].data);
      EXPECT_EQ(parts[i].event, whole[i].event);
    }
  }
}

}  // namespace
}  // namespace distillery
