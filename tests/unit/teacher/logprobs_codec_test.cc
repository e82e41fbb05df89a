// The logprobs codec: a round trip keeps every token and alternative, each
// logprob within half a quantisation step; the stored form of a realistic
// answer stays under 40 bytes a token with five alternatives; and bytes it
// did not write are refused, never read out of bounds.
#include "common/teacher/logprobs_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

namespace distillery {
namespace {

constexpr double kHalfStep = 0.5 / 1024 + 1e-12;

// An answer of `n` tokens from a small vocabulary of word pieces, each with
// `k` alternatives best first: the chosen token is usually the best one, as
// in a teacher's sampled answer.
std::vector<TokenLogprob> Answer(int n, int k, uint32_t seed) {
  static const char* kWords[] = {
      " the", " of", " and", " to", " a", " in", " is", " that", " for",
      " it", " as", " with", " was", " on", " be", " by", " this", " are",
      " sum", " answer", " boxed", "{", "}", "\\", " We", " Let", " compute",
      " first", " step", " so", " therefore", " =", " +", " 1", " 2", "3",
      "4", "5", "6", "7", "8", "9", "0", ".", ",", "\n", " x", " y", " é",
      " 数"};
  constexpr int kVocabulary = sizeof(kWords) / sizeof(kWords[0]);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> word(0, kVocabulary - 1);
  std::uniform_real_distribution<double> gap(0.05, 3.0);
  std::vector<TokenLogprob> out;
  for (int i = 0; i < n; ++i) {
    TokenLogprob t;
    double lp = -std::uniform_real_distribution<double>(0, 0.3)(rng);
    std::set<int> used;
    for (int j = 0; j < k; ++j) {
      int w = word(rng);
      while (used.count(w)) w = (w + 1) % kVocabulary;
      used.insert(w);
      t.top.emplace_back(kWords[w], lp);
      lp -= gap(rng);
    }
    if (k > 0 && rng() % 10 != 0) {
      t.token = t.top[0].first;
      t.logprob = t.top[0].second;
    } else {
      t.token = kWords[word(rng)];
      t.logprob = -gap(rng) * 3;
    }
    out.push_back(std::move(t));
  }
  return out;
}

void ExpectSame(const std::vector<TokenLogprob>& want,
                const std::vector<TokenLogprob>& got) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].token, want[i].token) << i;
    EXPECT_NEAR(got[i].logprob, want[i].logprob, kHalfStep) << i;
    ASSERT_EQ(got[i].top.size(), want[i].top.size()) << i;
    for (size_t j = 0; j < want[i].top.size(); ++j) {
      EXPECT_EQ(got[i].top[j].first, want[i].top[j].first) << i << "/" << j;
      // Differences are coded from the quantised values: no drift along
      // the alternatives.
      EXPECT_NEAR(got[i].top[j].second, want[i].top[j].second, kHalfStep)
          << i << "/" << j;
    }
  }
}

TEST(LogprobsCodecTest, RoundTripKeepsTokensAndLogprobs) {
  for (int k : {0, 1, 5, 20}) {
    const std::vector<TokenLogprob> tokens = Answer(300, k, 7 + k);
    absl::StatusOr<std::vector<TokenLogprob>> back =
        DecodeLogprobs(EncodeLogprobs(tokens));
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSame(tokens, *back);
  }
}

TEST(LogprobsCodecTest, NoTokensIsEmpty) {
  EXPECT_EQ(EncodeLogprobs({}), "");
  absl::StatusOr<std::vector<TokenLogprob>> back = DecodeLogprobs("");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

TEST(LogprobsCodecTest, OddValuesAreKept) {
  std::vector<TokenLogprob> tokens(4);
  tokens[0] = {"", 0.0, {{"", 0.0}}};                    // empty token
  tokens[1] = {std::string("\xe6\x95", 2), -9999.5, {}};  // half a character
  tokens[2] = {"x", 0.25, {{"x", 0.25}, {"y", -1e9}}};   // positive, huge
  tokens[3] = {"z", std::nan(""), {{"w", -0.5}, {"z", std::nan("")}}};
  absl::StatusOr<std::vector<TokenLogprob>> back =
      DecodeLogprobs(EncodeLogprobs(tokens));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 4u);
  EXPECT_EQ((*back)[1].token, std::string("\xe6\x95", 2));
  EXPECT_NEAR((*back)[1].logprob, -9999.5, kHalfStep);
  EXPECT_EQ((*back)[2].logprob, 0.0);  // never positive
  EXPECT_NEAR((*back)[2].top[1].second, -2e9 / 1024, 1);  // clamped
  EXPECT_EQ((*back)[3].logprob, 0.0);  // NaN: stored as 0
  EXPECT_EQ((*back)[3].top[0].first, "w");
}

TEST(LogprobsCodecTest, UnderFortyBytesATokenWithFiveAlternatives) {
  size_t bytes = 0, tokens = 0;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const std::vector<TokenLogprob> answer = Answer(400, 5, seed);
    bytes += EncodeLogprobs(answer).size();
    tokens += answer.size();
  }
  const double per_token = static_cast<double>(bytes) / tokens;
  std::cerr << "logprobs: " << per_token << " bytes per token (K = 5)\n";
  EXPECT_LT(per_token, 40.0);
}

TEST(LogprobsCodecTest, CorruptBytesAreRefused) {
  const std::string good = EncodeLogprobs(Answer(50, 5, 3));
  // Every truncation is refused (the end must be exactly reached).
  for (size_t n = 1; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeLogprobs(good.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodeLogprobs(good + "x").ok());
  std::string version = good;
  version[0] = 9;
  EXPECT_EQ(DecodeLogprobs(version).status().code(),
            absl::StatusCode::kDataLoss);
  // Counts far beyond the input: refused without allocating them.
  EXPECT_FALSE(DecodeLogprobs(std::string("\x01\xff\xff\xff\xff\x0f\x00", 7)).ok());
  EXPECT_FALSE(DecodeLogprobs(std::string("\x01\x01\xff\xff\xff\xff\x0f", 7)).ok());
  // Random bytes after the version: refused or decoded, never a crash.
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(1 + rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    junk[0] = 1;
    (void)DecodeLogprobs(junk);
  }
  // Flipped bytes of a good encoding: likewise.
  for (size_t i = 1; i < good.size(); ++i) {
    std::string flipped = good;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
    (void)DecodeLogprobs(flipped);
  }
}

}  // namespace
}  // namespace distillery
