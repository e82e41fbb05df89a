// Never silent, never surprising (issue 18): real processes on loopback show
// that a job no worker can serve says so (submit, status, watch, metrics),
// that a teacher that is misaddressed (404) or not there (connection
// refused) pauses with the reason instead of dead-lettering every task, that
// a job whose every task failed ends FAILED and `watch` exits by the
// documented table, that a repeated prompt is exported once, and that job
// states, ids, worker names and the coordinator's log say what happened.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

constexpr int kMaxConcurrency = 4;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

// teacher-sim, a coordinator serving metrics, workers on demand and the CLI,
// all in one temp dir.
class StatesTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("states"); }
  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Starts teacher-sim with `sim_args` and the coordinator; the profile
  // "sim" points at `base_url` ("" for the sim's /v1, a path for another
  // path on the sim) with `extra` YAML.
  void Start(std::vector<std::string> sim_args, std::string base_url = "",
             const std::string& extra = "") {
    sim_ = SpawnTeacherSim(dir_, std::move(sim_args), &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    if (base_url.empty()) base_url = "/v1";
    if (base_url[0] == '/') base_url = "http://" + sim_address_ + base_url;
    teachers_ = dir_ + "/teachers.yaml";
    WriteFile(teachers_,
              "teachers:\n  - name: sim\n    api: openai\n"
              "    base_url: " +
                  base_url +
                  "\n"
                  "    max_tokens_field: max_tokens\n"
                  "    rpm: 0\n    tpm: 0\n    max_concurrency: " +
                  std::to_string(kMaxConcurrency) + "\n" + extra);
    metrics_port_ = PickFreePort();
    coordinator_ =
        SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data", teachers_,
                         {"--heartbeat-ms", "200", "--metrics-listen",
                          "127.0.0.1:" + std::to_string(metrics_port_)});
    address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(address_.empty()) << coordinator_->Stderr();
  }

  void StartWorker(const std::string& name) {
    workers_.push_back(
        SpawnWorker(dir_, address_, teachers_, {"--name", name}));
  }

  CommandResult Cli(std::vector<std::string> args, int timeout = 120) {
    return RunCli(address_, std::move(args), dir_, timeout);
  }

  // Submits `text` as a prompt file; returns the job id ("" on failure,
  // with the command's result in *result).
  std::string Submit(const std::string& text, CommandResult* result = nullptr,
                     const std::string& file = "prompts.jsonl") {
    WriteFile(dir_ + "/" + file, text);
    CommandResult r = Cli({"submit", dir_ + "/" + file, "--teacher", "sim",
                           "--model", "sim-small", "--max-tokens", "32"});
    if (result) *result = r;
    if (r.exit_code != 0) return "";
    return r.out.substr(0, r.out.find('\n'));
  }

  json Status(const std::string& job) {
    CommandResult r = Cli({"status", job, "--json"});
    if (r.exit_code != 0) return json();
    return json::parse(r.out);
  }

  json SimStats() { return json::parse(HttpGet(sim_address_, "/stats")); }
  std::string Metrics() {
    return HttpGet("127.0.0.1:" + std::to_string(metrics_port_), "/metrics");
  }

  // Waits until `job`'s teacher is paused; returns the last status seen.
  json WaitForTeacherPause(const std::string& job) {
    json status;
    WaitUntil(
        [&] {
          status = Status(job);
          return !status.is_null() &&
                 status.at("teacher_status").at("paused").get<bool>();
        },
        /*timeout_seconds=*/60, /*poll_ms=*/100);
    return status;
  }

  std::string dir_, sim_address_, teachers_, address_;
  int metrics_port_ = 0;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(StatesTest, AJobNoWorkerServesSaysSoUntilOneComes) {
  ASSERT_NO_FATAL_FAILURE(Start({"--latency-ms", "5"}));
  CommandResult submitted;
  const std::string job = Submit(DistinctPrompts(10, "lonely"), &submitted);
  ASSERT_FALSE(job.empty()) << submitted.err;
  EXPECT_NE(submitted.err.find("warning: no live worker serves teacher sim"),
            std::string::npos)
      << submitted.err;

  CommandResult status = Cli({"status", job});
  EXPECT_NE(status.out.find("no live worker serves teacher sim"),
            std::string::npos)
      << status.out;
  EXPECT_EQ(Status(job).at("teacher_status").at("live_workers"), 0);
  EXPECT_NE(Metrics().find("distillery_teacher_live_workers{teacher=\"sim\"} 0"),
            std::string::npos)
      << Metrics();

  // `watch` says it while it lasts, then follows the job to its end once a
  // worker registers.
  Process watch("distillery", {"--coordinator", address_, "watch", job}, dir_);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return watch.Stdout().find("no live worker serves teacher sim") !=
               std::string::npos;
      },
      /*timeout_seconds=*/60, /*poll_ms=*/100))
      << watch.Stdout();
  StartWorker("w1");
  EXPECT_EQ(watch.Wait(), 0) << watch.Stdout() << watch.Stderr();
  const std::string out = watch.Stdout();
  const std::string last = out.substr(out.rfind(job));
  EXPECT_EQ(last.find("no live worker"), std::string::npos) << out;
  EXPECT_TRUE(WaitUntil(
      [&] {
        return Metrics().find(
                   "distillery_teacher_live_workers{teacher=\"sim\"} 1") !=
               std::string::npos;
      },
      /*timeout_seconds=*/60, /*poll_ms=*/100))
      << Metrics();
}

TEST_F(StatesTest, AWrongBaseUrlPausesTheTeacherWithTheReason) {
  // teacher-sim answers 404 to any path but its API's.
  ASSERT_NO_FATAL_FAILURE(Start({"--latency-ms", "5"}, "/wrong"));
  StartWorker("w1");
  const std::string job = Submit(DistinctPrompts(40, "lost"));
  ASSERT_FALSE(job.empty());
  const json status = WaitForTeacherPause(job);
  ASSERT_TRUE(status.at("teacher_status").at("paused").get<bool>())
      << status.dump();
  const std::string reason =
      status.at("teacher_status").at("pause_reason").get<std::string>();
  EXPECT_NE(reason.find("404"), std::string::npos) << reason;
  EXPECT_EQ(status.at("state"), "running");
  EXPECT_EQ(status.at("tasks_failed"), 0);
  // No more requests than were in flight when the first 404 came back.
  EXPECT_LE(SimStats().at("requests_total").get<int64_t>(), kMaxConcurrency)
      << SimStats().dump();
  CommandResult shown = Cli({"status", job});
  EXPECT_NE(shown.out.find("paused: "), std::string::npos) << shown.out;
}

TEST_F(StatesTest, AnUnreachableTeacherPausesWithTheReason) {
  const int closed = PickFreePort();  // nothing listens there
  ASSERT_NO_FATAL_FAILURE(Start(
      {"--latency-ms", "5"}, "http://127.0.0.1:" + std::to_string(closed) +
                                 "/v1"));
  StartWorker("w1");
  const std::string job = Submit(DistinctPrompts(40, "nobody"));
  ASSERT_FALSE(job.empty());
  const json status = WaitForTeacherPause(job);
  ASSERT_TRUE(status.at("teacher_status").at("paused").get<bool>())
      << status.dump();
  const std::string reason =
      status.at("teacher_status").at("pause_reason").get<std::string>();
  EXPECT_NE(reason.find("unreachable"), std::string::npos) << reason;
  EXPECT_NE(reason.find(std::to_string(closed)), std::string::npos) << reason;
  EXPECT_EQ(status.at("state"), "running");
  EXPECT_EQ(status.at("tasks_failed"), 0);
}

TEST_F(StatesTest, WatchExitCodesFollowTheDocumentedTable) {
  // One attempt per task: a 500 dead-letters it.
  ASSERT_NO_FATAL_FAILURE(Start({"--latency-ms", "1", "--fault-rates",
                                 "500=1"},
                                "", "    max_attempts: 1\n"));
  StartWorker("w1");
  const std::string job = Submit(DistinctPrompts(12, "doomed"));
  ASSERT_FALSE(job.empty());
  CommandResult watch = Cli({"watch", job});
  EXPECT_EQ(watch.exit_code, 5) << watch.out << watch.err;
  const json status = Status(job);
  EXPECT_EQ(status.at("state"), "failed");
  EXPECT_EQ(status.at("tasks_failed"), 12);
  const std::string error = status.at("error").get<std::string>();
  EXPECT_NE(error.find("all 12 tasks failed"), std::string::npos) << error;
  EXPECT_NE(error.find("HTTP 500"), std::string::npos) << error;
  EXPECT_NE(watch.err.find("failed: all 12 tasks failed"), std::string::npos)
      << watch.err;
  // The log records the end once, with its counts.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return Count(coordinator_->Stderr(), "job " + job + " failed: 0/12") ==
               1;
      },
      /*timeout_seconds=*/60, /*poll_ms=*/100))
      << coordinator_->Stderr();

  // Some dead letters: completed, exit 4.
  workers_.clear();
  sim_.reset();
  coordinator_.reset();
  std::filesystem::remove_all(dir_ + "/data");
  ASSERT_NO_FATAL_FAILURE(Start({"--latency-ms", "1", "--fault-rates",
                                 "500=0.5", "--seed", "3"},
                                "", "    max_attempts: 1\n"));
  StartWorker("w1");
  const std::string some = Submit(DistinctPrompts(40, "unlucky"));
  ASSERT_FALSE(some.empty());
  watch = Cli({"watch", some});
  const json some_status = Status(some);
  ASSERT_EQ(some_status.at("state"), "completed") << some_status.dump();
  ASSERT_GT(some_status.at("tasks_failed").get<int>(), 0);
  ASSERT_GT(some_status.at("tasks_done").get<int>(), 0);
  EXPECT_EQ(watch.exit_code, 4) << watch.out << watch.err;

  // Cancelled: 6 (no worker serves it any more, so it cannot finish first).
  workers_.clear();
  const std::string cancelled = Submit(DistinctPrompts(5, "cancelled"));
  ASSERT_FALSE(cancelled.empty());
  ASSERT_EQ(Cli({"cancel", cancelled}).exit_code, 0);
  watch = Cli({"watch", cancelled});
  EXPECT_EQ(watch.exit_code, 6) << watch.out << watch.err;
}

TEST_F(StatesTest, ARepeatedPromptIsExportedOnceByDefault) {
  ASSERT_NO_FATAL_FAILURE(Start({"--latency-ms", "1"}));
  StartWorker("w1");
  std::string text;
  for (int round = 0; round < 3; ++round) text += DistinctPrompts(10, "again");
  const std::string job = Submit(text);
  ASSERT_FALSE(job.empty());
  ASSERT_EQ(Cli({"watch", job}).exit_code, 0);
  ASSERT_EQ(Status(job).at("cache_hits"), 20);

  CommandResult exported = Cli(
      {"export", job, "--finish-reason", "any", "--out", dir_ + "/d.jsonl"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::istringstream lines(ReadFile(dir_ + "/d.jsonl"));
  std::map<std::string, int> seen;  // sort | uniq -d
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) ++seen[line];
  EXPECT_EQ(n, 10);
  for (const auto& [line, count] : seen) EXPECT_EQ(count, 1) << line;

  // Asked for, the repeats come back.
  exported = Cli({"export", job, "--include-duplicates", "--finish-reason",
                  "any", "--out", dir_ + "/all.jsonl"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_EQ(Count(ReadFile(dir_ + "/all.jsonl"), "\n"), 30);
}

TEST_F(StatesTest, StatesIdsNamesAndLogSayWhatHappened) {
  ASSERT_NO_FATAL_FAILURE(Start({"--latency-ms", "1"}));
  // A rejected submission uses no job id.
  CommandResult rejected;
  EXPECT_EQ(Submit("{\"prompt\": \"fine\"}\nnot json\n", &rejected, "bad.jsonl"),
            "");
  EXPECT_EQ(rejected.exit_code, 2) << rejected.err;
  // A teacher that never answered has learned nothing from it.
  CommandResult submitted;
  const std::string job = Submit(DistinctPrompts(6, "named"), &submitted);
  EXPECT_EQ(job, "job-000001") << submitted.err;
  CommandResult shown = Cli({"status", job});
  EXPECT_EQ(shown.out.find("learned from the teacher"), std::string::npos)
      << shown.out;

  StartWorker("w2");
  ASSERT_EQ(Cli({"watch", job}).exit_code, 0);
  const json done = Status(job);
  ASSERT_EQ(done.at("state"), "completed");
  const std::string log = coordinator_->Stderr();
  // The worker's id starts with its name, once; its answers carry the name.
  EXPECT_NE(log.find("worker w2-"), std::string::npos) << log;
  EXPECT_EQ(log.find("w2-w2"), std::string::npos) << log;
  CommandResult raw =
      Cli({"export", job, "--format", "raw", "--finish-reason", "any", "--out",
           dir_ + "/raw.jsonl"});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  const std::string records = ReadFile(dir_ + "/raw.jsonl");
  EXPECT_EQ(Count(records, "\"worker\":\"w2\""), 6) << records;
  // The end is logged once, with its counts.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return Count(coordinator_->Stderr(),
                     "job " + job + " completed: 6/6 tasks answered") == 1;
      },
      /*timeout_seconds=*/60, /*poll_ms=*/100))
      << coordinator_->Stderr();

  // Retry with no dead letters and cancel of a finished job change nothing
  // and log no change of state.
  CommandResult retry = Cli({"retry", job});
  EXPECT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_EQ(retry.out, job + " completed\n");
  CommandResult cancel = Cli({"cancel", job});
  EXPECT_EQ(cancel.out, job + " completed\n");
  const json after = Status(job);
  EXPECT_EQ(after.at("finished_ms"), done.at("finished_ms"));
  EXPECT_EQ(after.at("state"), "completed");
  const std::string later = coordinator_->Stderr();
  EXPECT_EQ(later.find("job " + job + " cancelled"), std::string::npos)
      << later;
  EXPECT_EQ(later.find("state 3"), std::string::npos) << later;
  EXPECT_NE(later.find("retry of job " + job + ": it is completed"),
            std::string::npos)
      << later;
  EXPECT_EQ(Count(later, "job " + job + " completed: "), 1) << later;
}

}  // namespace
}  // namespace distillery::testing
