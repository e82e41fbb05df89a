#include "common/dedup/minhash.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace distillery {
namespace {

const char kAnswer[] =
    "Photosynthesis is the process by which green plants, algae and some "
    "bacteria turn light energy into chemical energy. Inside the chloroplast, "
    "chlorophyll absorbs sunlight, which drives the splitting of water into "
    "oxygen, protons and electrons. The electrons pass along a transport "
    "chain that produces ATP and NADPH. In the Calvin cycle these molecules "
    "power the fixation of carbon dioxide into sugars such as glucose, which "
    "the plant uses for growth and stores as starch. Oxygen is released as a "
    "by-product, which is why plants are essential to life on Earth.";

// Two words changed and a comma dropped, as a resampled answer might be.
const char kReworded[] =
    "Photosynthesis is the process by which green plants, algae and some "
    "bacteria convert light energy into chemical energy. Inside the "
    "chloroplast, chlorophyll absorbs sunlight which drives the splitting of "
    "water into oxygen, protons and electrons. The electrons pass along a "
    "transport chain that produces ATP and NADPH. In the Calvin cycle these "
    "molecules power the fixation of carbon dioxide into sugars such as "
    "glucose, which the plant uses for growth and keeps as starch. Oxygen is "
    "released as a by-product, which is why plants are essential to life on "
    "Earth.";

const char kUnrelated[] =
    "A binary search tree keeps its keys in order: every key in the left "
    "subtree of a node is smaller than the node's key and every key in the "
    "right subtree is larger. Lookups walk down from the root, comparing at "
    "each step, so a balanced tree answers in logarithmic time. Red-black and "
    "AVL trees rebalance on insertion and deletion to keep that guarantee.";

TEST(MinHashTest, WordsAreLowerCasedAndSplitOnPunctuation) {
  EXPECT_EQ(MinHashWords("Hello, World! x2  é-b"),
            (std::vector<std::string>{"hello", "world", "x2", "é", "b"}));
  EXPECT_TRUE(MinHashWords("  ,.; ").empty());
}

TEST(MinHashTest, SignatureIsDeterministicAndFixedSize) {
  const std::string a = MinHashSignature(kAnswer);
  EXPECT_EQ(a.size(), 4u * kMinHashSize);
  EXPECT_EQ(a, MinHashSignature(kAnswer));
  EXPECT_EQ(MinHashSignature(""), "");
  EXPECT_EQ(MinHashSignature("..."), "");
}

TEST(MinHashTest, IdenticalTextsAfterCaseAndSpacingAreSimilarOne) {
  std::string shouting = kAnswer;
  for (char& c : shouting) c = static_cast<char>(std::toupper(c));
  EXPECT_DOUBLE_EQ(EstimateJaccard(MinHashSignature(kAnswer),
                                   MinHashSignature(shouting)),
                   1.0);
}

TEST(MinHashTest, RewordedIsNearDuplicateUnrelatedIsNot) {
  const std::string a = MinHashSignature(kAnswer);
  const double reworded = EstimateJaccard(a, MinHashSignature(kReworded));
  const double unrelated = EstimateJaccard(a, MinHashSignature(kUnrelated));
  EXPECT_GE(reworded, 0.75);
  EXPECT_LT(reworded, 1.0);
  EXPECT_LT(unrelated, 0.1);
}

TEST(MinHashTest, BandKeysMatchForNearDuplicatesOnly) {
  auto shared = [](const std::string& x, const std::string& y) {
    std::vector<std::string> kx = LshBandKeys(MinHashSignature(x));
    std::vector<std::string> ky = LshBandKeys(MinHashSignature(y));
    EXPECT_EQ(kx.size(), static_cast<size_t>(kMinHashBands));
    std::set<std::string> sx(kx.begin(), kx.end());
    int n = 0;
    for (const std::string& k : ky) n += sx.count(k);
    return n;
  };
  EXPECT_EQ(shared(kAnswer, kAnswer), kMinHashBands);
  EXPECT_GT(shared(kAnswer, kReworded), 0);
  EXPECT_EQ(shared(kAnswer, kUnrelated), 0);
  // The band number is part of the key: equal rows in different bands of
  // two signatures do not collide.
  EXPECT_TRUE(LshBandKeys("").empty());
}

TEST(MinHashTest, ShortTextsStillCompare) {
  const std::string a = MinHashSignature("Yes, it is.");
  EXPECT_EQ(a.size(), 4u * kMinHashSize);
  EXPECT_DOUBLE_EQ(EstimateJaccard(a, MinHashSignature("yes it is")), 1.0);
  EXPECT_LT(EstimateJaccard(a, MinHashSignature("No, it is not.")), 0.2);
}

TEST(MinHashTest, JaccardEstimateTracksTheTrueValue) {
  // Sets of 5-word shingles from a 200-word sequence; the second text drops
  // the last 40 words: true J = 156/196 ~ 0.80.
  std::string full, prefix;
  for (int i = 0; i < 200; ++i) {
    const std::string w = "w" + std::to_string(i) + " ";
    full += w;
    if (i < 160) prefix += w;
  }
  const double j =
      EstimateJaccard(MinHashSignature(full), MinHashSignature(prefix));
  EXPECT_NEAR(j, 156.0 / 196.0, 0.12);
  EXPECT_EQ(EstimateJaccard("short", MinHashSignature(full)), 0.0);
}

}  // namespace
}  // namespace distillery
