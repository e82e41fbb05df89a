// The per-request half of the curl client, without a network: header-line
// folding, request checks and curl code mapping.
#include "common/http/curl_easy_request.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery::curl_request {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

HttpHeaders Fold(std::initializer_list<std::string> lines) {
  HttpHeaders headers;
  for (const std::string& line : lines) AddHeaderLine(line, &headers);
  return headers;
}

TEST(AddHeaderLineTest, LowerCasesNamesAndTrimsValues) {
  EXPECT_THAT(
      Fold({"HTTP/1.1 200 OK\r\n", "Content-Type:  application/json \r\n",
            "X-RateLimit-Remaining-Requests: 7\r\n", "\r\n"}),
      ElementsAre(Pair("content-type", "application/json"),
                  Pair("x-ratelimit-remaining-requests", "7")));
}

TEST(AddHeaderLineTest, KeepsOnlyTheFinalResponsesHeaders) {
  EXPECT_THAT(
      Fold({"HTTP/1.1 100 Continue\r\n", "X-Early: 1\r\n", "\r\n",
            "HTTP/1.1 429 Too Many Requests\r\n", "Retry-After: 2\r\n"}),
      ElementsAre(Pair("retry-after", "2")));
}

TEST(AddHeaderLineTest, FoldedLinesContinueTheValue) {
  EXPECT_THAT(
      Fold({"HTTP/1.1 200 OK\r\n", "X-Long: part one\r\n", "   part two\r\n"}),
      ElementsAre(Pair("x-long", "part one part two")));
}

TEST(ValidateRequestTest, RefusesWhatCurlWouldSmuggle) {
  HttpRequest request;
  request.method = "POST";
  request.url = "http://127.0.0.1:1/v1/chat/completions?key=sk-secret";
  EXPECT_TRUE(ValidateRequest(request).ok());

  HttpRequest bad = request;
  bad.url = "ftp://127.0.0.1/x";
  EXPECT_EQ(ValidateRequest(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = request;
  bad.method = "POST /x";
  EXPECT_FALSE(ValidateRequest(bad).ok());
  bad = request;
  bad.headers = {{"X-Key", "sk-secret\r\nInjected: yes"}};
  absl::Status s = ValidateRequest(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("sk-secret")));
}

TEST(StatusFromCurlCodeTest, MapsToCanonicalCodes) {
  HttpRequest request;
  request.connect_timeout = std::chrono::milliseconds(250);
  EXPECT_EQ(StatusFromCurlCode(CURLE_URL_MALFORMAT, "", request).code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status timeout =
      StatusFromCurlCode(CURLE_OPERATION_TIMEDOUT, "after 250 ms", request);
  EXPECT_EQ(timeout.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(timeout.message()),
              HasSubstr("connect timeout (250 ms)"));
  EXPECT_EQ(StatusFromCurlCode(CURLE_RECV_ERROR, "", request).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromCurlCode(CURLE_FILESIZE_EXCEEDED, "", request).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace distillery::curl_request
