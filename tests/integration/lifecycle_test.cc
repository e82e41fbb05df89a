// Stops, restarts and cancels that must cost nothing twice: real processes
// on loopback against a slow teacher-sim, whose GET /stats counts the
// requests it saw (on arrival). The prompts are distinct and the sim injects
// no fault, so a job of N prompts must cost exactly N requests.
//   - SIGTERM to the coordinator mid-job, then a restart: its lease table
//     is saved and restored, and workers keep what they hold.
//   - kill -9 of the coordinator, then a restart: workers announce what
//     they hold within the restart grace period.
//   - SIGTERM to a worker mid-job: its tasks go back at once, not at their
//     lease deadline (600 s here, longer than any wait below).
//   - distillery cancel mid-job: within one heartbeat the worker drops what
//     it queued for the job.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

constexpr int kConcurrency = 8;

int64_t Requests(Cluster& cluster) {
  return cluster.SimStats().at("chat_requests_total").get<int64_t>();
}

bool Ended(const json& s) { return s.at("state") != "running"; }

std::function<bool(const json&)> DoneAtLeast(int n) {
  return [n](const json& s) {
    return s.at("tasks_done").get<int>() >= n;
  };
}

ClusterOptions SlowTeacher(int latency_ms, std::vector<std::string> extra) {
  ClusterOptions o;
  o.sim_args = {"--latency-ms", std::to_string(latency_ms)};
  o.max_concurrency = kConcurrency;
  o.coordinator_args = {"--heartbeat-ms", "200", "--lease-seconds", "600"};
  o.coordinator_args.insert(o.coordinator_args.end(), extra.begin(),
                            extra.end());
  return o;
}

// The coordinator stops (`sig`) while both workers have requests in flight
// and starts again: the job completes and no prompt was asked twice.
void RestartCoordinatorMidJob(const std::string& tag, int sig,
                              std::vector<std::string> coordinator_args) {
  constexpr int kPrompts = 48;
  const std::string dir = MakeTempDir(tag);
  Cluster cluster(dir, SlowTeacher(1500, std::move(coordinator_args)));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  WriteFile(dir + "/p.jsonl", DistinctPrompts(kPrompts, tag));
  const std::string job = cluster.Submit(dir + "/p.jsonl");
  ASSERT_FALSE(job.empty());
  ASSERT_FALSE(cluster.WaitFor(job, DoneAtLeast(kConcurrency), 120).is_null());

  cluster.coordinator().Signal(sig);
  const int code = cluster.coordinator().Wait();
  if (sig == SIGTERM) {
    EXPECT_EQ(code, 0) << cluster.coordinator().Stderr();
  }
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();

  const json end = cluster.WaitFor(job, Ended, 240);
  ASSERT_FALSE(end.is_null()) << "the job did not end";
  EXPECT_EQ(end.at("state"), "completed") << end.dump();
  EXPECT_EQ(end.at("tasks_done"), kPrompts);
  EXPECT_EQ(Requests(cluster), kPrompts) << "a prompt was asked twice";
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

TEST(LifecycleTest, CoordinatorSigtermMidJobPaysNothingTwice) {
  RestartCoordinatorMidJob("sigterm-coordinator", SIGTERM, {});
}

TEST(LifecycleTest, CoordinatorKillMidJobPaysNothingTwiceWithinTheGrace) {
  // Long enough for both workers to reconnect and announce what they hold.
  RestartCoordinatorMidJob("kill-coordinator", SIGKILL,
                           {"--restart-grace-ms", "15000"});
}

// Worker 0 is stopped while it has requests in flight (its own in-flight
// gauge says so); worker 1 finishes the job. With `drain_seconds` long enough, w0's requests are answered
// and reported, and nothing is asked twice; with a drain too short for the
// teacher, what w0 still had in flight goes back at once.
// The worker's own distillery_teacher_requests_in_flight, from its /metrics;
// -1 while the page cannot be read.
int64_t InFlightOf(const std::string& metrics_address) {
  const std::string page = HttpGet(metrics_address, "/metrics");
  const std::string name = "distillery_teacher_requests_in_flight{";
  int64_t total = -1;
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    total = std::max<int64_t>(total, 0) +
            static_cast<int64_t>(std::stod(line.substr(space + 1)));
  }
  return total;
}

bool WaitForInFlight(const std::string& metrics_address, int timeout_seconds) {
  return WaitUntil([&] { return InFlightOf(metrics_address) > 0; },
                   timeout_seconds, /*poll_ms=*/20);
}

void StopWorkerMidJob(const std::string& tag, const std::string& drain_seconds,
                      int latency_ms, bool drain_outlasts_requests) {
  constexpr int kPrompts = 48;
  const std::string dir = MakeTempDir(tag);
  Cluster cluster(dir, SlowTeacher(latency_ms, {}));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  const std::string w0_metrics = "127.0.0.1:" + std::to_string(PickFreePort());
  cluster.StartWorker(0, {"--drain-seconds", drain_seconds, "--metrics-listen",
                          w0_metrics});
  WriteFile(dir + "/p.jsonl", DistinctPrompts(kPrompts, tag));
  const std::string job = cluster.Submit(dir + "/p.jsonl");
  ASSERT_FALSE(job.empty());
  // The stop must find w0 itself with requests in flight, so w1 starts only
  // once they are: the cluster-wide concurrency goes to the workers that
  // ask first, and could otherwise all be w1's.
  ASSERT_TRUE(WaitForInFlight(w0_metrics, 120))
      << "w0 never had a request in flight\n" << cluster.worker(0).Stderr();
  cluster.StartWorker(1);

  cluster.worker(0).Signal(SIGTERM);
  EXPECT_EQ(cluster.worker(0).Wait(), 0) << cluster.worker(0).Stderr();
  const int64_t at_exit = Requests(cluster);

  // Leases last 600 s: ending well before means the tasks came back.
  const json end = cluster.WaitFor(job, Ended, 240);
  ASSERT_FALSE(end.is_null()) << "w0's tasks waited for their lease deadline";
  EXPECT_EQ(end.at("state"), "completed") << end.dump();
  EXPECT_EQ(end.at("tasks_done"), kPrompts);
  const int64_t paid_twice = Requests(cluster) - kPrompts;
  std::cout << tag << ": " << at_exit << " requests when w0 exited, "
            << paid_twice << " paid twice" << std::endl;
  if (drain_outlasts_requests) {
    EXPECT_EQ(paid_twice, 0);
  } else {
    // Only what w0 had sent and not seen answered, at most its share of
    // the concurrency.
    EXPECT_GE(paid_twice, 0);
    EXPECT_LE(paid_twice, kConcurrency);
    EXPECT_NE(cluster.worker(0).Stderr().find("given back"),
              std::string::npos);
  }
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

TEST(LifecycleTest, WorkerSigtermMidJobPaysNothingTwice) {
  StopWorkerMidJob("sigterm-worker", "30", 500, true);
}

TEST(LifecycleTest, WorkerDrainTimeoutGivesRequestsInFlightBackAtOnce) {
  StopWorkerMidJob("drain-timeout", "0", 3000, false);
}

TEST(LifecycleTest, CancelStopsRequestsForTheJobWithinAHeartbeat) {
  constexpr int kPrompts = 200;
  constexpr int kSecondJob = 8;
  const std::string dir = MakeTempDir("cancel");
  // Answers take 3 s; the worker holds twice what it may send at once.
  Cluster cluster(dir, SlowTeacher(3000, {}));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", DistinctPrompts(kPrompts, "cancel"));
  const std::string job = cluster.Submit(dir + "/p.jsonl");
  ASSERT_FALSE(job.empty());
  ASSERT_FALSE(cluster.WaitFor(job, DoneAtLeast(kConcurrency), 120).is_null());

  CommandResult cancel = cluster.Cli({"cancel", job});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  const int64_t at_cancel = Requests(cluster);
  // The worker's next heartbeat revokes the job's leases and it drops what
  // it queued.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (cluster.worker(0).Stderr().find("leases were revoked") ==
             std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(cluster.worker(0).Stderr().find("leases were revoked"),
            std::string::npos)
      << "the worker kept the cancelled job's queued tasks";
  const int64_t after_heartbeat = Requests(cluster);

  // A second job goes through the same queue: once it is done, whatever the
  // worker still held of the first would have been sent.
  WriteFile(dir + "/q.jsonl", DistinctPrompts(kSecondJob, "second"));
  const std::string second = cluster.Submit(dir + "/q.jsonl");
  ASSERT_FALSE(second.empty());
  const json end = cluster.WaitFor(second, Ended, 120);
  ASSERT_FALSE(end.is_null());
  EXPECT_EQ(end.at("state"), "completed");
  const int64_t total = Requests(cluster);
  std::cout << "cancel: " << at_cancel << " requests at cancel, "
            << after_heartbeat - at_cancel << " before the heartbeat, "
            << total - after_heartbeat - kSecondJob << " after" << std::endl;
  // Before the heartbeat only a freed slot could send one more: at most
  // what was in flight. After it, nothing.
  EXPECT_LE(after_heartbeat - at_cancel, kConcurrency);
  EXPECT_EQ(total - after_heartbeat - kSecondJob, 0)
      << "requests for the cancelled job after a heartbeat";
  const json cancelled = cluster.Status(job);
  EXPECT_EQ(cancelled.at("state"), "cancelled");
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace distillery::testing
