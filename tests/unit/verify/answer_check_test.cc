// The answer checks of `submit --verify`: the math normaliser on pairs that
// must and must not match, final-answer extraction, exact and regex checks,
// bad specs, and hostile answers (huge, deeply nested, unbalanced).
#include "common/verify/answer_check.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

struct Pair {
  const char* answer;
  const char* reference;
  bool match;
};

// Each answer is extracted from a worked line, as teachers write them.
constexpr Pair kMathPairs[] = {
    {"42", "42", true},
    {" 42 ", "42", true},
    {"$42$", "42", true},
    {"42.", "42", true},
    {"+42", "42", true},
    {"1,234", "1234", true},
    {"1,234,567", "1234567", true},
    {"-1,000", "-1000", true},
    {"1,234.50", "1234.5", true},
    {"2.50", "2.5", true},
    {"3.0", "3", true},
    {"3.000", "3", true},
    {"0.5", "1/2", true},
    {"\\frac{1}{2}", "0.5", true},
    {"\\dfrac{1}{2}", "1/2", true},
    {"\\tfrac{3}{4}", "0.75", true},
    {"\\frac12", "0.5", true},
    {"\\frac{-1}{2}", "-0.5", true},
    {"-\\frac{1}{2}", "-1/2", true},
    {"\\text{5}", "5", true},
    {"5 \\text{ apples}", "5apples", true},
    {"\\mathrm{10}", "10", true},
    {"90^\\circ", "90", true},
    {"90^{\\circ}", "90", true},
    {"90\xC2\xB0", "90", true},
    {"50\\%", "50", true},
    {"50%", "50", true},
    {"\\left( 1, 2 \\right)", "(1,2)", true},
    {"x + 1", "x+1", true},
    {"\\frac{1}{3}", "1/3", true},
    {"0.3333", "1/3", false},
    {"0.33333333333333", "1/3", true},  // within 1e-9
    {"1/2", "2", false},
    {"12", "1,2", false},
    {"0.5", "0.05", false},
    {"x+1", "x-1", false},
    {"\\frac{1}{3}", "0.33", false},
    {"42", "24", false},
    {"-42", "42", false},
    {"1,23", "123", false},
    {"100", "10", false},
    {"3.01", "3.1", false},
    {"\\frac{2}{3}", "\\frac{3}{2}", false},
    {"", "0", false},
    {"1e3", "1000", false},
    {"1/0", "1/0", true},  // the same text, though not a number
    {"1/0", "2/0", false},
};

TEST(MathAnswersMatchTest, NormalisedPairs) {
  int cases = 0;
  for (const Pair& p : kMathPairs) {
    EXPECT_EQ(MathAnswersMatch(p.answer, p.reference), p.match)
        << "\"" << p.answer << "\" vs \"" << p.reference << "\" (normalised \""
        << NormalizeMathAnswer(p.answer) << "\" vs \""
        << NormalizeMathAnswer(p.reference) << "\")";
    ++cases;
  }
  EXPECT_GE(cases, 40);
}

TEST(MathAnswersMatchTest, TheCheckUsesTheBoxedFinalAnswer) {
  absl::StatusOr<AnswerChecker> math = AnswerChecker::Create("math");
  ASSERT_TRUE(math.ok()) << math.status();
  for (const Pair& p : kMathPairs) {
    if (std::string(p.answer).empty()) continue;
    const std::string answer = std::string("Working... first \\boxed{7} then "
                                           "the answer is $\\boxed{") +
                               p.answer + "}$.";
    const CheckOutcome outcome = math->Check(answer, std::string(p.reference));
    ASSERT_TRUE(outcome.verified.has_value());
    EXPECT_EQ(*outcome.verified, p.match) << answer;
    std::string trimmed = p.answer;
    trimmed.erase(0, trimmed.find_first_not_of(' '));
    trimmed.erase(trimmed.find_last_not_of(' ') + 1);
    EXPECT_EQ(outcome.extracted, trimmed);
  }
}

TEST(ExtractFinalAnswerTest, LastBoxedElseTheAnswerPhrase) {
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{1} and then \\boxed{2}"), "2");
  EXPECT_EQ(ExtractFinalAnswer("so \\boxed{\\frac{1}{2}} it is"), "\\frac{1}{2}");
  EXPECT_EQ(ExtractFinalAnswer("\\fbox{9}"), "9");
  EXPECT_EQ(ExtractFinalAnswer("it is \\boxed 5 exactly"), "5");
  EXPECT_EQ(ExtractFinalAnswer("The answer is 42."), "42");
  EXPECT_EQ(ExtractFinalAnswer("Answer: 17\nmore text"), "17");
  EXPECT_EQ(ExtractFinalAnswer("the answer is: x = 3."), "x = 3");
  EXPECT_EQ(ExtractFinalAnswer("the answer is 1. No, the answer is 2."), "2");
  // A boxed answer wins over a later phrase.
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{4}; so the answer is four"), "4");
  // An unbalanced last box falls back to the one before it.
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{3} then \\boxed{12"), "3");
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{12"), std::nullopt);
  EXPECT_EQ(ExtractFinalAnswer("no final answer here"), std::nullopt);
  EXPECT_EQ(ExtractFinalAnswer(""), std::nullopt);
}

TEST(AnswerCheckerTest, MathWithoutAReferenceIsNotChecked) {
  absl::StatusOr<AnswerChecker> math = AnswerChecker::Create("math");
  ASSERT_TRUE(math.ok());
  const CheckOutcome outcome = math->Check("\\boxed{5}", std::nullopt);
  EXPECT_FALSE(outcome.verified.has_value());
  EXPECT_EQ(outcome.extracted, "5");
  EXPECT_TRUE(math->NeedsReference());
  // No final answer at all is wrong, not unchecked.
  const CheckOutcome none = math->Check("I do not know", std::string("5"));
  EXPECT_EQ(none.verified, false);
  EXPECT_EQ(none.extracted, "");
  // A reference written as a worked answer is judged by its box.
  EXPECT_EQ(math->Check("\\boxed{0.5}", std::string("so \\boxed{\\frac12}"))
                .verified,
            true);
}

TEST(AnswerCheckerTest, ExactComparesTrimmedText) {
  absl::StatusOr<AnswerChecker> exact = AnswerChecker::Create("exact");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->Check("  Paris\n", std::string("Paris")).verified, true);
  EXPECT_EQ(exact->Check("Paris", std::string(" Paris ")).verified, true);
  EXPECT_EQ(exact->Check("paris", std::string("Paris")).verified, false);
  EXPECT_EQ(exact->Check("Paris.", std::string("Paris")).verified, false);
  EXPECT_EQ(exact->Check(" Paris ", std::nullopt).extracted, "Paris");
  EXPECT_FALSE(exact->Check("Paris", std::nullopt).verified.has_value());
}

TEST(AnswerCheckerTest, RegexMatchesAndExtractsItsFirstGroup) {
  absl::StatusOr<AnswerChecker> grouped =
      AnswerChecker::Create("regex:ANSWER: ([A-D])");
  ASSERT_TRUE(grouped.ok()) << grouped.status();
  EXPECT_FALSE(grouped->NeedsReference());
  CheckOutcome outcome = grouped->Check("thinking... ANSWER: C", std::nullopt);
  EXPECT_EQ(outcome.verified, true);
  EXPECT_EQ(outcome.extracted, "C");
  outcome = grouped->Check("ANSWER: E", std::string("ignored"));
  EXPECT_EQ(outcome.verified, false);
  EXPECT_EQ(outcome.extracted, "");

  absl::StatusOr<AnswerChecker> plain = AnswerChecker::Create("regex:\\d{3}");
  ASSERT_TRUE(plain.ok());
  outcome = plain->Check("code 4711 here", std::nullopt);
  EXPECT_EQ(outcome.verified, true);
  EXPECT_EQ(outcome.extracted, "471");
}

TEST(AnswerCheckerTest, BadSpecsAreRefusedNamingWhatIsWrong) {
  auto error = [](const std::string& spec) {
    absl::StatusOr<AnswerChecker> c = AnswerChecker::Create(spec);
    EXPECT_FALSE(c.ok()) << spec;
    return std::string(c.status().message());
  };
  EXPECT_THAT(error("fuzzy"), HasSubstr("unknown check \"fuzzy\"; use math, "
                                        "exact or regex:PATTERN"));
  EXPECT_THAT(error(""), HasSubstr("unknown check"));
  EXPECT_THAT(error("regex:"), HasSubstr("--verify regex: empty pattern"));
  EXPECT_THAT(error("regex:("), HasSubstr("--verify regex: bad pattern \"(\": "));
  EXPECT_THAT(error("regex:a{1001}"), HasSubstr("bad pattern"));
}

TEST(AnswerCheckerTest, HostileAnswersFinishWithoutCrashing) {
  absl::StatusOr<AnswerChecker> math = AnswerChecker::Create("math");
  ASSERT_TRUE(math.ok());
  // 10 MB of text with a box at the end, and one without any.
  std::string big(10 << 20, 'x');
  big += "\\boxed{7}";
  EXPECT_EQ(math->Check(big, std::string("7")).verified, true);
  std::string no_box(10 << 20, 'a');
  EXPECT_EQ(math->Check(no_box, std::string("7")).verified, false);
  // 100,000 nested braces, closed and unclosed; many unbalanced boxes.
  std::string nested = "\\boxed";
  nested += std::string(100000, '{') + "1" + std::string(100000, '}');
  EXPECT_TRUE(math->Check(nested, std::string("1")).verified.has_value());
  std::string open = "\\boxed" + std::string(100000, '{');
  EXPECT_EQ(math->Check(open, std::string("1")).verified, false);
  std::string boxes;
  for (int i = 0; i < 100000; ++i) boxes += "\\boxed{";
  EXPECT_EQ(math->Check(boxes, std::string("1")).verified, false);
  // Huge numbers and odd bytes.
  EXPECT_FALSE(MathAnswersMatch(std::string(5000, '9'), "1"));
  EXPECT_TRUE(MathAnswersMatch(std::string(5000, '9'), std::string(5000, '9')));
  EXPECT_FALSE(MathAnswersMatch("\xff\xfe", "1"));
  absl::StatusOr<AnswerChecker> regex = AnswerChecker::Create("regex:(a+)+b");
  ASSERT_TRUE(regex.ok());
  EXPECT_EQ(regex->Check(std::string(1 << 20, 'a'), std::nullopt).verified,
            false);  // linear in RE2, catastrophic in a backtracking engine
}

}  // namespace
}  // namespace distillery
