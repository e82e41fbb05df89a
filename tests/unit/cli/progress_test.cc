#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "services/cli/commands.h"

namespace distillery::cli {
namespace {

v1::Job RunningJob(int64_t done, int64_t failed, int64_t total) {
  v1::Job job;
  job.set_id("job-000007");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_ms(1'000'000);
  job.mutable_counters()->set_tasks_total(total);
  job.mutable_counters()->set_tasks_done(done);
  job.mutable_counters()->set_tasks_failed(failed);
  job.mutable_counters()->set_cost_usd(1.23456);
  return job;
}

int Columns(const std::string& s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

TEST(ProgressBarTest, ShowsTheFiguresWithinTheWidth) {
  const std::string bar = ProgressBar(RunningJob(450, 50, 1000), 25, 100);
  EXPECT_EQ(Columns(bar), 100) << bar;
  EXPECT_EQ(bar.rfind("job-000007 [", 0), 0u) << bar;
  EXPECT_NE(bar.find(" 50.0% 500/1000 25.0/s eta 20s $1.2346 50 errors"),
            std::string::npos)
      << bar;
  EXPECT_NE(bar.find("\u2588"), std::string::npos);
  // Narrow terminals cut the line rather than wrap it.
  EXPECT_EQ(Columns(ProgressBar(RunningJob(1, 0, 3), 0, 30)), 30);
}

TEST(ProgressBarTest, HalfwayIsHalfFull) {
  const std::string bar = ProgressBar(RunningJob(1, 0, 2), 0, 80);
  const size_t open = bar.find('['), close = bar.find(']');
  const std::string inside = bar.substr(open + 1, close - open - 1);
  int full = 0, cells = Columns(inside);
  for (size_t at = 0; (at = inside.find("\u2588", at)) != std::string::npos;
       at += 3) {
    ++full;
  }
  EXPECT_EQ(full, cells / 2) << bar;  // an odd width adds a half cell
  EXPECT_NE(bar.find("eta ?"), std::string::npos) << bar;
}

TEST(ProgressBarTest, FormatsDurations) {
  EXPECT_EQ(FormatDuration(42.4), "42s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(7440), "2h04m");
  EXPECT_EQ(FormatDuration(-1), "?");
}

TEST(JobJsonTest, GivesTheWatchFiguresToScripts) {
  const nlohmann::json j =
      nlohmann::json::parse(JobJson(RunningJob(150, 50, 1000), 1'010'000));
  EXPECT_EQ(j.at("settled"), 200);
  EXPECT_EQ(j.at("pending"), 800);
  EXPECT_DOUBLE_EQ(j.at("percent").get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(j.at("elapsed_seconds").get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(j.at("rate_per_second").get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(j.at("eta_seconds").get<double>(), 40.0);
  EXPECT_DOUBLE_EQ(j.at("cost_usd").get<double>(), 1.23456);
  EXPECT_TRUE(
      nlohmann::json::parse(JobJson(RunningJob(0, 0, 10), 1'000'000))
          .at("eta_seconds")
          .is_null());
}

}  // namespace
}  // namespace distillery::cli
