// Worker identity across coordinator crashes, with real processes on
// loopback: two workers started without --name on one host (so both are
// named after it) must stay two workers after each `kill -9` and restart
// of the coordinator. Ids used to be a counter plus the name, and the
// counter restarted at 1: the first worker to re-register could get the id
// the other still used, and the two then acted as one worker with one
// budget share each at full size, which a concurrency-limited teacher
// answers with 429s.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

constexpr int kConcurrency = 8;  // the teacher's limit and the profile's

class WorkerIdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("worker_ids");
    sim_ = SpawnTeacherSim(dir_,
                           {"--latency-ms", "100", "--max-concurrency",
                            std::to_string(kConcurrency)},
                           &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    WriteFile(dir_ + "/teachers.yaml",
              "teachers:\n" + SimTeacherProfile(sim_address_) +
                  "    max_concurrency: " + std::to_string(kConcurrency) +
                  "\n");
    // Picked once: the restarted coordinator is where workers look.
    address_ = "127.0.0.1:" + std::to_string(PickFreePort());
    metrics_ = "127.0.0.1:" + std::to_string(PickFreePort());
  }
  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Starts the coordinator, retrying while the killed one's port lingers.
  bool StartCoordinator() {
    for (int attempt = 0; attempt < 50; ++attempt) {
      coordinator_ = SpawnCoordinator(
          dir_, address_, dir_ + "/data", dir_ + "/teachers.yaml",
          {"--metrics-listen", metrics_, "--lease-seconds", "3",
           "--heartbeat-ms", "300"});
      if (coordinator_->WaitForAddress() == address_) return true;
      coordinator_->Signal(SIGKILL);
      coordinator_->Wait();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // Ids of the workers the coordinator heard from in the last second.
  std::set<std::string> LiveWorkerIds() {
    std::set<std::string> ids;
    const std::string prefix = "distillery_worker_last_seen_age_seconds{worker=\"";
    std::istringstream lines(HttpGet(metrics_, "/metrics"));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(prefix, 0) != 0) continue;
      const size_t end = line.find("\"}", prefix.size());
      if (end == std::string::npos) continue;
      if (std::stod(line.substr(end + 3)) < 1.0) {
        ids.insert(line.substr(prefix.size(), end - prefix.size()));
      }
    }
    return ids;
  }

  // Waits (up to 60 s: reconnection backoff) until two distinct workers
  // are live; returns them.
  std::set<std::string> WaitForTwoWorkers() {
    std::set<std::string> ids;
    WaitUntil(
        [&] {
          ids = LiveWorkerIds();
          return ids.size() == 2;
        },
        /*timeout_seconds=*/60, /*poll_ms=*/100);
    return ids;
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(address_, std::move(args), dir_, 60);
  }
  json Status(const std::string& job) {
    CommandResult r = Cli({"status", job, "--json"});
    return r.exit_code == 0 ? json::parse(r.out) : json();
  }
  int64_t Settled(const std::string& job) {
    json s = Status(job);
    return s.is_null() ? -1
                       : s.at("tasks_done").get<int64_t>() +
                             s.at("tasks_failed").get<int64_t>();
  }
  // Waits until the job has settled `n` tasks; false after 60 s.
  bool WaitForSettled(const std::string& job, int64_t n) {
    return WaitUntil([&] { return Settled(job) >= n; },
                     /*timeout_seconds=*/60, /*poll_ms=*/100);
  }
  int64_t Sim429s() {
    json stats = json::parse(HttpGet(sim_address_, "/stats"));
    const json& by_status = stats.at("by_status");
    return by_status.contains("429") ? by_status.at("429").get<int64_t>() : 0;
  }

  std::string dir_, sim_address_, address_, metrics_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(WorkerIdsTest, UnnamedWorkersOnOneHostStayTwoAcrossCoordinatorKills) {
  constexpr int kPrompts = 1600;  // ~20 s at the teacher's limit
  constexpr int kRestarts = 4;
  ASSERT_TRUE(StartCoordinator()) << coordinator_->Stderr();
  for (int i = 0; i < 2; ++i) {
    // No --name: both are named after this host.
    workers_.push_back(SpawnWorker(dir_, address_, dir_ + "/teachers.yaml"));
  }
  std::string prompts;
  for (int i = 0; i < kPrompts; ++i) {
    prompts += "{\"prompt\":\"worker id question " + std::to_string(i) +
               "\"}\n";
  }
  WriteFile(dir_ + "/prompts.jsonl", prompts);
  CommandResult submitted = Cli({"submit", dir_ + "/prompts.jsonl", "--teacher",
                                 "sim", "--model", "sim-small", "--max-tokens",
                                 "16"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = submitted.out.substr(0, submitted.out.find('\n'));

  std::set<std::string> all_ids;
  for (int restart = 0; restart <= kRestarts; ++restart) {
    std::set<std::string> ids = WaitForTwoWorkers();
    ASSERT_EQ(ids.size(), 2u)
        << "after restart " << restart << " the coordinator hears from "
        << ids.size() << " worker(s): two workers took one id";
    all_ids.insert(ids.begin(), ids.end());
    if (restart == kRestarts) break;
    // Some progress with both, so the kill falls mid-job.
    const int64_t settled = Settled(job);
    ASSERT_TRUE(WaitForSettled(job, settled + 40));
    ASSERT_LT(Settled(job), kPrompts) << "the job ended before the kills";
    coordinator_->Signal(SIGKILL);
    coordinator_->Wait();
    ASSERT_TRUE(StartCoordinator()) << coordinator_->Stderr();
  }
  // Each boot gave both workers new ids, none of them reused.
  EXPECT_EQ(all_ids.size(), 2u * (kRestarts + 1));

  // Once both have registered again and their shares have been renewed,
  // the teacher's limit holds: no 429 from there on. (Requests in flight
  // across the restart may overlap with the first new shares.)
  const int64_t settled = Settled(job);
  ASSERT_TRUE(WaitForSettled(job, settled + 40));
  const int64_t before = Sim429s();
  ASSERT_TRUE(WaitForSettled(job, kPrompts));
  json status = Status(job);
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  EXPECT_EQ(Sim429s(), before) << "the teacher's concurrency was exceeded";
  std::cout << "429s in total (most across restarts): " << Sim429s()
            << std::endl;
}

}  // namespace
}  // namespace distillery::testing
