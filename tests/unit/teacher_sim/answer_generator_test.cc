// Tests of teacher-sim's answer generation: determinism, prompt dependence,
// reasoning, truncation, token arithmetic and the rendered OpenAI shape.
#include "services/teacher_sim/answer_generator.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

ChatRequest Request(std::string prompt, std::string model = "gpt-4o-mini") {
  ChatRequest r;
  r.model = std::move(model);
  r.messages = {{"system", "You are a helpful teacher."},
                {"user", std::move(prompt)}};
  return r;
}

TEST(SimCountTokensTest, CountsBytesOverFourButAtLeastOnePerWord) {
  EXPECT_EQ(CountTokens(""), 0);
  EXPECT_EQ(CountTokens("a"), 1);
  EXPECT_EQ(CountTokens("a b c d e"), 5);    // 9 bytes, 5 words
  EXPECT_EQ(CountTokens("hello world"), 3);  // 11 bytes
  EXPECT_EQ(CountTokens(std::string(40, 'x')), 10);
  EXPECT_EQ(CountTokens("  spaced \n out\t"), 4);  // 15 bytes
}

TEST(SimCountTokensTest, PromptTokensAddFourPerMessageAndThreeForTheReply) {
  const std::vector<SimMessage> messages = {{"system", "a b"},
                                            {"user", std::string(40, 'x')}};
  EXPECT_EQ(CountPromptTokens(messages), 3 + (4 + 2) + (4 + 10));
}

TEST(SimTruncateToTokensTest, CutsAtWordBoundaries) {
  const std::string text = "one two three four five six seven";
  EXPECT_EQ(TruncateToTokens(text, 100), text);
  const std::string cut = TruncateToTokens(text, 4);
  EXPECT_EQ(cut, "one two three");  // 13 bytes = 4 tokens; +" four" = 5
  EXPECT_LE(CountTokens(cut), 4);
  EXPECT_EQ(TruncateToTokens(text, 0), "");
}

TEST(SimTruncateToTokensTest, CutsAnOverlongWordAtACharacterBoundary) {
  // Six 3-byte characters; 1 token allows 4 bytes, so one whole character.
  const std::string word =
      "\xE4\xB8\x96\xE4\xB8\x96\xE4\xB8\x96\xE4\xB8\x96"
      "\xE4\xB8\x96\xE4\xB8\x96";
  EXPECT_EQ(TruncateToTokens(word, 1), "\xE4\xB8\x96");
  EXPECT_EQ(TruncateToTokens(word, 2), "\xE4\xB8\x96\xE4\xB8\x96");
}

TEST(AnswerGeneratorTest, SameRequestGivesTheSameAnswer) {
  ChatRequest r = Request("Explain why the sky is blue.");
  r.seed = 42;
  r.temperature = 0.3;
  r.n = 2;
  const std::string a = RenderCompletionJson(GenerateCompletion(r), "id", 1);
  const std::string b = RenderCompletionJson(GenerateCompletion(r), "id", 1);
  EXPECT_EQ(a, b);
}

TEST(AnswerGeneratorTest, AnswerDependsOnPromptSeedTemperatureModelAndIndex) {
  const ChatRequest base = Request("Explain why the sky is blue.");
  const std::string answer = GenerateCompletion(base).choices[0].content;

  ChatRequest other_prompt = Request("Explain why the sea is salty.");
  ChatRequest seeded = base;
  seeded.seed = 1;
  ChatRequest hot = base;
  hot.temperature = 1.0;
  ChatRequest other_model = base;
  other_model.model = "gpt-4o";
  ChatRequest other_system = base;
  other_system.messages[0].content = "You are terse.";
  for (const ChatRequest* r :
       {&other_prompt, &seeded, &hot, &other_model, &other_system}) {
    EXPECT_NE(GenerateCompletion(*r).choices[0].content, answer);
  }

  ChatRequest three = base;
  three.n = 3;
  const SimCompletion c = GenerateCompletion(three);
  ASSERT_EQ(c.choices.size(), 3u);
  EXPECT_EQ(c.choices[0].content, answer);  // choice 0 is the n=1 answer
  EXPECT_NE(c.choices[1].content, c.choices[0].content);
  EXPECT_NE(c.choices[2].content, c.choices[1].content);
}

TEST(AnswerGeneratorTest, AnswerQuotesTheLastUserMessage) {
  ChatRequest r =
      Request("What   is the capital of France and why is it there?");
  r.messages.push_back({"assistant", "Paris."});
  r.messages.push_back({"user", "Tell me about\nthe Eiffel tower please now"});
  const std::string content = GenerateCompletion(r).choices[0].content;
  EXPECT_THAT(content, HasSubstr("\"Tell me about the Eiffel tower...\""));
}

TEST(AnswerGeneratorTest, LengthsVaryWithinRoughlyTwentyToTwoHundredTokens) {
  std::set<std::string> answers;
  int64_t shortest = 1 << 30, longest = 0;
  for (int i = 0; i < 300; ++i) {
    const SimChoice c =
        GenerateCompletion(Request("Question number " + std::to_string(i)))
            .choices[0];
    answers.insert(c.content);
    shortest = std::min(shortest, c.content_tokens);
    longest = std::max(longest, c.content_tokens);
    EXPECT_EQ(c.finish_reason, "stop");
    EXPECT_TRUE(c.reasoning_content.empty());
  }
  EXPECT_EQ(answers.size(), 300u);
  EXPECT_GE(shortest, 20);
  EXPECT_LT(shortest, 40);
  EXPECT_GT(longest, 180);
  EXPECT_LE(longest, 240);  // the target plus at most one sentence
}

TEST(AnswerGeneratorTest, AnswerIsReadableSentences) {
  const std::string content =
      GenerateCompletion(Request("Describe a tree.")).choices[0].content;
  EXPECT_EQ(content.back(), '.');
  EXPECT_TRUE(std::isupper(static_cast<unsigned char>(content[0])));
  EXPECT_GE(std::count(content.begin(), content.end(), '.'), 2);
  EXPECT_TRUE(std::all_of(content.begin(), content.end(), [](char c) {
    return c == ' ' || c == '.' || c == ',' || c == '"' ||
           std::isalnum(static_cast<unsigned char>(c));
  })) << content;
}

TEST(AnswerGeneratorTest, ReasonerModelsReasonAndBillTheReasoning) {
  const SimCompletion c =
      GenerateCompletion(Request("Prove that 2 + 2 = 4.", "deepseek-reasoner"));
  ASSERT_TRUE(c.reasoning_model);
  const SimChoice& choice = c.choices[0];
  EXPECT_THAT(choice.reasoning_content,
              StartsWith("Let me think about \"Prove that 2 + 2 =...\"."));
  EXPECT_GE(std::count(choice.reasoning_content.begin(),
                       choice.reasoning_content.end(), '.'),
            3);
  EXPECT_GT(choice.reasoning_tokens, 0);
  EXPECT_EQ(choice.reasoning_tokens, CountTokens(choice.reasoning_content));
  EXPECT_EQ(c.usage.reasoning_tokens, choice.reasoning_tokens);
  EXPECT_EQ(c.usage.completion_tokens,
            choice.reasoning_tokens + choice.content_tokens);
  EXPECT_NE(choice.reasoning_content, choice.content);
  EXPECT_FALSE(IsReasoningModel("gpt-4o-mini"));
}

TEST(AnswerGeneratorTest, MaxTokensTruncatesAndReportsLength) {
  ChatRequest r = Request("Write a long essay about rivers.");
  const SimChoice full = GenerateCompletion(r).choices[0];
  ASSERT_GT(full.content_tokens, 12);

  r.max_tokens = 12;
  const SimCompletion cut = GenerateCompletion(r);
  const SimChoice& choice = cut.choices[0];
  EXPECT_EQ(choice.finish_reason, "length");
  EXPECT_LE(choice.content_tokens, 12);
  EXPECT_GT(choice.content_tokens, 6);
  EXPECT_EQ(choice.content_tokens, CountTokens(choice.content));
  EXPECT_THAT(full.content, StartsWith(choice.content));
  EXPECT_EQ(cut.usage.completion_tokens, choice.content_tokens);

  r.max_tokens = full.content_tokens;  // exactly enough
  EXPECT_EQ(GenerateCompletion(r).choices[0].finish_reason, "stop");
  EXPECT_EQ(GenerateCompletion(r).choices[0].content, full.content);
}

TEST(AnswerGeneratorTest, MaxTokensCountsReasoningFirst) {
  ChatRequest r = Request("Think hard about chess.", "my-reasoner-v2");
  const SimChoice full = GenerateCompletion(r).choices[0];

  // Enough for the reasoning and part of the answer.
  r.max_tokens = full.reasoning_tokens + 5;
  SimChoice choice = GenerateCompletion(r).choices[0];
  EXPECT_EQ(choice.finish_reason, "length");
  EXPECT_EQ(choice.reasoning_content, full.reasoning_content);
  EXPECT_LE(choice.content_tokens, 5);
  EXPECT_THAT(full.content, StartsWith(choice.content));

  // Not even enough to finish thinking: no answer text at all.
  r.max_tokens = 10;
  const SimCompletion c = GenerateCompletion(r);
  choice = c.choices[0];
  EXPECT_EQ(choice.finish_reason, "length");
  EXPECT_EQ(choice.content, "");
  EXPECT_LE(choice.reasoning_tokens, 10);
  EXPECT_GT(choice.reasoning_tokens, 0);
  EXPECT_THAT(full.reasoning_content, StartsWith(choice.reasoning_content));
  EXPECT_LE(c.usage.completion_tokens, 10);
}

TEST(AnswerGeneratorTest, StopSequenceCutsTheAnswer) {
  ChatRequest r = Request("Tell me a story.");
  const std::string full = GenerateCompletion(r).choices[0].content;
  const size_t first_period = full.find('.');
  ASSERT_NE(first_period, std::string::npos);
  r.stop = {"zzz-not-there", "."};
  const SimChoice c = GenerateCompletion(r).choices[0];
  EXPECT_EQ(c.content, full.substr(0, first_period));
  EXPECT_EQ(c.finish_reason, "stop");
}

TEST(AnswerGeneratorTest, UsageAddsUpOverChoices) {
  ChatRequest r = Request("Count to three.", "deepseek-reasoner");
  r.n = 3;
  const SimCompletion c = GenerateCompletion(r);
  int64_t completion = 0, reasoning = 0;
  for (const SimChoice& choice : c.choices) {
    completion += choice.content_tokens + choice.reasoning_tokens;
    reasoning += choice.reasoning_tokens;
  }
  EXPECT_EQ(c.usage.prompt_tokens, CountPromptTokens(r.messages));
  EXPECT_EQ(c.usage.completion_tokens, completion);
  EXPECT_EQ(c.usage.reasoning_tokens, reasoning);
  EXPECT_EQ(c.usage.total_tokens, c.usage.prompt_tokens + completion);
}

TEST(RenderCompletionJsonTest, HasOpenAIsShape) {
  ChatRequest r =
      Request("Quote \"this\" \\ and\tthat \xE2\x9C\x93 \x01 please");
  r.n = 2;
  r.max_tokens = 30;
  const SimCompletion c = GenerateCompletion(r);
  const auto j = nlohmann::json::parse(
      RenderCompletionJson(c, "chatcmpl-0123abcd", 1741569952));

  EXPECT_EQ(j.at("id"), "chatcmpl-0123abcd");
  EXPECT_EQ(j.at("object"), "chat.completion");
  EXPECT_EQ(j.at("created"), 1741569952);
  EXPECT_EQ(j.at("model"), "gpt-4o-mini");
  EXPECT_EQ(j.at("system_fingerprint"), "fp_teachersim");
  ASSERT_EQ(j.at("choices").size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto& choice = j["choices"][i];
    EXPECT_EQ(choice.at("index"), i);
    EXPECT_EQ(choice.at("message").at("role"), "assistant");
    EXPECT_EQ(choice.at("message").at("content"), c.choices[i].content);
    EXPECT_TRUE(choice.at("message").at("refusal").is_null());
    EXPECT_FALSE(choice.at("message").contains("reasoning_content"));
    EXPECT_TRUE(choice.at("logprobs").is_null());
    EXPECT_EQ(choice.at("finish_reason"), c.choices[i].finish_reason);
  }
  // The prompt's special characters survive the round trip.
  EXPECT_THAT(j["choices"][0]["message"]["content"].get<std::string>(),
              HasSubstr("\"Quote \"this\" \\ and that \xE2\x9C\x93..."));
  const auto& usage = j.at("usage");
  EXPECT_EQ(usage.at("prompt_tokens"), c.usage.prompt_tokens);
  EXPECT_EQ(usage.at("completion_tokens"), c.usage.completion_tokens);
  EXPECT_EQ(usage.at("total_tokens"),
            c.usage.prompt_tokens + c.usage.completion_tokens);
  EXPECT_EQ(usage.at("prompt_tokens_details").at("cached_tokens"), 0);
  EXPECT_EQ(usage.at("completion_tokens_details").at("reasoning_tokens"), 0);
}

TEST(RenderCompletionJsonTest, ReasonerHasReasoningContent) {
  const SimCompletion c =
      GenerateCompletion(Request("Why?", "deepseek-reasoner"));
  const auto j =
      nlohmann::json::parse(RenderCompletionJson(c, "chatcmpl-1", 1));
  EXPECT_EQ(j["choices"][0]["message"].at("reasoning_content"),
            c.choices[0].reasoning_content);
  EXPECT_GT(j["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
  EXPECT_GT(j["usage"]["completion_tokens"],
            j["usage"]["completion_tokens_details"]["reasoning_tokens"]);
}

}  // namespace
}  // namespace distillery::teacher_sim
