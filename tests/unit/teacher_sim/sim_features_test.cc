// Tests of the answer shapes a distillation harvest asks teacher-sim for:
// n choices (and --refuse-n), logprobs, tool calls (OpenAI and Anthropic,
// plain and streamed) and structured outputs with --json-invalid-rate,
// through SimHandler as a client sees them.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/teacher_sim/answer_generator.h"
#include "services/teacher_sim/sim_handler.h"
#include "tests/unit/teacher_sim/schema_matcher.h"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using Json = nlohmann::json;
using testing::MatchesSchema;

const Json kWeatherParameters = Json::parse(R"({
  "type": "object",
  "properties": {
    "city": {"type": "string"},
    "days": {"type": "integer"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    "detailed": {"type": "boolean"}
  },
  "required": ["city", "days", "unit"]})");

const Json kPersonSchema = Json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer"},
    "skills": {"type": "array", "items": {"type": "string"}},
    "address": {"type": "object",
                "properties": {"zip": {"type": "number"}},
                "required": ["zip"]}
  },
  "required": ["name", "age", "skills", "address"],
  "additionalProperties": false})");

Json UserTurn(const std::string& text) {
  return Json::array({{{"role", "user"}, {"content", text}}});
}

Json ChatBody(const std::string& prompt) {
  return {{"model", "sim-chat"}, {"messages", UserTurn(prompt)}};
}

Json OpenAITools() {
  return Json::array(
      {{{"type", "function"},
        {"function",
         {{"name", "get_weather"},
          {"description", "Weather for a city"},
          {"parameters", kWeatherParameters}}}},
       {{"type", "function"},
        {"function",
         {{"name", "get_time"},
          {"parameters",
           {{"type", "object"},
            {"properties", {{"zone", {{"type", "string"}}}}},
            {"required", {"zone"}}}}}}}});
}

Json AnthropicBody(const std::string& prompt) {
  return {{"model", "claude-sim"},
          {"max_tokens", 1000},
          {"messages", UserTurn(prompt)},
          {"tools",
           {{{"name", "get_weather"},
             {"description", "Weather for a city"},
             {"input_schema", kWeatherParameters}}}}};
}

Json StructuredBody(const std::string& prompt) {
  Json body = ChatBody(prompt);
  body["response_format"] = {
      {"type", "json_schema"},
      {"json_schema",
       {{"name", "person"}, {"strict", true}, {"schema", kPersonSchema}}}};
  return body;
}

// The "data:" payloads of an SSE body, parsed; [DONE] is left out.
std::vector<Json> DataEvents(const std::string& body) {
  std::vector<Json> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    if (data != "[DONE]") out.push_back(Json::parse(data));
    pos = end;
  }
  return out;
}

class SimFeaturesTest : public ::testing::Test {
 protected:
  SimHandler& MakeHandler(SimHandlerOptions options = {}) {
    handler_ = std::make_unique<SimHandler>(options, clock_, nullptr);
    return *handler_;
  }
  SimResponse Chat(const Json& body) {
    return handler_->Handle(
        {"POST", "/v1/chat/completions", {}, body.dump()});
  }
  SimResponse Messages(const Json& body) {
    return handler_->Handle({"POST",
                             "/v1/messages",
                             {{"anthropic-version", "2023-06-01"}},
                             body.dump()});
  }
  // The parsed 200 body of `body`.
  Json ChatJson(const Json& body) {
    const SimResponse r = Chat(body);
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body);
  }
  Json MessagesJson(const Json& body) {
    const SimResponse r = Messages(body);
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body);
  }

  FakeClock clock_;
  std::unique_ptr<SimHandler> handler_;
};

// ---- n ----

TEST_F(SimFeaturesTest, NGivesDistinctChoicesAndSummedUsage) {
  MakeHandler();
  Json body = ChatBody("Explain tides.");
  body["n"] = 3;
  const Json j = ChatJson(body);
  ASSERT_EQ(j["choices"].size(), 3u);
  std::set<std::string> contents;
  int64_t completion = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    const std::string content = j["choices"][i]["message"]["content"];
    contents.insert(content);
    completion += CountTokens(content);
  }
  EXPECT_EQ(contents.size(), 3u);
  const Json one = ChatJson(ChatBody("Explain tides."));
  EXPECT_EQ(j["choices"][0]["message"]["content"],
            one["choices"][0]["message"]["content"]);
  EXPECT_EQ(j["usage"]["prompt_tokens"], one["usage"]["prompt_tokens"]);
  EXPECT_EQ(j["usage"]["completion_tokens"], completion);
  EXPECT_EQ(j["usage"]["total_tokens"],
            j["usage"]["prompt_tokens"].get<int64_t>() + completion);

  const Json stats = Json::parse(handler_->Handle({"GET", "/stats", {}, ""}).body);
  EXPECT_EQ(stats["chat_requests_total"], 2);
  EXPECT_EQ(stats["choices_total"], 4);
}

TEST_F(SimFeaturesTest, NStreamsEveryChoiceUnderItsIndex) {
  MakeHandler();
  Json body = ChatBody("Explain tides.");
  body["n"] = 3;
  const Json plain = ChatJson(body);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const SimResponse r = Chat(body);
  ASSERT_EQ(r.status, 200);
  std::map<int, std::string> text;
  std::map<int, std::string> finish;
  Json usage;
  for (const Json& e : DataEvents(r.body)) {
    if (e.contains("usage")) usage = e["usage"];
    for (const Json& c : e["choices"]) {
      const int i = c["index"];
      if (c["delta"].contains("content")) text[i] += c["delta"]["content"];
      if (!c["finish_reason"].is_null()) finish[i] = c["finish_reason"];
    }
  }
  ASSERT_EQ(text.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(text[i], plain["choices"][i]["message"]["content"]) << i;
    EXPECT_EQ(finish[i], plain["choices"][i]["finish_reason"]);
  }
  EXPECT_EQ(usage["completion_tokens"], plain["usage"]["completion_tokens"]);
}

TEST_F(SimFeaturesTest, MathsAccuracyHoldsPerChoice) {
  SimHandlerOptions options;
  options.math_accuracy = 0.5;
  MakeHandler(options);
  Json body = ChatBody("What is 12 + 30?");
  body["n"] = 64;
  int right = 0;
  const Json j = ChatJson(body);
  for (const Json& c : j["choices"]) {
    right += c["message"]["content"].get<std::string>().find("\\boxed{42}") !=
             std::string::npos;
  }
  EXPECT_GT(right, 16);
  EXPECT_LT(right, 48);
}

TEST_F(SimFeaturesTest, RefuseNAnswers400ButServesOneChoice) {
  SimHandlerOptions options;
  options.refuse_n = true;
  MakeHandler(options);
  Json body = ChatBody("Explain tides.");
  body["n"] = 2;
  const SimResponse r = Chat(body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Json::parse(r.body),
            Json::parse(R"({"error":{"message":"n > 1 is not supported by )"
                        R"(this server","type":"invalid_request_error",)"
                        R"("param":"n","code":null}})"));
  body["n"] = 1;
  EXPECT_EQ(Chat(body).status, 200);
}

// ---- logprobs ----

void ExpectEntriesSpell(const Json& entries, const std::string& text,
                        size_t k) {
  std::string joined;
  for (const Json& e : entries) {
    const std::string token = e["token"];
    joined += token;
    std::vector<int> bytes(token.begin(), token.end());
    for (int& b : bytes) b &= 0xFF;
    EXPECT_EQ(e["bytes"], Json(bytes));
    ASSERT_EQ(e["top_logprobs"].size(), k);
    if (k > 0) {
      EXPECT_EQ(e["top_logprobs"][0]["token"], token);
      EXPECT_EQ(e["top_logprobs"][0]["logprob"], e["logprob"]);
    }
    for (size_t i = 1; i < k; ++i) {
      EXPECT_LT(e["top_logprobs"][i]["logprob"].get<double>(),
                e["top_logprobs"][i - 1]["logprob"].get<double>());
      EXPECT_GE(e["top_logprobs"][i]["logprob"].get<double>(), -20.0);
    }
  }
  EXPECT_EQ(joined, text);
}

TEST_F(SimFeaturesTest, LogprobsSpellEachChoiceWithTopK) {
  MakeHandler();
  Json body = ChatBody("Tell me about caf\xC3\xA9s in \xE6\x9D\xB1\xE4\xBA\xAC.");
  body["n"] = 2;
  body["logprobs"] = true;
  body["top_logprobs"] = 5;
  const Json j = ChatJson(body);
  for (const Json& c : j["choices"]) {
    ASSERT_TRUE(c["logprobs"].is_object()) << c.dump();
    EXPECT_TRUE(c["logprobs"]["refusal"].is_null());
    ExpectEntriesSpell(c["logprobs"]["content"], c["message"]["content"], 5);
  }
  // Without logprobs nothing changes.
  body.erase("logprobs");
  body.erase("top_logprobs");
  const Json plain = ChatJson(body);
  EXPECT_TRUE(plain["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(plain["choices"][0]["message"], j["choices"][0]["message"]);
}

TEST_F(SimFeaturesTest, StreamedLogprobsCoverEachChunk) {
  MakeHandler();
  Json body = ChatBody("Explain tides.");
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  const Json plain = ChatJson(body);
  body["stream"] = true;
  std::string text;
  Json all = Json::array();
  for (const Json& e : DataEvents(Chat(body).body)) {
    const Json& c = e["choices"][0];
    const std::string piece = c["delta"].value("content", "");
    if (piece.empty()) continue;
    text += piece;
    ExpectEntriesSpell(c["logprobs"]["content"], piece, 3);
    for (const Json& entry : c["logprobs"]["content"]) all.push_back(entry);
  }
  EXPECT_EQ(text, plain["choices"][0]["message"]["content"]);
  EXPECT_EQ(all, plain["choices"][0]["logprobs"]["content"]);
}

TEST_F(SimFeaturesTest, LogprobsParametersAreValidated) {
  MakeHandler();
  Json body = ChatBody("x");
  body["logprobs"] = true;
  body["top_logprobs"] = 21;
  SimResponse r = Chat(body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Json::parse(r.body)["error"]["param"], "top_logprobs");
  body["logprobs"] = false;
  body["top_logprobs"] = 2;
  EXPECT_EQ(Chat(body).status, 400);
  body["logprobs"] = "yes";
  EXPECT_EQ(Json::parse(Chat(body).body)["error"]["param"], "logprobs");
}

// ---- OpenAI tools ----

void ExpectWeatherArguments(const Json& args) {
  std::string why;
  EXPECT_TRUE(MatchesSchema(args, kWeatherParameters, &why))
      << why << " " << args.dump();
  EXPECT_EQ(args["unit"], "celsius");
}

TEST_F(SimFeaturesTest, OpenAIAnswersToolsWithACall) {
  MakeHandler();
  for (const Json& choice : {Json(), Json("auto"), Json("required")}) {
    Json body = ChatBody("Weather in Paris next week?");
    body["tools"] = OpenAITools();
    if (!choice.is_null()) body["tool_choice"] = choice;
    const Json j = ChatJson(body);
    const Json& c = j["choices"][0];
    EXPECT_EQ(c["finish_reason"], "tool_calls");
    EXPECT_TRUE(c["message"]["content"].is_null());
    ASSERT_EQ(c["message"]["tool_calls"].size(), 1u);
    const Json& call = c["message"]["tool_calls"][0];
    EXPECT_THAT(call["id"].get<std::string>(),
                MatchesRegex("call_[0-9a-f]{16}"));
    EXPECT_EQ(call["type"], "function");
    EXPECT_EQ(call["function"]["name"], "get_weather");
    ExpectWeatherArguments(
        Json::parse(call["function"]["arguments"].get<std::string>()));
    EXPECT_GT(j["usage"]["completion_tokens"].get<int64_t>(), 0);
  }
}

TEST_F(SimFeaturesTest, OpenAINamedToolChoicePicksThatTool) {
  MakeHandler();
  Json body = ChatBody("What time is it in Tokyo?");
  body["tools"] = OpenAITools();
  body["tool_choice"] = {{"type", "function"},
                         {"function", {{"name", "get_time"}}}};
  const Json call = ChatJson(body)["choices"][0]["message"]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_time");
  const Json args =
      Json::parse(call["function"]["arguments"].get<std::string>());
  EXPECT_TRUE(args["zone"].is_string());
}

TEST_F(SimFeaturesTest, OpenAIToolChoiceNoneAndToolResultsAnswerText) {
  MakeHandler();
  Json body = ChatBody("Weather in Paris?");
  body["tools"] = OpenAITools();
  body["tool_choice"] = "none";
  Json c = ChatJson(body)["choices"][0];
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_TRUE(c["message"]["content"].is_string());

  body.erase("tool_choice");
  body["messages"].push_back(
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_abc"},
          {"type", "function"},
          {"function",
           {{"name", "get_weather"}, {"arguments", R"({"city":"Paris"})"}}}}}}});
  body["messages"].push_back({{"role", "tool"},
                              {"tool_call_id", "call_abc"},
                              {"content", "Sunny and 24 C"}});
  c = ChatJson(body)["choices"][0];
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_FALSE(c["message"].contains("tool_calls"));
  EXPECT_THAT(c["message"]["content"].get<std::string>(),
              HasSubstr("Sunny and 24 C"));
}

TEST_F(SimFeaturesTest, OpenAIStreamsAToolCall) {
  MakeHandler();
  Json body = ChatBody("Weather in Paris next week?");
  body["tools"] = OpenAITools();
  const Json plain = ChatJson(body)["choices"][0]["message"]["tool_calls"][0];
  body["stream"] = true;
  const std::vector<Json> events = DataEvents(Chat(body).body);
  ASSERT_GE(events.size(), 3u);
  const Json& first = events[0]["choices"][0]["delta"];
  EXPECT_EQ(first["role"], "assistant");
  EXPECT_TRUE(first["content"].is_null());
  EXPECT_EQ(first["tool_calls"][0]["index"], 0);
  EXPECT_EQ(first["tool_calls"][0]["id"], plain["id"]);
  EXPECT_EQ(first["tool_calls"][0]["type"], "function");
  EXPECT_EQ(first["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(first["tool_calls"][0]["function"]["arguments"], "");
  std::string arguments;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    const Json& call = events[i]["choices"][0]["delta"]["tool_calls"][0];
    EXPECT_EQ(call["index"], 0);
    EXPECT_FALSE(call.contains("id"));
    arguments += call["function"]["arguments"].get<std::string>();
  }
  EXPECT_EQ(arguments, plain["function"]["arguments"]);
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(SimFeaturesTest, OpenAIToolParametersAreValidated) {
  MakeHandler();
  Json body = ChatBody("x");
  body["tool_choice"] = "auto";
  EXPECT_EQ(Json::parse(Chat(body).body)["error"]["param"], "tool_choice");
  body["tools"] = OpenAITools();
  body["tool_choice"] = {{"type", "function"},
                         {"function", {{"name", "nope"}}}};
  EXPECT_EQ(Chat(body).status, 400);
  body.erase("tool_choice");
  body["tools"][0]["function"].erase("name");
  const SimResponse r = Chat(body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Json::parse(r.body)["error"]["param"], "tools[0].function.name");
}

// ---- Anthropic tools ----

TEST_F(SimFeaturesTest, AnthropicAnswersToolsWithTextAndToolUse) {
  MakeHandler();
  for (const Json& choice : {Json(), Json({{"type", "auto"}})}) {
    Json body = AnthropicBody("Weather in Paris next week?");
    if (!choice.is_null()) body["tool_choice"] = choice;
    const Json j = MessagesJson(body);
    EXPECT_EQ(j["stop_reason"], "tool_use");
    ASSERT_EQ(j["content"].size(), 2u) << j.dump();
    EXPECT_EQ(j["content"][0]["type"], "text");
    EXPECT_FALSE(j["content"][0]["text"].get<std::string>().empty());
    const Json& use = j["content"][1];
    EXPECT_EQ(use["type"], "tool_use");
    EXPECT_THAT(use["id"].get<std::string>(),
                MatchesRegex("toolu_[0-9a-f]{16}"));
    EXPECT_EQ(use["name"], "get_weather");
    ASSERT_TRUE(use["input"].is_object());
    ExpectWeatherArguments(use["input"]);
  }
  Json any = AnthropicBody("Weather?");
  any["tool_choice"] = {{"type", "any"}};
  EXPECT_EQ(MessagesJson(any)["content"].back()["type"], "tool_use");
}

TEST_F(SimFeaturesTest, AnthropicToolChoiceNoneAndToolResultsAnswerText) {
  MakeHandler();
  Json body = AnthropicBody("Weather in Paris?");
  body["tool_choice"] = {{"type", "none"}};
  Json j = MessagesJson(body);
  EXPECT_EQ(j["stop_reason"], "end_turn");
  EXPECT_EQ(j["content"].back()["type"], "text");

  body.erase("tool_choice");
  body["messages"].push_back(
      {{"role", "assistant"},
       {"content",
        {{{"type", "text"}, {"text", "Let me look."}},
         {{"type", "tool_use"},
          {"id", "toolu_1"},
          {"name", "get_weather"},
          {"input", {{"city", "Paris"}}}}}}});
  body["messages"].push_back(
      {{"role", "user"},
       {"content",
        {{{"type", "tool_result"},
          {"tool_use_id", "toolu_1"},
          {"content", "Rain, 12 C"}}}}});
  j = MessagesJson(body);
  EXPECT_EQ(j["stop_reason"], "end_turn");
  ASSERT_EQ(j["content"].size(), 1u);
  const std::string text = j["content"][0]["text"];
  EXPECT_THAT(text, HasSubstr("Rain, 12 C"));
  EXPECT_THAT(text, HasSubstr("Weather in Paris?"));  // still the question
}

TEST_F(SimFeaturesTest, AnthropicStreamsAToolUseBlock) {
  MakeHandler();
  Json body = AnthropicBody("Weather in Paris next week?");
  const Json plain = MessagesJson(body);
  body["stream"] = true;
  const std::vector<Json> events = DataEvents(Messages(body).body);
  std::string text, partial;
  Json start;
  std::string stop_reason;
  for (const Json& e : events) {
    if (e["type"] == "content_block_start" &&
        e["content_block"]["type"] == "tool_use") {
      start = e["content_block"];
      EXPECT_EQ(e["index"], 1);
    }
    if (e["type"] == "content_block_delta") {
      if (e["delta"]["type"] == "text_delta") text += e["delta"]["text"];
      if (e["delta"]["type"] == "input_json_delta") {
        partial += e["delta"]["partial_json"];
      }
    }
    if (e["type"] == "message_delta") stop_reason = e["delta"]["stop_reason"];
  }
  EXPECT_EQ(text, plain["content"][0]["text"]);
  EXPECT_EQ(start["id"], plain["content"][1]["id"]);
  EXPECT_EQ(start["name"], "get_weather");
  EXPECT_EQ(start["input"], Json::object());
  EXPECT_EQ(Json::parse(partial), plain["content"][1]["input"]);
  EXPECT_EQ(stop_reason, "tool_use");
}

// ---- structured outputs ----

// Whether `text` parses and matches kPersonSchema; *parses says whether it
// parsed at all.
bool GoodPerson(const std::string& text, bool* parses) {
  const Json v = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  *parses = !v.is_discarded();
  std::string why;
  return *parses && MatchesSchema(v, kPersonSchema, &why);
}

TEST_F(SimFeaturesTest, StructuredOutputsAreGoodAtRateZero) {
  SimHandlerOptions options;
  options.json_invalid_rate = 0;
  MakeHandler(options);
  for (int i = 0; i < 30; ++i) {
    Json body = StructuredBody("Describe person number " + std::to_string(i));
    body["n"] = 2;
    const Json j = ChatJson(body);
    for (const Json& c : j["choices"]) {
      bool parses = false;
      EXPECT_TRUE(GoodPerson(c["message"]["content"], &parses))
          << c["message"]["content"];
      EXPECT_EQ(c["finish_reason"], "stop");
    }
  }
}

TEST_F(SimFeaturesTest, StructuredOutputsAreAllBadAtRateOneBothWays) {
  SimHandlerOptions options;
  options.json_invalid_rate = 1;
  MakeHandler(options);
  int unparsable = 0, mismatched = 0;
  for (int i = 0; i < 40; ++i) {
    const Json c = ChatJson(StructuredBody(
        "Describe person number " + std::to_string(i)))["choices"][0];
    bool parses = false;
    EXPECT_FALSE(GoodPerson(c["message"]["content"], &parses));
    (parses ? mismatched : unparsable)++;
  }
  EXPECT_GT(unparsable, 8);
  EXPECT_GT(mismatched, 8);
}

TEST_F(SimFeaturesTest, AskingAgainCanTurnABadStructuredOutputGood) {
  SimHandlerOptions options;
  options.json_invalid_rate = 0.5;
  // The first prompt whose first answer is bad: asked again, it must come
  // good within a few tries, in the same order in every fresh server.
  std::vector<bool> first_run;
  for (int run = 0; run < 2; ++run) {
    MakeHandler(options);
    const Json body = StructuredBody("Describe a chemist");
    std::vector<bool> good;
    for (int attempt = 0; attempt < 30; ++attempt) {
      bool parses = false;
      good.push_back(GoodPerson(
          ChatJson(body)["choices"][0]["message"]["content"], &parses));
    }
    EXPECT_NE(std::count(good.begin(), good.end(), true), 0);
    EXPECT_NE(std::count(good.begin(), good.end(), false), 0);
    if (run == 0) first_run = good;
    if (run == 1) EXPECT_EQ(good, first_run);
  }
}

TEST_F(SimFeaturesTest, AnthropicForcedToolIsStructuredOutput) {
  for (double rate : {0.0, 1.0}) {
    SimHandlerOptions options;
    options.json_invalid_rate = rate;
    MakeHandler(options);
    for (int i = 0; i < 20; ++i) {
      Json body = AnthropicBody("Weather in city " + std::to_string(i));
      body["tool_choice"] = {{"type", "tool"}, {"name", "get_weather"}};
      const Json j = MessagesJson(body);
      ASSERT_EQ(j["content"].size(), 1u) << j.dump();  // no text block
      const Json& input = j["content"][0]["input"];
      ASSERT_TRUE(input.is_object());
      std::string why;
      EXPECT_EQ(MatchesSchema(input, kWeatherParameters, &why), rate == 0)
          << input.dump();
      if (rate == 1) EXPECT_THAT(why, HasSubstr("is not of type"));
    }
  }
}

}  // namespace
}  // namespace distillery::teacher_sim
