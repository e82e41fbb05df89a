// Benchmark decontamination: both file kinds and their field precedence,
// planted overlaps found with their benchmark line, near misses not,
// short questions, the n-gram size, bad files, and the memory bound.
#include "common/dataset/decontaminate.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

class DecontaminateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/decontaminate-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

// 20 words: "w0 w1 ... w19" with a tag, so questions do not overlap.
std::string Question(const std::string& tag) {
  std::string q;
  for (int i = 0; i < 20; ++i) {
    q += (i ? " " : "") + tag + std::to_string(i);
  }
  return q;
}

TEST_F(DecontaminateTest, JsonlFieldsInOrderOfPrecedence) {
  const std::string path = Write(
      "bench.jsonl",
      "{\"question\": \"" + Question("a") + "\", \"text\": \"" + Question("x") +
          "\"}\n"
          "\n"
          "{\"problem\": \"" + Question("b") + "\"}\n"
          "{\"prompt\": \"" + Question("c") + "\", \"answer\": 3}\n"
          "{\"text\": \"" + Question("d") + "\"}\n");
  absl::StatusOr<Decontaminator> d = Decontaminator::Load(path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->questions(), 4);
  EXPECT_EQ(d->Find(Question("a"))->benchmark_line, 1);
  EXPECT_EQ(d->Find(Question("b"))->benchmark_line, 3);
  EXPECT_EQ(d->Find(Question("c"))->benchmark_line, 4);
  EXPECT_EQ(d->Find(Question("d"))->benchmark_line, 5);
  // "text" is not read when "question" is there.
  EXPECT_FALSE(d->Find(Question("x")).has_value());
}

TEST_F(DecontaminateTest, PlantedOverlapsAreFoundAndNearMissesAreNot) {
  const std::string path =
      Write("bench.txt", "Unrelated question about the weather today please\n" +
                             Question("q") + "\n");
  absl::StatusOr<Decontaminator> d = Decontaminator::Load(path);
  ASSERT_TRUE(d.ok()) << d.status();
  // 13 words of the question inside a prompt, in other case and punctuation.
  std::string planted = "Please solve: ";
  for (int i = 3; i < 16; ++i) {
    planted += "Q" + std::to_string(i) + (i % 2 ? ", " : "! ");
  }
  planted += "thanks.";
  std::optional<ContaminationMatch> m = d->Find(planted);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->benchmark_line, 2);
  EXPECT_EQ(m->ngram, "q3 q4 q5 q6 q7 q8 q9 q10 q11 q12 q13 q14 q15");
  // 12 shared words in a row: not a 13-gram.
  std::string twelve = "Please solve";
  for (int i = 3; i < 15; ++i) twelve += " q" + std::to_string(i);
  EXPECT_FALSE(d->Find(twelve + " other").has_value());
  // All the words, but in another order.
  std::string shuffled;
  for (int i = 19; i >= 0; --i) shuffled += " q" + std::to_string(i);
  EXPECT_FALSE(d->Find(shuffled).has_value());
  EXPECT_FALSE(d->Find("").has_value());
}

TEST_F(DecontaminateTest, ShortQuestionsMatchTheirWholeSequence) {
  const std::string path = Write("bench.txt",
                                 "What is the capital of France?\n"
                                 "Question 3\n");  // under 4 words: skipped
  absl::StatusOr<Decontaminator> d = Decontaminator::Load(path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->questions(), 1);
  EXPECT_EQ(d->Find("Quiz: what is the capital of FRANCE? Answer briefly.")
                ->benchmark_line,
            1);
  EXPECT_FALSE(d->Find("what is the capital of Spain").has_value());
  EXPECT_FALSE(d->Find("see question 3 below").has_value());
}

TEST_F(DecontaminateTest, TheNgramSizeIsConfigurable) {
  const std::string path = Write("bench.txt", Question("q") + "\n");
  absl::StatusOr<Decontaminator> d = Decontaminator::Load(path, 8);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ngram_words(), 8);
  EXPECT_TRUE(d->Find("x q2 q3 q4 q5 q6 q7 q8 q9 y").has_value());
  EXPECT_FALSE(d->Find("x q2 q3 q4 q5 q6 q7 q8 y").has_value());
  EXPECT_FALSE(Decontaminator::Load(path, 0).ok());
}

TEST_F(DecontaminateTest, BadFilesAreRefusedNamingFileAndLine) {
  auto error = [&](const std::string& path) {
    absl::StatusOr<Decontaminator> d = Decontaminator::Load(path);
    EXPECT_FALSE(d.ok()) << path;
    return std::string(d.status().message());
  };
  EXPECT_THAT(error(dir_ + "/missing.jsonl"),
              HasSubstr("missing.jsonl: cannot open: No such file"));
  EXPECT_THAT(error(Write("bad.jsonl", "{\"question\": \"" + Question("a") +
                                           "\"}\n{\"question\": \n")),
              HasSubstr("bad.jsonl: line 2: not a JSON object"));
  EXPECT_THAT(error(Write("field.jsonl", "{\"question\": \"" + Question("a") +
                                             "\"}\n{\"q\": \"x\"}\n")),
              HasSubstr("line 2: no \"question\", \"problem\", \"prompt\" or "
                        "\"text\" string field"));
  EXPECT_THAT(error(Write("number.jsonl", "{\"question\": 3}\n")),
              HasSubstr("line 1: no \"question\""));
  EXPECT_THAT(error(Write("empty.txt", "\n\n")), HasSubstr("no questions"));
}

TEST_F(DecontaminateTest, AHundredThousandQuestionsFitIn200MB) {
  const std::string path = dir_ + "/big.txt";
  {
    std::ofstream out(path);
    for (int q = 0; q < 100000; ++q) {
      for (int w = 0; w < 60; ++w) out << (w ? " " : "") << "t" << q << "w" << w;
      out << "\n";
    }
  }
  absl::StatusOr<Decontaminator> d = Decontaminator::Load(path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->questions(), 100000);
  std::cerr << "index of 100,000 questions x 60 words: "
            << d->MemoryBytes() / 1e6 << " MB\n";
  EXPECT_LT(d->MemoryBytes(), size_t{200} << 20);
  EXPECT_EQ(d->Find("t77777w10 t77777w11 t77777w12 t77777w13 t77777w14 "
                    "t77777w15 t77777w16 t77777w17 t77777w18 t77777w19 "
                    "t77777w20 t77777w21 t77777w22")
                ->benchmark_line,
            77778);
}

}  // namespace
}  // namespace distillery
