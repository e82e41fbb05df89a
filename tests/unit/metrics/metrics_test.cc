#include "common/metrics/metrics.h"

#include <gtest/gtest.h>

namespace distillery {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(MetricsTest, EventsAppearInTheExpositionWithTheirLabels) {
  metrics::TeacherRequest("t1", "m1", 429, "rate_limited", 0.2);
  metrics::TeacherRequest("t1", "m1", 0, "retryable", 0.1);
  metrics::Tokens("t1", "m1", "completion", 42);
  metrics::CostUsd("t1", "m1", 0.5);
  metrics::Retry("t1", "m1", "rate_limited", 1.5);
  metrics::InitTaskSeries("t1", "m1");
  metrics::TaskSettled("t1", "m1", "answered");
  const std::string text = metrics::TextExposition();
  EXPECT_TRUE(Has(text,
                  "distillery_teacher_requests_total{model=\"m1\",outcome=\""
                  "rate_limited\",status_class=\"4xx\",teacher=\"t1\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "status_class=\"none\"")) << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_request_duration_seconds_count{"
                        "model=\"m1\",teacher=\"t1\"} 2"));
  EXPECT_TRUE(Has(text, "distillery_tokens_total{kind=\"completion\",model=\""
                        "m1\",teacher=\"t1\"} 42"));
  EXPECT_TRUE(Has(text, "distillery_cost_usd_total{model=\"m1\",teacher=\"t1\"} 0.5"));
  EXPECT_TRUE(Has(text, "distillery_teacher_retry_wait_seconds_total{model=\""
                        "m1\",reason=\"rate_limited\",teacher=\"t1\"} 1.5"));
  // Initialised series exist at zero before their first event.
  EXPECT_TRUE(Has(text, "distillery_tasks_settled_total{model=\"m1\",outcome="
                        "\"failed\",teacher=\"t1\"} 0"));
  EXPECT_TRUE(Has(text, "distillery_tasks_settled_total{model=\"m1\",outcome="
                        "\"answered\",teacher=\"t1\"} 1"));
}

TEST(MetricsTest, CollectorsRunOnEachScrapeUntilTheirHandleGoes) {
  int calls = 0;
  auto handle = metrics::AddCollector([&calls] {
    ++calls;
    metrics::Family f;
    f.name = "distillery_test_value";
    f.help = "a test value";
    f.samples.push_back({{{"job_id", "job-1"}}, 7});
    return std::vector<metrics::Family>{f};
  });
  std::string text = metrics::TextExposition();
  EXPECT_TRUE(Has(text, "# TYPE distillery_test_value gauge")) << text;
  EXPECT_TRUE(Has(text, "distillery_test_value{job_id=\"job-1\"} 7")) << text;
  EXPECT_EQ(calls, 1);
  handle.reset();
  text = metrics::TextExposition();
  EXPECT_FALSE(Has(text, "distillery_test_value")) << text;
  EXPECT_EQ(calls, 1);
}

TEST(MetricsTest, LimitsArePerMinuteWhateverTheWindow) {
  metrics::TeacherLimits("windowed", 100, -1, 10, 4);
  const std::string text = metrics::TextExposition();
  EXPECT_TRUE(Has(text, "distillery_teacher_limit_requests_per_minute{teacher="
                        "\"windowed\"} 600"))
      << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_limit_tokens_per_minute{teacher="
                        "\"windowed\"} -1"))
      << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_limit_concurrency{teacher="
                        "\"windowed\"} 4"))
      << text;
}

TEST(MetricsTest, EachRoleExposesOnlyItsOwnFamilies) {
  metrics::PromptsSubmitted(1);
  metrics::InFlight("roles", 1);
  metrics::TeacherLimits("roles", 10, 10, 60, 1);
  metrics::ProcessStarted("worker");
  std::string text = metrics::TextExposition();
  EXPECT_FALSE(Has(text, "distillery_prompts_submitted_total")) << text;
  EXPECT_FALSE(Has(text, "distillery_tasks_settled_total")) << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_requests_in_flight")) << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_limit_concurrency")) << text;
  metrics::ProcessStarted("coordinator");
  text = metrics::TextExposition();
  EXPECT_TRUE(Has(text, "distillery_prompts_submitted_total")) << text;
  EXPECT_FALSE(Has(text, "distillery_teacher_requests_in_flight")) << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_limit_concurrency")) << text;
  metrics::ProcessStarted("cli");  // both, as for the other tests
  text = metrics::TextExposition();
  EXPECT_TRUE(Has(text, "distillery_prompts_submitted_total")) << text;
  EXPECT_TRUE(Has(text, "distillery_teacher_requests_in_flight")) << text;
}

// One exposer for the whole binary: its destructor blocks for about 2 s.
TEST(MetricsTest, ExposerServesOnAPortItPicks) {
  static auto* exposer = [] {
    auto e = MetricsExposer::Start("127.0.0.1:0");
    return e.ok() ? e->release() : nullptr;
  }();
  ASSERT_NE(exposer, nullptr);
  EXPECT_GT(exposer->port(), 0);
  EXPECT_FALSE(MetricsExposer::Start("256.0.0.1:1").ok());
}

}  // namespace
}  // namespace distillery
