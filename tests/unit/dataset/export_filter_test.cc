#include "common/dataset/export_filter.h"

#include <gtest/gtest.h>

#include "tests/unit/base/deep_json.h"

namespace distillery {
namespace {

v1::Answer MakeAnswer(const std::string& content, const std::string& finish,
                      int64_t completion, int64_t reasoning) {
  v1::Answer a;
  a.set_content(content);
  a.set_finish_reason(finish);
  a.mutable_usage()->set_completion_tokens(completion);
  a.mutable_usage()->set_reasoning_tokens(reasoning);
  return a;
}

TEST(ExportFilterTest, EmptyRequestKeepsEverything) {
  absl::StatusOr<ExportFilter> f = ExportFilter::Create(v1::ExportRequest());
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->MatchesAnswer(MakeAnswer("", "length", 0, 0)));
  EXPECT_TRUE(f->MatchesPrompt(v1::Prompt()));
  EXPECT_TRUE(f->MatchesJob(v1::JobSpec()));
}

TEST(ExportFilterTest, FinishReasons) {
  v1::ExportRequest r;
  r.add_finish_reasons("stop");
  r.add_finish_reasons("end_turn");
  ExportFilter f = *ExportFilter::Create(r);
  EXPECT_TRUE(f.MatchesAnswer(MakeAnswer("a", "stop", 1, 0)));
  EXPECT_TRUE(f.MatchesAnswer(MakeAnswer("a", "end_turn", 1, 0)));
  EXPECT_FALSE(f.MatchesAnswer(MakeAnswer("a", "length", 1, 0)));
  EXPECT_FALSE(f.MatchesAnswer(MakeAnswer("a", "content_filter", 1, 0)));
}

TEST(ExportFilterTest, TeacherAndModelDecidePerJob) {
  v1::ExportRequest r;
  r.add_teachers("openai");
  r.add_models("gpt-4o");
  r.add_models("o3");
  ExportFilter f = *ExportFilter::Create(r);
  v1::JobSpec spec;
  spec.set_teacher("openai");
  spec.set_model("o3");
  EXPECT_TRUE(f.MatchesJob(spec));
  spec.set_model("gpt-3.5");
  EXPECT_FALSE(f.MatchesJob(spec));
  spec.set_model("o3");
  spec.set_teacher("deepseek");
  EXPECT_FALSE(f.MatchesJob(spec));
}

TEST(ExportFilterTest, LengthInCharsCountsCodePoints) {
  EXPECT_EQ(CountChars("héllo"), 5);
  EXPECT_EQ(CountChars("日本"), 2);
  v1::ExportRequest r;
  r.set_min_chars(3);
  r.set_max_chars(5);
  ExportFilter f = *ExportFilter::Create(r);
  EXPECT_FALSE(f.MatchesAnswer(MakeAnswer("ab", "stop", 1, 0)));
  EXPECT_TRUE(f.MatchesAnswer(MakeAnswer("日本語", "stop", 1, 0)));
  EXPECT_TRUE(f.MatchesAnswer(MakeAnswer("héllo", "stop", 1, 0)));
  EXPECT_FALSE(f.MatchesAnswer(MakeAnswer("hello!", "stop", 1, 0)));
}

TEST(ExportFilterTest, LengthInTokensLeavesReasoningOut) {
  EXPECT_EQ(AnswerTokens(MakeAnswer("x", "stop", 120, 100)), 20);
  v1::ExportRequest r;
  r.set_min_tokens(10);
  r.set_max_tokens(50);
  ExportFilter f = *ExportFilter::Create(r);
  EXPECT_TRUE(f.MatchesAnswer(MakeAnswer("x", "stop", 120, 100)));
  EXPECT_FALSE(f.MatchesAnswer(MakeAnswer("x", "stop", 105, 100)));
  EXPECT_FALSE(f.MatchesAnswer(MakeAnswer("x", "stop", 60, 0)));
  // Only a minimum: no upper bound.
  r.set_max_tokens(0);
  EXPECT_TRUE(
      ExportFilter::Create(r)->MatchesAnswer(MakeAnswer("x", "stop", 1e6, 0)));
}

TEST(ExportFilterTest, Metadata) {
  v1::ExportRequest r;
  *r.add_metadata() = *ParseMetadataMatch("topic=math");
  *r.add_metadata() = *ParseMetadataMatch("level=3");
  ExportFilter f = *ExportFilter::Create(r);
  v1::Prompt p;
  p.set_metadata_json(R"({"topic":"math","level":3,"x":null})");
  EXPECT_TRUE(f.MatchesPrompt(p));
  p.set_metadata_json(R"({"topic":"math","level":"3"})");
  EXPECT_TRUE(f.MatchesPrompt(p));  // "3" and 3 both read as 3
  p.set_metadata_json(R"({"topic":"math","level":4})");
  EXPECT_FALSE(f.MatchesPrompt(p));
  p.set_metadata_json(R"({"topic":"math"})");
  EXPECT_FALSE(f.MatchesPrompt(p));
  p.clear_metadata_json();
  EXPECT_FALSE(f.MatchesPrompt(p));

  v1::ExportRequest b;
  *b.add_metadata() = *ParseMetadataMatch("ok=true");
  p.set_metadata_json(R"({"ok":true})");
  EXPECT_TRUE(ExportFilter::Create(b)->MatchesPrompt(p));
  // A value may contain '='.
  EXPECT_EQ(ParseMetadataMatch("q=a=b")->value(), "a=b");
  EXPECT_FALSE(ParseMetadataMatch("novalue").ok());
  EXPECT_FALSE(ParseMetadataMatch("=x").ok());
}

// The match on a deep value dumped it recursively: 200,000 levels were a
// crash; now metadata over the depth limit matches nothing.
TEST(ExportFilterTest, MetadataDeeperThanTheLimitMatchesNothing) {
  v1::ExportRequest r;
  *r.add_metadata() = *ParseMetadataMatch("a=1");
  ExportFilter f = *ExportFilter::Create(r);
  v1::Prompt p;
  p.set_metadata_json(R"({"a":)" + testing::NestedArrays(200'000) + "}");
  EXPECT_FALSE(f.MatchesPrompt(p));
  p.set_metadata_json(R"({"a":1,"b":)" + testing::NestedArrays(63) + "}");
  EXPECT_TRUE(f.MatchesPrompt(p));
  p.set_metadata_json(R"({"a":1,"b":)" + testing::NestedArrays(64) + "}");
  EXPECT_FALSE(f.MatchesPrompt(p));
}

TEST(ExportFilterTest, RejectsBadBounds) {
  v1::ExportRequest r;
  r.set_min_chars(10);
  r.set_max_chars(5);
  absl::StatusOr<ExportFilter> f = ExportFilter::Create(r);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("min chars (10) is above max chars (5)"),
            std::string::npos)
      << f.status().message();
  v1::ExportRequest t;
  t.set_near_dup_threshold(1.5);
  EXPECT_FALSE(ExportFilter::Create(t).ok());
  v1::ExportRequest n;
  n.set_min_tokens(-1);
  EXPECT_FALSE(ExportFilter::Create(n).ok());
}

}  // namespace
}  // namespace distillery
