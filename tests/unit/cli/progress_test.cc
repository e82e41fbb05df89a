#include <gtest/gtest.h>

#include <cctype>

#include "nlohmann/json.hpp"
#include "services/cli/commands.h"
#include "services/cli/progress.h"

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
  job.mutable_spec()->set_teacher("sim");
  job.mutable_teacher_status()->set_name("sim");
  job.mutable_teacher_status()->set_live_workers(1);
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
  EXPECT_NE(bar.find(" 50.0% 500/1000 25.0/s eta 20s $1.2346 50 failed"),
            std::string::npos)
      << bar;
  EXPECT_NE(bar.find("\u2588"), std::string::npos);
  // Narrow terminals cut the line rather than wrap it.
  EXPECT_EQ(Columns(ProgressBar(RunningJob(1, 0, 3), 0, 30)), 30);
}

TEST(ProgressBarTest, ABatchJobShowsAnswersByBatchAndTasksWaitingInBatches) {
  v1::Job job = RunningJob(300, 0, 1000);
  job.mutable_spec()->set_mode(v1::JOB_MODE_BATCH);
  job.mutable_counters()->set_batch_answers(280);
  job.mutable_counters()->set_teacher_requests(300);
  job.mutable_counters()->set_tasks_in_batches(600);
  const std::string bar = ProgressBar(job, 10, 160);
  EXPECT_NE(bar.find(" by-batch 280 in-batches 600"), std::string::npos)
      << bar;
  const std::string line = ProgressLine(job, 10);
  EXPECT_NE(line.find(" by-batch 280 online 20 in-batches 600"),
            std::string::npos)
      << line;
  // An online job shows neither.
  const std::string online = ProgressBar(RunningJob(300, 0, 1000), 10, 160);
  EXPECT_EQ(online.find("by-batch"), std::string::npos) << online;
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

// Errors in flight show before any task is dead-lettered (issue 18).
TEST(ProgressBarTest, CountsTheTeachersErrorsAndRetriesNotOnlyDeadLetters) {
  v1::Job job = RunningJob(10, 0, 100);
  job.mutable_teacher_status()->set_errors_total(7);
  job.mutable_teacher_status()->set_rate_limited_total(3);
  const std::string bar = ProgressBar(job, 5, 120);
  EXPECT_NE(bar.find("0 failed 7 errors 3 429s"), std::string::npos) << bar;
  EXPECT_NE(ProgressLine(job, 5).find("teacher 7 errors 3 429s"),
            std::string::npos)
      << ProgressLine(job, 5);
}

TEST(ProgressBarTest, SaysWhenNoLiveWorkerServesTheTeacher) {
  v1::Job job = RunningJob(0, 0, 20);
  job.mutable_teacher_status()->set_live_workers(0);
  const std::string message = "no live worker serves teacher sim";
  EXPECT_NE(ProgressBar(job, 0, 200).find(message), std::string::npos)
      << ProgressBar(job, 0, 200);
  EXPECT_NE(ProgressLine(job, 0).find(message), std::string::npos);
  EXPECT_NE(nlohmann::json::parse(JobJson(job, 1'000'000))
                .at("waiting")
                .get<std::string>()
                .find(message),
            std::string::npos);
  // Not once it has one, nor when the job is over.
  job.mutable_teacher_status()->set_live_workers(1);
  EXPECT_EQ(ProgressLine(job, 0).find("no live worker"), std::string::npos);
  job.mutable_teacher_status()->set_live_workers(0);
  job.set_state(v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(ProgressLine(job, 0).find("no live worker"), std::string::npos);
}

// Every state of the proto enum (from its descriptor) is rendered by name,
// by status (line and JSON) and by watch, and watch's exit code for it
// follows the README's table.
TEST(JobStatesTest, EveryStateIsRenderedByNameWithItsExitCode) {
  const google::protobuf::EnumDescriptor* d = v1::JobState_descriptor();
  for (int i = 0; i < d->value_count(); ++i) {
    const auto state = static_cast<v1::JobState>(d->value(i)->number());
    if (state == v1::JOB_STATE_UNSPECIFIED) continue;
    std::string lower =
        d->value(i)->name().substr(std::string("JOB_STATE_").size());
    for (char& c : lower) c = static_cast<char>(std::tolower(c));
    v1::Job job = RunningJob(5, 0, 10);
    job.set_state(state);
    EXPECT_NE(ProgressLine(job, 0).find(" " + lower + " "), std::string::npos)
        << ProgressLine(job, 0);
    EXPECT_EQ(nlohmann::json::parse(JobJson(job, 1'000'000)).at("state"),
              lower);
    const std::string bar = ProgressBar(job, 0, 200);
    if (state != v1::JOB_STATE_RUNNING && state != v1::JOB_STATE_SUBMITTING) {
      EXPECT_NE(bar.find(lower), std::string::npos) << bar;
    }
  }
  v1::Job job = RunningJob(10, 0, 10);
  job.set_state(v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(WatchExitCode(job), 0);
  job.mutable_counters()->set_tasks_done(9);
  job.mutable_counters()->set_tasks_failed(1);
  EXPECT_EQ(WatchExitCode(job), kExitDeadLetters);
  EXPECT_EQ(kExitDeadLetters, 4);
  job.set_state(v1::JOB_STATE_PAUSED);
  EXPECT_EQ(WatchExitCode(job), 3);
  job.set_state(v1::JOB_STATE_FAILED);
  EXPECT_EQ(WatchExitCode(job), 5);
  job.set_state(v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(WatchExitCode(job), 6);
}

TEST(TeacherLineTest, SaysWhereLimitsComeFrom) {
  v1::TeacherStatus t;
  t.set_name("sim");
  t.set_window_ms(60000);
  t.set_learning(true);
  // Never answered: nothing was learned from it.
  std::string line = TeacherLine(t);
  EXPECT_EQ(line.find("learned from the teacher"), std::string::npos) << line;
  EXPECT_NE(line.find("no limit known yet"), std::string::npos) << line;
  EXPECT_NE(line.find("unknown yet rpm"), std::string::npos) << line;
  // Configured and in force.
  t.set_learning(false);
  t.set_configured_rpm(100);
  t.set_effective_rpm(100);
  line = TeacherLine(t);
  EXPECT_EQ(line.find("learned"), std::string::npos) << line;
  EXPECT_NE(line.find("100 rpm"), std::string::npos) << line;
  // Cut by 429s, or announced by its headers.
  t.set_effective_rpm(85);
  EXPECT_NE(TeacherLine(t).find("learned from the teacher"), std::string::npos);
  t.set_paused(true);
  t.set_pause_reason("HTTP 401");
  EXPECT_NE(TeacherLine(t).find("PAUSED: HTTP 401"), std::string::npos);
}

}  // namespace
}  // namespace distillery::cli
