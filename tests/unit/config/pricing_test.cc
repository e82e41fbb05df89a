#include "common/config/teachers.h"

#include <gtest/gtest.h>

namespace distillery {
namespace {

constexpr char kHead[] =
    "teachers:\n  - name: t\n    base_url: https://x/v1\n";

TEST(PricingTest, ParsesPricesAndCostsAnAnswer) {
  absl::StatusOr<std::vector<TeacherProfile>> p = ParseTeachersYaml(
      std::string(kHead) +
          "    pricing:\n"
          "      big: {input: 2.5, cached_input: 1.25, output: 10}\n"
          "      \"*\": {input: 1, output: 4}\n",
      "t.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  const TeacherProfile& t = (*p)[0];
  // 1M prompt tokens, a fifth cached, and 100k completion tokens.
  EXPECT_DOUBLE_EQ(CostUsd(t, "big", 1'000'000, 200'000, 100'000),
                   0.8 * 2.5 + 0.2 * 1.25 + 0.1 * 10);
  // Any other model: the "*" price, cached input at the input price.
  EXPECT_DOUBLE_EQ(CostUsd(t, "small", 1'000'000, 500'000, 0), 1.0);
  ASSERT_TRUE(PriceFor(t, "small").has_value());
}

TEST(PricingTest, NoPriceCostsNothing) {
  absl::StatusOr<std::vector<TeacherProfile>> p =
      ParseTeachersYaml(kHead, "t.yaml");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(PriceFor((*p)[0], "m").has_value());
  EXPECT_EQ(CostUsd((*p)[0], "m", 1000, 0, 1000), 0);
}

TEST(PricingTest, BadPricesNameTheField) {
  for (const auto& [yaml, expected] :
       {std::pair{"    pricing: 3\n", "'pricing'"},
        std::pair{"    pricing:\n      m: {input: x}\n", "'pricing.m.input'"},
        std::pair{"    pricing:\n      m: {inptu: 1}\n", "'pricing.m.inptu'"},
        std::pair{"    pricing:\n      m: {output: -1}\n", "must not be negative"}}) {
    absl::StatusOr<std::vector<TeacherProfile>> p =
        ParseTeachersYaml(std::string(kHead) + yaml, "t.yaml");
    ASSERT_FALSE(p.ok()) << yaml;
    EXPECT_NE(p.status().message().find(expected), std::string::npos)
        << p.status();
  }
}

}  // namespace
}  // namespace distillery
