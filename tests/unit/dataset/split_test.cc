#include "common/dataset/split.h"

#include <gtest/gtest.h>

#include <string>

namespace distillery {
namespace {

TEST(SplitTest, ParsesASpec) {
  absl::StatusOr<SplitSpec> s = ParseSplitSpec("train=0.9,val=0.05,test=0.05");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->parts.size(), 3u);
  EXPECT_EQ(s->parts[1].name, "val");
  EXPECT_DOUBLE_EQ(s->parts[0].fraction, 0.9);
  EXPECT_TRUE(ParseSplitSpec("all=1").ok());
}

TEST(SplitTest, RejectsBadSpecsWithClearErrors) {
  struct Case {
    const char* spec;
    const char* error;
  } cases[] = {
      {"", "empty"},
      {"train=0.9,test=0.2", "sum to 1.1, not 1"},
      {"train=0.5,train=0.5", "'train' repeats"},
      {"=0.5,test=0.5", "split name '' must be non-empty"},
      {"train=0.95,test", "'test' is not NAME=FRACTION"},
      {"train=abc,test=0.5", "must be a number in (0, 1], got 'abc'"},
      {"train=1,test=0", "fraction of 'test' must be a number"},
      {"tr/ain=1", "split name 'tr/ain'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SplitSpec> s = ParseSplitSpec(c.spec);
    ASSERT_FALSE(s.ok()) << c.spec;
    EXPECT_NE(s.status().message().find(c.error), std::string::npos)
        << c.spec << ": " << s.status().message();
  }
}

TEST(SplitTest, AssignmentIsStableAndProportional) {
  const SplitSpec spec = *ParseSplitSpec("train=0.8,test=0.2");
  int test = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = "q" + std::to_string(i);
    const int a = AssignSplit(spec, id, 42);
    EXPECT_EQ(a, AssignSplit(spec, id, 42));
    test += a == 1;
  }
  EXPECT_NEAR(test, 2000, 150);
  // Another seed is another partition.
  int moved = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = "q" + std::to_string(i);
    moved += AssignSplit(spec, id, 42) != AssignSplit(spec, id, 43);
  }
  EXPECT_GT(moved, 100);
}

TEST(SplitTest, SplitPath) {
  EXPECT_EQ(SplitPath("data.jsonl", "train"), "data.train.jsonl");
  EXPECT_EQ(SplitPath("out/d.v2/data.jsonl", "test"), "out/d.v2/data.test.jsonl");
  EXPECT_EQ(SplitPath("out/d.v2/data", "test"), "out/d.v2/data.test");
  EXPECT_EQ(SplitPath("data", "train"), "data.train");
}

}  // namespace
}  // namespace distillery
