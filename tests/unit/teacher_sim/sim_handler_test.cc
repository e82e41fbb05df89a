// Tests of teacher-sim's request handling without the network: routing,
// auth, injected faults, latency, headers and stats.
#include "services/teacher_sim/sim_handler.h"

#include <deque>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Json = nlohmann::json;

constexpr char kChatBody[] =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]})";

// Plays back a script of faults, then none. Thread-safe.
class ScriptedFaults : public FaultInjector {
 public:
  void Add(FaultKind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(kind);
  }
  FaultKind Next() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (script_.empty()) return FaultKind::kNone;
    FaultKind k = script_.front();
    script_.pop_front();
    return k;
  }

 private:
  std::mutex mu_;
  std::deque<FaultKind> script_ ABSL_GUARDED_BY(mu_);
};

SimRequest Post(std::string target, std::string body, SimHeaders headers = {}) {
  return SimRequest{"POST", std::move(target), std::move(headers),
                    std::move(body)};
}

SimRequest Get(std::string target) { return SimRequest{"GET", target, {}, ""}; }

class SimHandlerTest : public ::testing::Test {
 protected:
  SimHandler& MakeHandler(SimHandlerOptions options = {}) {
    handler_ = std::make_unique<SimHandler>(options, clock_, &faults_);
    return *handler_;
  }

  FakeClock clock_;
  ScriptedFaults faults_;
  std::unique_ptr<SimHandler> handler_;
};

TEST_F(SimHandlerTest, AnswersAChatCompletion) {
  SimHandler& h = MakeHandler();
  const SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("x-ratelimit-limit-requests"), "10000");
  EXPECT_EQ(r.Header("x-ratelimit-remaining-requests"), "9999");
  EXPECT_EQ(r.Header("x-ratelimit-reset-requests"), "6ms");
  EXPECT_EQ(r.Header("x-ratelimit-limit-tokens"), "2000000");
  EXPECT_THAT(std::string(r.Header("x-request-id")), StartsWith("req_"));
  EXPECT_EQ(r.delay, Duration::zero());

  const Json j = Json::parse(r.body);
  EXPECT_THAT(j.at("id").get<std::string>(), StartsWith("chatcmpl-"));
  EXPECT_EQ(j.at("created"), clock_.WallMillis() / 1000);
  EXPECT_EQ(j.at("model"), "gpt-4o-mini");
  EXPECT_THAT(j["choices"][0]["message"]["content"].get<std::string>(),
              HasSubstr("\"Hello there\""));
}

TEST_F(SimHandlerTest, SameRequestSameAnswerButFreshIds) {
  SimHandler& h = MakeHandler();
  const SimResponse a = h.Handle(Post("/v1/chat/completions", kChatBody));
  const SimResponse b = h.Handle(Post("/v1/chat/completions", kChatBody));
  const Json ja = Json::parse(a.body), jb = Json::parse(b.body);
  EXPECT_EQ(ja["choices"], jb["choices"]);
  EXPECT_NE(ja["id"], jb["id"]);
  EXPECT_NE(a.Header("x-request-id"), b.Header("x-request-id"));
}

TEST_F(SimHandlerTest, BadBodyIs400NamingTheProblem) {
  SimHandler& h = MakeHandler();
  SimResponse r = h.Handle(Post("/v1/chat/completions", "{oops"));
  ASSERT_EQ(r.status, 400);
  Json e = Json::parse(r.body).at("error");
  EXPECT_THAT(e.at("message").get<std::string>(),
              HasSubstr("could not parse the JSON body"));
  EXPECT_EQ(e.at("type"), "invalid_request_error");
  EXPECT_TRUE(e.at("param").is_null());
  EXPECT_EQ(e.at("code"), "invalid_json");

  r = h.Handle(Post("/v1/chat/completions", R"({"messages":[]})"));
  ASSERT_EQ(r.status, 400);
  e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("param"), "model");
  EXPECT_EQ(r.delay, Duration::zero());
  EXPECT_EQ(r.Header("x-ratelimit-limit-requests"), "10000");
}

TEST_F(SimHandlerTest, ModelOutsideTheListIs404ModelNotFoundInEachApi) {
  SimHandlerOptions options;
  options.models = {"sim-chat", "claude-sim"};
  SimHandler& h = MakeHandler(options);
  SimResponse r = h.Handle(Post(
      "/v1/chat/completions",
      R"({"model":"sim-caht","messages":[{"role":"user","content":"Hi"}]})"));
  ASSERT_EQ(r.status, 404);
  Json e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("code"), "model_not_found");
  EXPECT_EQ(e.at("type"), "invalid_request_error");
  EXPECT_THAT(e.at("message").get<std::string>(), HasSubstr("`sim-caht`"));
  r = h.Handle(Post(
      "/v1/chat/completions",
      R"({"model":"sim-chat","messages":[{"role":"user","content":"Hi"}]})"));
  EXPECT_EQ(r.status, 200);

  const SimHeaders anthropic = {{"anthropic-version", "2023-06-01"}};
  const std::string body =
      R"({"model":"claude-typo","max_tokens":50,"messages":[{"role":"user","content":"Hi"}]})";
  r = h.Handle(Post("/v1/messages", body, anthropic));
  ASSERT_EQ(r.status, 404);
  Json a = Json::parse(r.body);
  EXPECT_EQ(a.at("error").at("type"), "not_found_error");
  EXPECT_THAT(a.at("error").at("message").get<std::string>(),
              HasSubstr("claude-typo"));
  r = h.Handle(Post("/v1/messages",
                    R"({"model":"claude-sim","max_tokens":50,"messages":[{"role":"user","content":"Hi"}]})",
                    anthropic));
  EXPECT_EQ(r.status, 200);
}

TEST_F(SimHandlerTest, AnEmptyModelListServesAnyModel) {
  SimHandler& h = MakeHandler();
  EXPECT_EQ(h.Handle(Post("/v1/chat/completions", kChatBody)).status, 200);
}

TEST_F(SimHandlerTest, UnknownPathIs404AndWrongMethodIs405) {
  SimHandler& h = MakeHandler();
  SimResponse r = h.Handle(Post("/v1/completions", kChatBody));
  EXPECT_EQ(r.status, 404);
  Json e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("message"), "Invalid URL (POST /v1/completions)");
  EXPECT_EQ(e.at("type"), "invalid_request_error");

  r = h.Handle(Get("/v1/chat/completions"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "POST");
  EXPECT_THAT(Json::parse(r.body)["error"]["message"].get<std::string>(),
              HasSubstr("Method GET is not allowed"));

  r = h.Handle(Post("/health", ""));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "GET");
}

TEST_F(SimHandlerTest, HealthAnswersOkAndIgnoresTheQuery) {
  SimHandler& h = MakeHandler();
  const SimResponse r = h.Handle(Get("/health?probe=1"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"ok"})");
  EXPECT_EQ(r.Header("content-type"), "application/json");
}

TEST_F(SimHandlerTest, RequiresTheConfiguredApiKey) {
  SimHandlerOptions options;
  options.required_api_key = "sk-test-0123456789";
  SimHandler& h = MakeHandler(options);

  SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 401);
  Json e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("code"), "invalid_api_key");
  EXPECT_THAT(e.at("message").get<std::string>(),
              HasSubstr("didn't provide an API key"));

  r = h.Handle(Post("/v1/chat/completions", kChatBody,
                    {{"authorization", "Bearer sk-wrong-key-999999"}}));
  ASSERT_EQ(r.status, 401);
  e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("code"), "invalid_api_key");
  EXPECT_THAT(e.at("message").get<std::string>(),
              HasSubstr("Incorrect API key provided: sk-*****9999"));
  EXPECT_THAT(e.at("message").get<std::string>(),
              Not(HasSubstr("sk-wrong-key-999999")));

  r = h.Handle(Post("/v1/chat/completions", kChatBody,
                    {{"authorization", "Basic sk-test-0123456789"}}));
  EXPECT_EQ(r.status, 401);

  r = h.Handle(Post("/v1/chat/completions", kChatBody,
                    {{"authorization", "Bearer sk-test-0123456789"}}));
  EXPECT_EQ(r.status, 200);
  r = h.Handle(Post("/v1/chat/completions", kChatBody,
                    {{"authorization", "bearer  sk-test-0123456789 "}}));
  EXPECT_EQ(r.status, 200);
  // Observation endpoints stay open.
  EXPECT_EQ(h.Handle(Get("/health")).status, 200);
}

TEST_F(SimHandlerTest, InjectedRateLimitIs429WithRetryHeaders) {
  SimHandlerOptions options;
  options.latency = std::chrono::milliseconds(250);
  SimHandler& h = MakeHandler(options);
  faults_.Add(FaultKind::kRateLimited);
  // The fault comes before body validation, as at a real gateway.
  const SimResponse r = h.Handle(Post("/v1/chat/completions", "{oops"));
  ASSERT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "1");
  EXPECT_EQ(r.Header("retry-after-ms"), "50");
  EXPECT_EQ(r.Header("x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(r.delay, Duration::zero());
  const Json e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("code"), "rate_limit_exceeded");
  EXPECT_EQ(e.at("type"), "requests");
}

TEST_F(SimHandlerTest, InjectedServerErrorIs500AfterTheLatency) {
  SimHandlerOptions options;
  options.latency = std::chrono::milliseconds(250);
  SimHandler& h = MakeHandler(options);
  faults_.Add(FaultKind::kServerError);
  SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 500);
  EXPECT_EQ(Json::parse(r.body)["error"]["type"], "server_error");
  EXPECT_EQ(r.delay, std::chrono::milliseconds(250));
  // The script is used up: the next request is answered, also delayed.
  r = h.Handle(Post("/v1/chat/completions", kChatBody));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.delay, std::chrono::milliseconds(250));
  EXPECT_EQ(r.Header("openai-processing-ms"), "250");
}

TEST_F(SimHandlerTest, InjectedStatusFaultsCarryTheirShapes) {
  SimHandler& h = MakeHandler();
  faults_.Add(FaultKind::kUnavailable);
  faults_.Add(FaultKind::kOverloaded);
  faults_.Add(FaultKind::kQuota);
  SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("retry-after"), "1");
  EXPECT_EQ(r.Header("retry-after-ms"), "100");
  r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 529);
  EXPECT_EQ(Json::parse(r.body)["error"]["type"], "overloaded_error");
  r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 429);
  EXPECT_EQ(Json::parse(r.body)["error"]["code"], "insufficient_quota");
  EXPECT_EQ(h.stats().Get().faults.at("quota"), 1);
}

// The 401echo fault quotes the key the request carried, '/' escaped as \/:
// the JSON decodes to the key itself, but its bytes hold it only escaped.
TEST_F(SimHandlerTest, InjectedKeyEchoQuotesTheKeyEscaped) {
  constexpr char kKey[] = "sk-proj-AbC/dEf+GhI9";
  SimHandlerOptions options;
  options.required_api_key = kKey;
  SimHandler& h = MakeHandler(options);
  faults_.Add(FaultKind::kEchoKey);
  faults_.Add(FaultKind::kEchoKey);
  SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody,
                                {{"authorization", "Bearer sk-proj-AbC/dEf+GhI9"}}));
  ASSERT_EQ(r.status, 401);
  EXPECT_THAT(r.body, HasSubstr(R"(sk-proj-AbC\/dEf+GhI9)"));
  EXPECT_THAT(r.body, Not(HasSubstr(kKey)));
  const Json e = Json::parse(r.body).at("error");
  EXPECT_EQ(e.at("message"), "Incorrect API key provided: sk-proj-AbC/dEf+GhI9.");
  EXPECT_EQ(e.at("code"), "invalid_api_key");

  r = h.Handle(Post("/v1/messages", kChatBody,
                    {{"x-api-key", kKey}, {"anthropic-version", "2023-06-01"}}));
  ASSERT_EQ(r.status, 401);
  EXPECT_THAT(r.body, HasSubstr(R"(sk-proj-AbC\/dEf+GhI9)"));
  EXPECT_EQ(Json::parse(r.body).at("error").at("type"), "authentication_error");
  EXPECT_EQ(h.stats().Get().faults.at("401echo"), 2);
}

// The latin1 fault: a 400 HTML page in ISO-8859-1, on both APIs, whose
// accented letters are single bytes that are not UTF-8.
TEST_F(SimHandlerTest, InjectedLatin1ErrorIsAnHtml400NotInUtf8) {
  SimHandler& h = MakeHandler();
  faults_.Add(FaultKind::kLatin1);
  faults_.Add(FaultKind::kLatin1);
  SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 400);
  EXPECT_EQ(r.Header("content-type"), "text/html; charset=ISO-8859-1");
  EXPECT_EQ(r.body, Latin1ErrorPage());
  EXPECT_THAT(r.body, HasSubstr("caract\xE8re non autoris\xE9"));
  EXPECT_THROW((void)Json::parse("\"" + r.body + "\""), Json::exception);
  r = h.Handle(Post("/v1/messages", kChatBody,
                    {{"anthropic-version", "2023-06-01"}}));
  ASSERT_EQ(r.status, 400);
  EXPECT_EQ(r.body, Latin1ErrorPage());
  EXPECT_EQ(h.stats().Get().faults.at("latin1"), 2);
}

// --answer-bytes: the content is that long, and usage counts it.
TEST_F(SimHandlerTest, AnswerBytesSetsTheContentSize) {
  SimHandlerOptions options;
  options.answer_bytes = 50000;
  SimHandler& h = MakeHandler(options);
  const SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  ASSERT_EQ(r.status, 200) << r.body;
  const Json j = Json::parse(r.body);
  const std::string content = j["choices"][0]["message"]["content"];
  EXPECT_LE(content.size(), 50000u);
  EXPECT_GE(content.size(), 50000u - 3);
  EXPECT_GT(j["usage"]["completion_tokens"].get<int64_t>(), 50000 / 8);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int64_t>(),
            j["usage"]["prompt_tokens"].get<int64_t>() +
                j["usage"]["completion_tokens"].get<int64_t>());
}

TEST_F(SimHandlerTest, InjectedWireFaultsAreLeftToTheServer) {
  SimHandlerOptions options;
  options.slow_latency = std::chrono::seconds(7);
  options.pad_count = 3;
  options.pad_interval = std::chrono::milliseconds(40);
  SimHandler& h = MakeHandler(options);
  faults_.Add(FaultKind::kReset);
  faults_.Add(FaultKind::kTruncate);
  faults_.Add(FaultKind::kPad);
  faults_.Add(FaultKind::kSlow);
  SimResponse r = h.Handle(Post("/v1/chat/completions", kChatBody));
  EXPECT_EQ(r.wire_fault, WireFault::kReset);
  r = h.Handle(Post("/v1/chat/completions", kChatBody));
  EXPECT_EQ(r.wire_fault, WireFault::kTruncate);
  EXPECT_EQ(r.status, 200);
  EXPECT_NO_THROW(Json::parse(r.body));  // the server cuts it, not the handler
  r = h.Handle(Post("/v1/chat/completions", kChatBody));
  EXPECT_EQ(r.wire_fault, WireFault::kPad);
  EXPECT_EQ(r.pad, "\n");
  EXPECT_EQ(r.pad_count, 3);
  EXPECT_EQ(r.pad_interval, std::chrono::milliseconds(40));
  r = h.Handle(Post("/v1/chat/completions", kChatBody));
  EXPECT_EQ(r.wire_fault, WireFault::kNone);
  EXPECT_EQ(r.delay, std::chrono::seconds(7));
  faults_.Add(FaultKind::kPad);
  r = h.Handle(Post("/v1/chat/completions",
                    R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_EQ(r.pad, ": keep-alive\n\n");
  // Cut bodies and resets are not answers: only pad and slow count as 200s.
  const SimStats::Snapshot s = h.stats().Get();
  EXPECT_EQ(s.chat_completions_total, 3);
  EXPECT_EQ(s.faults.at("reset"), 1);
  EXPECT_EQ(s.faults.at("truncate"), 1);
  EXPECT_EQ(s.faults.at("pad"), 2);
  EXPECT_EQ(s.faults.at("slow"), 1);
}

TEST_F(SimHandlerTest, AuthIsCheckedBeforeFaults) {
  SimHandlerOptions options;
  options.required_api_key = "k";
  SimHandler& h = MakeHandler(options);
  faults_.Add(FaultKind::kServerError);
  EXPECT_EQ(h.Handle(Post("/v1/chat/completions", kChatBody)).status, 401);
  // The fault was not consumed by the rejected request.
  EXPECT_EQ(h.Handle(Post("/v1/chat/completions", kChatBody,
                          {{"authorization", "Bearer k"}}))
                .status,
            500);
}

TEST_F(SimHandlerTest, StatsCountEveryAnswerButNotObservation) {
  SimHandler& h = MakeHandler();
  auto stats = [&] {
    const SimResponse r = h.Handle(Get("/stats"));
    EXPECT_EQ(r.status, 200);
    return Json::parse(r.body);
  };
  Json s = stats();
  EXPECT_EQ(s.at("requests_total"), 0);
  EXPECT_EQ(s.at("chat_completions_total"), 0);
  EXPECT_EQ(s.at("errors_total"), 0);
  EXPECT_TRUE(s.at("by_status").empty());

  h.Handle(Post("/v1/chat/completions", kChatBody));
  h.Handle(Post("/v1/chat/completions", kChatBody));
  h.Handle(Post("/v1/chat/completions", "nope"));
  faults_.Add(FaultKind::kRateLimited);
  h.Handle(Post("/v1/chat/completions", kChatBody));
  h.Handle(Get("/nowhere"));
  h.Handle(Get("/v1/chat/completions"));
  h.Handle(Get("/health"));

  s = stats();
  EXPECT_EQ(s.at("requests_total"), 6);
  EXPECT_EQ(s.at("chat_requests_total"), 4);
  EXPECT_EQ(s.at("chat_completions_total"), 2);
  EXPECT_EQ(s.at("errors_total"), 4);
  EXPECT_EQ(s.at("by_status"),
            Json::parse(R"({"200":2,"400":1,"429":1,"404":1,"405":1})"));
  EXPECT_GT(s.at("prompt_tokens_total"), 0);
  EXPECT_GT(s.at("completion_tokens_total"), 0);
  EXPECT_EQ(h.stats().Get().chat_completions_total, 2);
}

TEST(SimRenderErrorJsonTest, NullsEmptyParamAndCode) {
  EXPECT_EQ(
      RenderErrorJson("bad \"x\"", "invalid_request_error", "", ""),
      R"({"error":{"message":"bad \"x\"","type":"invalid_request_error","param":null,"code":null}})");
  EXPECT_EQ(RenderErrorJson("m", "t", "p", "c"),
            R"({"error":{"message":"m","type":"t","param":"p","code":"c"}})");
}

}  // namespace
}  // namespace distillery::teacher_sim
