// One rate budget for the whole cluster: three workers share a teacher whose
// limit teacher-sim enforces over a short window, and together stay under it
// without a 429 storm.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <sstream>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

constexpr int kWindowSeconds = 10;
constexpr int kRequestsPerWindow = 300;  // 30/s for the whole cluster
constexpr int kPrompts = 1200;           // four windows of work

class RateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("ratelimit"); }
  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Starts the simulator with the limit, a coordinator whose profile has
  // `profile_limits`, and three workers.
  void StartCluster(const std::string& profile_limits,
                    std::vector<std::string> sim_flags) {
    std::vector<std::string> args = {
        "--latency-ms", "20",
        "--rpm",        std::to_string(kRequestsPerWindow),
        "--window-s",   std::to_string(kWindowSeconds)};
    args.insert(args.end(), sim_flags.begin(), sim_flags.end());
    sim_ = SpawnTeacherSim(dir_, std::move(args), &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    const std::string teachers = dir_ + "/teachers.yaml";
    WriteFile(teachers,
              "teachers:\n" + SimTeacherProfile(sim_address_) +
                  "    limit_window_s: " + std::to_string(kWindowSeconds) +
                  "\n" + profile_limits);
    coordinator_ = SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data",
                                    teachers, {"--heartbeat-ms", "500"});
    coordinator_address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(coordinator_address_.empty()) << coordinator_->Stderr();
    for (int i = 0; i < 3; ++i) {
      workers_.push_back(SpawnWorker(dir_, coordinator_address_, teachers,
                                     {"--name", "w" + std::to_string(i)}));
    }
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(coordinator_address_, std::move(args), dir_);
  }

  // Harvests kPrompts; the job's final status. `first_window`: the
  // simulator's counters once a window's worth of answers is done.
  json Harvest(json* first_window = nullptr) {
    WriteFile(dir_ + "/prompts.jsonl",
              DistinctPrompts(kPrompts, "rate limited"));
    CommandResult submit = Cli({"submit", dir_ + "/prompts.jsonl", "--teacher",
                                "sim", "--model", "sim-chat", "--max-tokens",
                                "64"});
    EXPECT_EQ(submit.exit_code, 0) << submit.err;
    std::string job = submit.out.substr(0, submit.out.find('\n'));
    if (first_window != nullptr) {
      // Past the first window: more answered than one window admits.
      while (true) {
        const json stats = SimStats();
        if (stats.at("chat_completions_total").get<int64_t>() >
            kRequestsPerWindow) {
          *first_window = stats;
          break;
        }
        CommandResult st = Cli({"status", job, "--json"});
        if (st.exit_code != 0 ||
            json::parse(st.out).at("state") != "running") {
          ADD_FAILURE() << "the job ended before its second window";
          break;
        }
      }
    }
    CommandResult watch = Cli({"watch", job});
    EXPECT_EQ(watch.exit_code, 0) << watch.err;
    CommandResult status = Cli({"status", job, "--json"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    return json::parse(status.out);
  }

  json SimStats() { return json::parse(HttpGet(sim_address_, "/stats")); }

  std::string dir_, sim_address_, coordinator_address_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(RateLimitTest, ConfiguredLimitIsSharedWithoutA429Storm) {
  StartCluster("    rpm: " + std::to_string(kRequestsPerWindow) + "\n    tpm: 0\n",
               {});
  const json status = Harvest();
  EXPECT_EQ(status.at("tasks_done"), kPrompts);
  const json stats = SimStats();
  SCOPED_TRACE(stats.dump());
  // Together the workers never went over the limit in any window ...
  EXPECT_LE(stats.at("peak_window_requests").get<int>(), kRequestsPerWindow);
  // ... and hardly ever hit it.
  const int64_t requests = stats.at("chat_requests_total").get<int64_t>();
  const int64_t refused = stats.at("rate_limited_total").get<int64_t>();
  EXPECT_GE(requests, kPrompts);
  EXPECT_LT(refused * 100, requests) << refused << " 429s of " << requests;
  // Status shows the budget in force.
  EXPECT_EQ(status.at("teacher_status").at("configured_rpm"),
            kRequestsPerWindow);
  EXPECT_FALSE(status.at("teacher_status").at("paused").get<bool>());
}

// With the limit unknown, the workers start at their full concurrency
// (a teacher that has no limit must not be held to a guess), so the first
// wave may meet the limit: at most the requests in flight then are
// refused, each with a retry-after the workers keep to. From then on the
// learned limit holds.
void ExpectOneWaveThenNone(const json& first, const json& last) {
  const int64_t refused_first = first.at("rate_limited_total").get<int64_t>();
  EXPECT_LE(refused_first, 3 * 256) << "more than the first wave refused";
  const int64_t requests =
      last.at("chat_requests_total").get<int64_t>() -
      first.at("chat_requests_total").get<int64_t>();
  const int64_t refused =
      last.at("rate_limited_total").get<int64_t>() - refused_first;
  EXPECT_GE(requests, kRequestsPerWindow);
  EXPECT_LT(refused * 100, requests)
      << refused << " 429s of " << requests << " after the first window";
}

TEST_F(RateLimitTest, AnnouncedLimitIsLearnedFromHeaders) {
  // No limit in the profile: the teacher's x-ratelimit-limit-requests tells.
  StartCluster("    tpm: 0\n", {});
  json first;
  const json status = Harvest(&first);
  EXPECT_EQ(status.at("tasks_done"), kPrompts);
  const json stats = SimStats();
  SCOPED_TRACE(stats.dump());
  ExpectOneWaveThenNone(first, stats);
  EXPECT_DOUBLE_EQ(status.at("teacher_status").at("effective_rpm").get<double>(),
                   kRequestsPerWindow);
  EXPECT_FALSE(status.at("teacher_status").at("learning").get<bool>());
}

TEST_F(RateLimitTest, UnannouncedLimitIsLearnedFrom429s) {
  // No limit in the profile and no headers: only 429s tell.
  StartCluster("    tpm: 0\n", {"--no-ratelimit-headers"});
  json first;
  const json status = Harvest(&first);
  EXPECT_EQ(status.at("tasks_done"), kPrompts);
  const json stats = SimStats();
  SCOPED_TRACE(stats.dump());
  ExpectOneWaveThenNone(first, stats);
  // What the teacher admitted before its first 429 is the limit learned.
  const double learned =
      status.at("teacher_status").at("effective_rpm").get<double>();
  EXPECT_GE(learned, 0.8 * kRequestsPerWindow);
  EXPECT_LE(learned, 1.1 * kRequestsPerWindow);
  EXPECT_FALSE(status.at("teacher_status").at("learning").get<bool>());
}

TEST_F(RateLimitTest, QuotaExhaustionPausesTheTeacher) {
  // A key with no quota left: every request answers 429 insufficient_quota.
  StartCluster("    rpm: 0\n    tpm: 0\n    max_concurrency: 3\n",
               {"--quota-exhausted"});
  std::string prompts;
  for (int i = 0; i < 50; ++i) {
    prompts += json({{"prompt", "q" + std::to_string(i)}}).dump() + "\n";
  }
  WriteFile(dir_ + "/p.jsonl", prompts);
  CommandResult submit = Cli({"submit", dir_ + "/p.jsonl", "--teacher", "sim",
                              "--model", "sim-chat"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job = submit.out.substr(0, submit.out.find('\n'));
  json status;
  for (int i = 0; i < 500; ++i) {
    status = json::parse(Cli({"status", job, "--json"}).out);
    if (status.at("teacher_status").at("paused").get<bool>()) break;
  }
  EXPECT_TRUE(status.at("teacher_status").at("paused").get<bool>());
  EXPECT_NE(status.at("teacher_status").at("pause_reason").get<std::string>().find(
                "quota"),
            std::string::npos)
      << status.dump();
  EXPECT_EQ(status.at("state"), "running");
  EXPECT_EQ(status.at("tasks_failed"), 0);
  // Not retried in a loop: a handful of requests, not 50 x attempts.
  const int64_t sent = SimStats().at("chat_requests_total").get<int64_t>();
  EXPECT_LE(sent, 3 * 4) << "workers kept hammering a teacher with no quota";
  CommandResult text = Cli({"status", job});
  EXPECT_NE(text.out.find("PAUSED"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace distillery::testing
