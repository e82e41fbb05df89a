// Tests of teacher-sim's token logprobs: the tokens spell the text exactly,
// UTF-8 stays whole, and the alternatives are distinct, lower and in range.
#include "services/teacher_sim/sim_logprobs.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery::teacher_sim {
namespace {

using ::testing::ElementsAre;

TEST(SimLogprobsTest, TokensAreWordsWithTheirLeadingSpaceAndPunctuation) {
  std::vector<std::string> tokens;
  for (std::string_view t : SplitIntoTokens("Hello, the  world!\n")) {
    tokens.emplace_back(t);
  }
  EXPECT_THAT(tokens,
              ElementsAre("Hello", ",", " the", "  world", "!", "\n"));
  EXPECT_TRUE(SplitIntoTokens("").empty());
}

TEST(SimLogprobsTest, TokensConcatenateToTheTextAndKeepUtf8Whole) {
  const std::string text =
      "Caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C, \"quoted\" {json: [1, 2]} "
      "\xF0\x9F\x98\x80 end.  ";
  std::string joined;
  for (std::string_view t : SplitIntoTokens(text)) {
    ASSERT_FALSE(t.empty());
    // No token starts inside a UTF-8 character.
    EXPECT_NE(static_cast<unsigned char>(t.front()) & 0xC0, 0x80);
    joined += t;
  }
  EXPECT_EQ(joined, text);
}

TEST(SimLogprobsTest, TopLogprobsAreDistinctStrictlyLowerAndInRange) {
  const std::string text = "The quick brown fox, it jumps; over the dog.";
  const auto entries = TokenLogprobs(text, 42, kMaxTopLogprobs);
  ASSERT_EQ(entries.size(), SplitIntoTokens(text).size());
  for (const SimTokenLogprob& e : entries) {
    ASSERT_EQ(e.top.size(), 20u);
    EXPECT_EQ(e.top[0].first, e.token);
    EXPECT_EQ(e.top[0].second, e.logprob);
    EXPECT_LT(e.logprob, 0);
    std::set<std::string> names;
    for (size_t i = 0; i < e.top.size(); ++i) {
      names.insert(e.top[i].first);
      EXPECT_GE(e.top[i].second, -20.0);
      EXPECT_LE(e.top[i].second, 0.0);
      if (i > 0) EXPECT_LT(e.top[i].second, e.top[i - 1].second);
    }
    EXPECT_EQ(names.size(), e.top.size()) << e.token;
  }
}

TEST(SimLogprobsTest, DeterministicPerHashAndWrittenInOpenAIsShape) {
  const auto a = TokenLogprobs("One two.", 1, 2);
  const auto b = TokenLogprobs("One two.", 1, 2);
  const auto c = TokenLogprobs("One two.", 2, 2);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[1].logprob, b[1].logprob);
  EXPECT_NE(a[1].logprob, c[1].logprob);

  JsonWriter w;
  WriteLogprobContent(a, 1, 3, w);
  const auto j = nlohmann::json::parse(w.str());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["token"], " two");
  EXPECT_EQ(j[0]["bytes"], nlohmann::json::array({32, 116, 119, 111}));
  EXPECT_EQ(j[0]["logprob"].get<double>(), a[1].logprob);
  ASSERT_EQ(j[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(j[0]["top_logprobs"][0]["token"], " two");
  EXPECT_TRUE(j[0]["top_logprobs"][1].contains("bytes"));
  // Six significant digits at most.
  const std::string printed = j[0]["logprob"].dump();
  EXPECT_LE(printed.size(), std::string("-0.123456").size() + 4) << printed;
}

}  // namespace
}  // namespace distillery::teacher_sim
