#include "common/teacher/http_failure.h"

#include <chrono>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

HttpResponse Response(int status, std::string body, HttpHeaders headers = {}) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  return response;
}

std::string OpenAiError(std::string_view code, std::string_view type = "x") {
  return "{\"error\":{\"message\":\"boom\",\"type\":\"" + std::string(type) +
         "\",\"param\":null,\"code\":\"" + std::string(code) + "\"}}";
}

struct Case {
  int status;
  std::string body;
  absl::StatusCode code;
  FailureKind kind;
  friend void PrintTo(const Case& c, std::ostream* os) {
    *os << "HTTP " << c.status << " " << c.body;
  }
};

class ClassifyHttpFailureTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(ClassifyHttpFailureTableTest, MapsStatusAndCode) {
  const Case& c = GetParam();
  TeacherResult result = ClassifyHttpFailure(Response(c.status, c.body), 0);
  EXPECT_EQ(result.status.code(), c.code) << result.status;
  EXPECT_EQ(result.kind, c.kind) << result.status;
  EXPECT_EQ(result.http_status, c.status);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("HTTP " + std::to_string(c.status)));
}

INSTANTIATE_TEST_SUITE_P(
    FailureRules, ClassifyHttpFailureTableTest,
    ::testing::Values(
        Case{429, OpenAiError("rate_limit_exceeded", "requests"),
             absl::StatusCode::kResourceExhausted, FailureKind::kRateLimited},
        Case{429, OpenAiError("something_new"),
             absl::StatusCode::kResourceExhausted, FailureKind::kRateLimited},
        Case{429, "", absl::StatusCode::kResourceExhausted,
             FailureKind::kRateLimited},
        Case{429, OpenAiError("insufficient_quota", "insufficient_quota"),
             absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown},
        Case{429, OpenAiError("credit_balance_exhausted"),
             absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown},
        Case{429, OpenAiError("organization_spend_limit_exceeded"),
             absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown},
        Case{429, OpenAiError("x", "insufficient_quota"),
             absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown},
        Case{401, OpenAiError("invalid_api_key"),
             absl::StatusCode::kUnauthenticated, FailureKind::kTeacherDown},
        Case{403, OpenAiError("unsupported_country_region_territory"),
             absl::StatusCode::kPermissionDenied, FailureKind::kTeacherDown},
        Case{402, "{\"error\":{\"message\":\"Insufficient Balance\"}}",
             absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown},
        Case{400, OpenAiError("invalid_request_error"),
             absl::StatusCode::kInvalidArgument, FailureKind::kPermanent},
        // A wrong base_url or model: every request gets it (issue 18).
        Case{404, OpenAiError("model_not_found"), absl::StatusCode::kNotFound,
             FailureKind::kTeacherDown},
        Case{404, "<html>Not Found</html>", absl::StatusCode::kNotFound,
             FailureKind::kTeacherDown},
        Case{422, "{\"detail\":[{\"msg\":\"field required\"}]}",
             absl::StatusCode::kInvalidArgument, FailureKind::kPermanent},
        Case{413, "", absl::StatusCode::kInvalidArgument,
             FailureKind::kPermanent},
        Case{400, OpenAiError("billing_hard_limit_reached"),
             absl::StatusCode::kFailedPrecondition, FailureKind::kTeacherDown},
        Case{408, "", absl::StatusCode::kUnavailable, FailureKind::kRetryable},
        Case{409, "", absl::StatusCode::kUnavailable, FailureKind::kRetryable},
        Case{500, OpenAiError("server_error"), absl::StatusCode::kUnavailable,
             FailureKind::kRetryable},
        Case{502, "<html>Bad Gateway</html>", absl::StatusCode::kUnavailable,
             FailureKind::kRetryable},
        Case{503,
             "{\"error\":{\"code\":503,\"message\":\"Loading model\","
             "\"type\":\"unavailable_error\"}}",
             absl::StatusCode::kUnavailable, FailureKind::kRetryable},
        Case{529,
             "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
             "\"message\":\"Overloaded\"}}",
             absl::StatusCode::kUnavailable, FailureKind::kRetryable},
        Case{301, "", absl::StatusCode::kFailedPrecondition,
             FailureKind::kTeacherDown}));

TEST(ClassifyHttpFailureTest, QuotesTheTeachersMessageCodeAndType) {
  TeacherResult result = ClassifyHttpFailure(
      Response(
          429,
          R"({"error":{"message":"Rate limit reached for gpt-4o-mini",)"
          R"("type":"requests","param":null,"code":"rate_limit_exceeded"}})"),
      0);
  const std::string message(result.status.message());
  EXPECT_THAT(message, HasSubstr("Rate limit reached for gpt-4o-mini"));
  EXPECT_THAT(message, HasSubstr("rate_limit_exceeded"));
  EXPECT_THAT(message, HasSubstr("requests"));
}

TEST(ClassifyHttpFailureTest, QuotesAnExcerptOfANonJsonBody) {
  TeacherResult result =
      ClassifyHttpFailure(Response(502, "<html>\nBad Gateway\n</html>"), 0);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("<html> Bad Gateway </html>"));
}

TEST(ClassifyHttpFailureTest, CutsLongBodies) {
  TeacherResult result =
      ClassifyHttpFailure(Response(500, std::string(100000, 'x')), 0);
  EXPECT_LT(result.status.message().size(), 1000u);
}

TEST(ClassifyHttpFailureTest, RedirectNamesTheLocation) {
  TeacherResult result = ClassifyHttpFailure(
      Response(301, "", {{"location", "https://api.example.com/v1/x"}}), 0);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("https://api.example.com/v1/x"));
}

TEST(ClassifyHttpFailureTest, ShouldRetryFalseMakesRetryablePermanent) {
  TeacherResult result =
      ClassifyHttpFailure(Response(500, "", {{"x-should-retry", "false"}}), 0);
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("x-should-retry"));

  result = ClassifyHttpFailure(Response(429, OpenAiError("rate_limit_exceeded"),
                                        {{"x-should-retry", "False"}}),
                               0);
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
}

TEST(ClassifyHttpFailureTest, ShouldRetryTrueMakesPermanentRetryable) {
  TeacherResult result =
      ClassifyHttpFailure(Response(400, OpenAiError("invalid_request_error"),
                                   {{"x-should-retry", "true"}}),
                          0);
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
  result =
      ClassifyHttpFailure(Response(409, "", {{"x-should-retry", "true"}}), 0);
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
}

TEST(ClassifyHttpFailureTest, ShouldRetryTrueDoesNotReviveADeadKey) {
  TeacherResult result =
      ClassifyHttpFailure(Response(401, OpenAiError("invalid_api_key"),
                                   {{"x-should-retry", "true"}}),
                          0);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
}

TEST(ClassifyHttpFailureTest, ShouldRetryGarbageIsIgnored) {
  TeacherResult result =
      ClassifyHttpFailure(Response(503, "", {{"x-should-retry", "maybe"}}), 0);
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
}

TEST(ClassifyHttpFailureTest, ReadsRetryAfterHeaders) {
  TeacherResult result = ClassifyHttpFailure(
      Response(429, "", {{"retry-after-ms", "1500"}, {"retry-after", "9"}}), 0);
  ASSERT_TRUE(result.retry_after.has_value());
  EXPECT_EQ(*result.retry_after, Duration(std::chrono::milliseconds(1500)));

  result = ClassifyHttpFailure(Response(503, "", {{"retry-after", "3"}}), 0);
  ASSERT_TRUE(result.retry_after.has_value());
  EXPECT_EQ(*result.retry_after, Duration(std::chrono::seconds(3)));

  result = ClassifyHttpFailure(
      Response(503, "", {{"retry-after", "Thu, 01 Jan 1970 00:00:10 GMT"}}),
      4000);
  ASSERT_TRUE(result.retry_after.has_value());
  EXPECT_EQ(*result.retry_after, Duration(std::chrono::seconds(6)));

  result = ClassifyHttpFailure(Response(503, "", {{"retry-after", "soon"}}), 0);
  EXPECT_FALSE(result.retry_after.has_value());
}

TEST(ParseTeacherErrorBodyTest, Shapes) {
  TeacherErrorBody e = ParseTeacherErrorBody(OpenAiError("c1", "t1"));
  EXPECT_TRUE(e.found);
  EXPECT_EQ(e.message, "boom");
  EXPECT_EQ(e.code, "c1");
  EXPECT_EQ(e.type, "t1");

  e = ParseTeacherErrorBody(R"({"error":"model 'x' not found"})");
  EXPECT_TRUE(e.found);
  EXPECT_EQ(e.message, "model 'x' not found");

  e = ParseTeacherErrorBody(
      R"({"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400})");
  EXPECT_TRUE(e.found);
  EXPECT_EQ(e.message, "bad");
  EXPECT_EQ(e.code, "400");

  e = ParseTeacherErrorBody(R"({"detail":"Not Found"})");
  EXPECT_TRUE(e.found);
  EXPECT_EQ(e.message, "Not Found");

  EXPECT_FALSE(ParseTeacherErrorBody("").found);
  EXPECT_FALSE(ParseTeacherErrorBody("<html>").found);
  EXPECT_FALSE(ParseTeacherErrorBody(R"({"error":null})").found);
  EXPECT_FALSE(ParseTeacherErrorBody("[1,2]").found);
}

TEST(TeacherErrorResultTest, ErrorInsideA200) {
  // Classified by its embedded numeric status when it has one...
  TeacherResult result = TeacherErrorResult(
      200, ParseTeacherErrorBody(R"({"error":{"message":"x","code":401}})"),
      "");
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_EQ(result.http_status, 200);
  // ...by its code otherwise...
  result = TeacherErrorResult(
      200, ParseTeacherErrorBody(OpenAiError("insufficient_quota")), "");
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  result = TeacherErrorResult(
      200, ParseTeacherErrorBody(OpenAiError("rate_limit_exceeded")), "");
  EXPECT_EQ(result.kind, FailureKind::kRateLimited);
  // ...and is retryable when nothing says more.
  result = TeacherErrorResult(
      200, ParseTeacherErrorBody(OpenAiError("server_error")), "");
  EXPECT_EQ(result.kind, FailureKind::kRetryable);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status.message()), HasSubstr("boom"));
}

TEST(ClassifyTransportErrorTest, InvalidArgumentIsPermanentRestRetryable) {
  TeacherResult result =
      ClassifyTransportError(absl::InvalidArgumentError("bad URL"));
  EXPECT_EQ(result.kind, FailureKind::kPermanent);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.http_status, 0);

  for (const absl::Status& s :
       {absl::UnavailableError("connection reset"),
        absl::DeadlineExceededError("idle timeout"),
        absl::ResourceExhaustedError("body over 16 MiB")}) {
    result = ClassifyTransportError(s);
    EXPECT_EQ(result.kind, FailureKind::kRetryable) << s;
    EXPECT_EQ(result.status.code(), s.code());
    EXPECT_THAT(std::string(result.status.message()),
                HasSubstr(std::string(s.message())));
  }
}

TEST(ClassifyTransportErrorTest, AnUnreachableTeacherIsDown) {
  // Refused or no such host: the teacher is not there; pause it with the
  // reason rather than dead-letter every task in seconds.
  const absl::Status refused = UnreachableError(
      "Couldn't connect to server: Failed to connect to 127.0.0.1 port 9");
  TeacherResult result = ClassifyTransportError(refused);
  EXPECT_EQ(result.kind, FailureKind::kTeacherDown);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("teacher unreachable"));
  EXPECT_THAT(std::string(result.status.message()),
              HasSubstr("127.0.0.1 port 9"));
  // A plain UNAVAILABLE (reset mid-way) stays retryable.
  EXPECT_FALSE(IsUnreachable(absl::UnavailableError("connection reset")));
}

}  // namespace
}  // namespace distillery
