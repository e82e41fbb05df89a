#include "common/http/fake_http_client.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

HttpRequest Post(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  r.body = "{}";
  return r;
}

TEST(FakeHttpClientTest, AnswersFromScriptInOrderThenHandler) {
  FakeHttpClient fake;
  fake.EnqueueResponse(429, "slow down", {{"Retry-After", "3"}});
  fake.Enqueue(absl::UnavailableError("reset"));
  fake.SetHandler([](const HttpRequest& r) -> absl::StatusOr<HttpResponse> {
    HttpResponse response;
    response.status = 200;
    response.body = r.url;
    return response;
  });

  std::vector<absl::StatusOr<HttpResponse>> got;
  for (const char* url : {"http://a/1", "http://a/2", "http://a/3"}) {
    fake.Send(Post(url), [&](absl::StatusOr<HttpResponse> r) {
      got.push_back(std::move(r));
    });
  }
  ASSERT_EQ(got.size(), 3u);
  ASSERT_TRUE(got[0].ok());
  EXPECT_EQ(got[0]->status, 429);
  EXPECT_EQ(got[0]->Header("retry-after"), "3");  // lower-cased
  EXPECT_EQ(got[1].status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(got[2].ok());
  EXPECT_EQ(got[2]->body, "http://a/3");

  ASSERT_EQ(fake.request_count(), 3u);
  EXPECT_EQ(fake.requests()[0].url, "http://a/1");
  EXPECT_EQ(fake.last_request().url, "http://a/3");
  EXPECT_EQ(fake.last_request().body, "{}");
}

TEST(FakeHttpClientTest, UnscriptedRequestFailsLoudly) {
  FakeHttpClient fake;
  std::optional<absl::StatusOr<HttpResponse>> got;
  fake.Send(Post("http://a/x"),
            [&](absl::StatusOr<HttpResponse> r) { got = r; });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(got->status().message(), HasSubstr("http://a/x"));
}

TEST(FakeHttpClientTest, DeferredModeHoldsCallbacksUntilRunPending) {
  FakeHttpClient fake;
  fake.set_deferred(true);
  fake.EnqueueResponse(200, "one");
  fake.EnqueueResponse(200, "two");
  std::vector<std::string> bodies;
  fake.Send(Post("http://a/1"), [&](absl::StatusOr<HttpResponse> r) {
    bodies.push_back(r->body);
    // A callback that sends again is answered in the same RunPending.
    fake.Send(Post("http://a/2"), [&](absl::StatusOr<HttpResponse> r2) {
      bodies.push_back(r2->body);
    });
  });
  EXPECT_TRUE(bodies.empty());
  EXPECT_EQ(fake.pending(), 1u);
  EXPECT_EQ(fake.RunPending(), 2u);
  EXPECT_EQ(bodies, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(fake.pending(), 0u);
}

}  // namespace
}  // namespace distillery
