// teacher-sim's Anthropic Messages endpoint and its streamed answers (both
// APIs): shapes, auth, faults, and that a stream carries exactly the plain
// answer's text. SSE is split here by hand, independently of the worker's
// parser.
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/teacher_sim/messages_request.h"
#include "services/teacher_sim/response_render.h"
#include "services/teacher_sim/sim_handler.h"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Json = nlohmann::json;

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

struct Event {
  std::string event;
  std::string data;
};

// "event: x\ndata: y\n\n" blocks, as the sim writes them (LF only).
std::vector<Event> SplitEvents(const std::string& body) {
  std::vector<Event> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event";
    if (end == std::string::npos) break;
    Event e;
    std::string block = body.substr(pos, end - pos);
    size_t line_start = 0;
    while (line_start <= block.size()) {
      size_t nl = block.find('\n', line_start);
      if (nl == std::string::npos) nl = block.size();
      std::string line = block.substr(line_start, nl - line_start);
      if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = line.substr(6);
      line_start = nl + 1;
    }
    out.push_back(std::move(e));
    pos = end + 2;
  }
  return out;
}

SimRequest Post(std::string target, std::string body, SimHeaders headers) {
  return SimRequest{"POST", std::move(target), std::move(headers),
                    std::move(body)};
}

const SimHeaders kAnthropicHeaders = {{"anthropic-version", "2023-06-01"}};

std::string MessagesBody(const std::string& model, bool stream,
                         int64_t budget = 0) {
  Json body = {{"model", model},
               {"max_tokens", 4000},
               {"system", "Be brief."},
               {"messages", {{{"role", "user"}, {"content", "Why is the sky blue?"}}}}};
  if (stream) body["stream"] = true;
  if (budget > 0) {
    body["thinking"] = {{"type", "enabled"}, {"budget_tokens", budget}};
  }
  return body.dump();
}

class SimStreamsTest : public ::testing::Test {
 protected:
  SimHandler& MakeHandler(SimHandlerOptions options = {}) {
    handler_ = std::make_unique<SimHandler>(options, clock_, &faults_);
    return *handler_;
  }
  FakeClock clock_;
  ScriptedFaults faults_;
  std::unique_ptr<SimHandler> handler_;
};

TEST_F(SimStreamsTest, MessagesPlainAnswerWithoutThinking) {
  SimResponse r = MakeHandler().Handle(
      Post("/v1/messages", MessagesBody("claude-sim", false), kAnthropicHeaders));
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = Json::parse(r.body);
  EXPECT_EQ(body.at("type"), "message");
  EXPECT_THAT(body.at("id").get<std::string>(), StartsWith("msg_"));
  ASSERT_EQ(body.at("content").size(), 1u);
  EXPECT_EQ(body.at("content")[0].at("type"), "text");
  EXPECT_THAT(body.at("content")[0].at("text").get<std::string>(),
              HasSubstr("Why is the sky blue?"));
  EXPECT_EQ(body.at("stop_reason"), "end_turn");
  EXPECT_GT(body.at("usage").at("input_tokens").get<int>(), 0);
  EXPECT_FALSE(r.Header("anthropic-ratelimit-requests-remaining").empty());
  EXPECT_FALSE(r.Header("request-id").empty());
}

TEST_F(SimStreamsTest, ThinkingBlocksWhenEnabledOrModelSaysSo) {
  SimHandler& handler = MakeHandler();
  for (const auto& [model, budget] :
       std::vector<std::pair<std::string, int64_t>>{
           {"claude-sim", 2048}, {"claude-thinking", 0}, {"sim-reasoner", 0}}) {
    SimResponse r = handler.Handle(Post(
        "/v1/messages", MessagesBody(model, false, budget), kAnthropicHeaders));
    ASSERT_EQ(r.status, 200) << r.body;
    Json content = Json::parse(r.body).at("content");
    ASSERT_EQ(content.size(), 2u) << model;
    EXPECT_EQ(content[0].at("type"), "thinking");
    EXPECT_FALSE(content[0].at("thinking").get<std::string>().empty());
    EXPECT_EQ(content[0].at("signature"),
              ThinkingSignature(content[0].at("thinking").get<std::string>()));
    EXPECT_EQ(content[1].at("type"), "text");
  }
  SimResponse redacted = handler.Handle(Post(
      "/v1/messages", MessagesBody("claude-thinking-redacted", false),
      kAnthropicHeaders));
  Json content = Json::parse(redacted.body).at("content");
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[1].at("type"), "redacted_thinking");
  EXPECT_FALSE(content[1].at("data").get<std::string>().empty());
}

TEST_F(SimStreamsTest, MessagesStreamCarriesThePlainAnswer) {
  SimHandler& handler = MakeHandler();
  const std::string model = "claude-thinking-redacted";
  Json plain = Json::parse(
      handler.Handle(Post("/v1/messages", MessagesBody(model, false),
                          kAnthropicHeaders))
          .body);
  SimResponse r = handler.Handle(
      Post("/v1/messages", MessagesBody(model, true), kAnthropicHeaders));
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(std::string(r.Header("content-type")),
              StartsWith("text/event-stream"));
  std::vector<Event> events = SplitEvents(r.body);
  ASSERT_GE(events.size(), 8u);
  EXPECT_EQ(events.front().event, "message_start");
  EXPECT_EQ(events[1].event, "ping");
  EXPECT_EQ(events.back().event, "message_stop");
  std::string thinking, signature, text, redacted, stop_reason;
  int deltas = 0;
  for (const Event& e : events) {
    Json d = Json::parse(e.data);
    EXPECT_EQ(d.at("type"), e.event);  // the event line repeats the type
    if (e.event == "content_block_start" &&
        d.at("content_block").at("type") == "redacted_thinking") {
      redacted = d.at("content_block").at("data").get<std::string>();
    }
    if (e.event == "content_block_delta") {
      ++deltas;
      const Json& delta = d.at("delta");
      if (delta.at("type") == "thinking_delta") thinking += delta.at("thinking").get<std::string>();
      if (delta.at("type") == "signature_delta") signature += delta.at("signature").get<std::string>();
      if (delta.at("type") == "text_delta") text += delta.at("text").get<std::string>();
    }
    if (e.event == "message_delta") stop_reason = d.at("delta").at("stop_reason").get<std::string>();
  }
  EXPECT_GT(deltas, 4);
  EXPECT_EQ(thinking, plain.at("content")[0].at("thinking"));
  EXPECT_EQ(signature, plain.at("content")[0].at("signature"));
  EXPECT_EQ(redacted, plain.at("content")[1].at("data"));
  EXPECT_EQ(text, plain.at("content")[2].at("text"));
  EXPECT_EQ(stop_reason, "end_turn");
}

TEST_F(SimStreamsTest, ChatStreamCarriesThePlainAnswerAndUsage) {
  SimHandler& handler = MakeHandler();
  Json request = {{"model", "sim-reasoner"},
                  {"messages", {{{"role", "user"}, {"content", "Explain tides"}}}}};
  Json plain = Json::parse(
      handler.Handle(Post("/v1/chat/completions", request.dump(), {})).body);
  request["stream"] = true;
  request["stream_options"] = {{"include_usage", true}};
  SimResponse r =
      handler.Handle(Post("/v1/chat/completions", request.dump(), {}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(std::string(r.Header("content-type")),
              StartsWith("text/event-stream"));
  std::vector<Event> events = SplitEvents(r.body);
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events.back().data, "[DONE]");
  std::string content, reasoning, finish;
  Json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    Json chunk = Json::parse(events[i].data);
    EXPECT_EQ(chunk.at("object"), "chat.completion.chunk");
    for (const Json& choice : chunk.at("choices")) {
      const Json& delta = choice.at("delta");
      if (delta.contains("content")) content += delta.at("content").get<std::string>();
      if (delta.contains("reasoning_content")) {
        reasoning += delta.at("reasoning_content").get<std::string>();
      }
      if (!choice.at("finish_reason").is_null()) finish = choice.at("finish_reason").get<std::string>();
    }
    if (chunk.contains("usage")) usage = chunk.at("usage");
  }
  const Json& message = plain.at("choices")[0].at("message");
  EXPECT_EQ(content, message.at("content"));
  EXPECT_EQ(reasoning, message.at("reasoning_content"));
  EXPECT_EQ(finish, "stop");
  EXPECT_EQ(usage, plain.at("usage"));
  // The usage chunk is the last before [DONE] and has no choices.
  EXPECT_TRUE(Json::parse(events[events.size() - 2].data).at("choices").empty());
}

TEST_F(SimStreamsTest, ChatStreamWithoutIncludeUsageHasNoUsageChunk) {
  SimResponse r = MakeHandler().Handle(Post(
      "/v1/chat/completions",
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]})",
      {}));
  ASSERT_EQ(r.status, 200);
  for (const Event& e : SplitEvents(r.body)) {
    if (e.data != "[DONE]") EXPECT_FALSE(Json::parse(e.data).contains("usage"));
  }
}

TEST_F(SimStreamsTest, MessagesAuthUsesXApiKey) {
  SimHandlerOptions options;
  options.required_api_key = "sk-ant-test";
  SimHandler& handler = MakeHandler(options);
  SimResponse r = handler.Handle(
      Post("/v1/messages", MessagesBody("m", false), kAnthropicHeaders));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Json::parse(r.body).at("error").at("type"), "authentication_error");
  EXPECT_EQ(Json::parse(r.body).at("type"), "error");
  // A Bearer token is OpenAI's scheme, not Anthropic's.
  r = handler.Handle(Post("/v1/messages", MessagesBody("m", false),
                          {{"anthropic-version", "2023-06-01"},
                           {"authorization", "Bearer sk-ant-test"}}));
  EXPECT_EQ(r.status, 401);
  r = handler.Handle(Post("/v1/messages", MessagesBody("m", false),
                          {{"anthropic-version", "2023-06-01"},
                           {"x-api-key", "sk-ant-test"}}));
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(SimStreamsTest, MessagesValidation) {
  SimHandler& handler = MakeHandler();
  SimResponse r =
      handler.Handle(Post("/v1/messages", MessagesBody("m", false), {}));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("anthropic-version"));
  for (const char* bad :
       {R"({"model":"m","messages":[{"role":"user","content":"x"}]})",
        R"({"model":"m","max_tokens":10,"messages":[{"role":"system","content":"x"}]})",
        R"({"model":"m","max_tokens":10,"messages":[]})",
        R"({"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":500},"messages":[{"role":"user","content":"x"}]})",
        R"({"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"x"}]})",
        R"({"model":"m","max_tokens":10,"temperature":1.5,"messages":[{"role":"user","content":"x"}]})",
        "not json"}) {
    r = handler.Handle(Post("/v1/messages", bad, kAnthropicHeaders));
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(Json::parse(r.body).at("error").at("type"),
              "invalid_request_error");
  }
}

TEST_F(SimStreamsTest, MessagesFaultsInAnthropicShape) {
  SimHandler& handler = MakeHandler();
  faults_.Add(FaultKind::kRateLimited);
  faults_.Add(FaultKind::kServerError);
  SimResponse r = handler.Handle(
      Post("/v1/messages", MessagesBody("m", false), kAnthropicHeaders));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(Json::parse(r.body).at("error").at("type"), "rate_limit_error");
  EXPECT_EQ(r.Header("retry-after"), "1");
  EXPECT_EQ(r.Header("anthropic-ratelimit-requests-remaining"), "0");
  r = handler.Handle(
      Post("/v1/messages", MessagesBody("m", false), kAnthropicHeaders));
  EXPECT_EQ(r.status, 529);
  EXPECT_EQ(Json::parse(r.body).at("error").at("type"), "overloaded_error");
  const auto stats = handler.stats().Get();
  EXPECT_EQ(stats.chat_requests_total, 2);
  EXPECT_EQ(stats.chat_completions_total, 0);
}

TEST(SimRenderTest, SplitIntoDeltasRoundTrips) {
  for (const std::string text :
       {"", "one", "one two three four five six seven", "  lead  and trail  ",
        "a\nb\tc d e f g h i"}) {
    std::string joined;
    for (const std::string& piece : SplitIntoDeltas(text, 2)) joined += piece;
    EXPECT_EQ(joined, text);
  }
  EXPECT_EQ(SplitIntoDeltas("a b c d e", 2).size(), 3u);
}

TEST(SimMessagesRequestTest, SystemBecomesALeadingSystemMessage) {
  ChatRequest r;
  std::string message;
  ASSERT_TRUE(ParseMessagesRequest(
                  R"({"model":"m","max_tokens":5000,"system":[{"type":"text","text":"S"}],)"
                  R"("stop_sequences":["END"],"thinking":{"type":"enabled","budget_tokens":1024},)"
                  R"("messages":[{"role":"user","content":[{"type":"text","text":"U"}]}]})",
                  &r, &message)
                  .ok())
      << message;
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "S");
  EXPECT_EQ(r.messages[1].content, "U");
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.force_reasoning);
  EXPECT_EQ(r.reasoning_budget, 1024);
  EXPECT_EQ(r.max_tokens, 5000);
}

}  // namespace
}  // namespace distillery::teacher_sim
