// Chaos: a job of thousands of prompts (a tenth of them 20-60 KB) against a
// teacher-sim that misbehaves on ~23% of requests (500, 503 with
// retry-after, 529, resets, cut bodies, keep-alive padding, slow answers,
// 400 error pages that are not UTF-8), while the coordinator is SIGKILLed
// twice and SIGTERMed once, and workers SIGKILLed three times and SIGTERMed
// once, at random moments, each restarted on the same data dir and address.
// At the end every prompt is answered or dead-lettered with a reason, the
// export has no duplicate, and the answers paid for twice (teacher-sim's
// count of answers to a request it had answered before) are no more than
// what was in flight at the SIGKILLs: a SIGTERM pays nothing twice, which
// GracefulStopsPayNothingTwice checks on its own. Also: `distillery retry`
// harvests dead letters again.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

// `n` distinct prompts, so every answer is paid for once. With
// `large_every` > 0, every large_every-th prompt is padded to 20-60 KB
// (its size drawn from `rng`), so leases and reports carry heavy tasks.
std::string MakePromptFile(int n, int large_every = 0,
                           std::mt19937_64* rng = nullptr) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    json row;
    row["id"] = "p" + std::to_string(i);
    std::string prompt = "Chaos prompt " + std::to_string(i) +
                         " about subject " + std::to_string(i * 7919 % 10007);
    if (large_every > 0 && i % large_every == 0) {
      const size_t bytes =
          std::uniform_int_distribution<size_t>(20 << 10, 60 << 10)(*rng);
      prompt += " context:";
      for (int w = 0; prompt.size() < bytes; ++w) {
        prompt += " word" + std::to_string((i + w) % 977);
      }
    }
    row["prompt"] = prompt;
    text += row.dump() + "\n";
  }
  return text;
}

// The profile's concurrency, cluster-wide: what can be in flight at a kill.
constexpr int kMaxConcurrency = 16;

// A cluster for chaos: leases of 3 s renewed every 300 ms, so that a killed
// worker's tasks come back within seconds.
Cluster ChaosCluster(const std::string& dir, std::vector<std::string> sim_args,
                     std::string teacher_extra) {
  ClusterOptions options;
  options.sim_args = std::move(sim_args);
  options.teacher_extra = std::move(teacher_extra);
  options.max_concurrency = kMaxConcurrency;
  options.coordinator_args = {"--lease-seconds", "3", "--heartbeat-ms", "300"};
  return Cluster(dir, std::move(options));
}

bool Ended(const json& status) { return status.at("state") != "running"; }

// One chaos run: `stops` in random order (c/w: SIGKILL of the coordinator or
// a worker; C/W: SIGTERM), each when the job has reached a random point,
// against teacher-sim with `fault_rates`. Checks that nothing is lost and
// nothing exported twice; returns teacher-sim's /stats and the numbers of
// SIGKILLs through `coordinator_kills` and `worker_kills`.
// `check` judges the run from teacher-sim's /stats before the run's
// directory (its processes' logs) is removed, which happens only when no
// check failed.
json RunChaos(const std::string& tag, std::vector<char> stops,
              const std::string& fault_rates, const std::string& timeouts,
              int* coordinator_kills, int* worker_kills,
              const std::function<void(const json& stats)>& check) {
  constexpr int kPrompts = 3000;
  constexpr int kWorkers = 2;
  const std::string dir = MakeTempDir(tag);
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Cluster cluster = ChaosCluster(
      dir,
      {"--latency-ms", "20", "--seed", std::to_string(seed % 100000),
       "--fault-rates", fault_rates, "--slow-ms", "1500", "--pad-count", "4",
       "--pad-interval-ms", "100"},
      timeouts);
  EXPECT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  for (int i = 0; i < kWorkers; ++i) cluster.StartWorker(i);

  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(kPrompts, /*large_every=*/10, &rng));
  const std::string job = cluster.Submit(prompts, {"--max-tokens", "64"});
  EXPECT_EQ(job.rfind("job-", 0), 0u) << job;

  std::shuffle(stops.begin(), stops.end(), rng);
  std::vector<double> at;
  for (size_t i = 0; i < stops.size(); ++i) {
    at.push_back(std::uniform_real_distribution<double>(0.05, 0.8)(rng));
  }
  std::sort(at.begin(), at.end());
  *coordinator_kills = 0;
  *worker_kills = 0;
  for (size_t k = 0; k < stops.size(); ++k) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(300);
    while (std::chrono::steady_clock::now() < deadline) {
      json s = cluster.Status(job);
      if (!s.is_null() && s.at("tasks_done").get<double>() +
                                  s.at("tasks_failed").get<double>() >=
                              at[k] * kPrompts) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(0, 300)(rng)));
    const char stop = stops[k];
    const int sig = std::islower(stop) ? SIGKILL : SIGTERM;
    if (stop == 'c' || stop == 'C') {
      const int code = cluster.StopCoordinator(sig);
      if (sig == SIGKILL) {
        ++*coordinator_kills;
      } else {
        EXPECT_EQ(code, 0) << "coordinator SIGTERM: "
                           << cluster.coordinator().Stderr();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::uniform_int_distribution<int>(0, 1000)(rng)));
      bool up = false;
      for (int attempt = 0; attempt < 20 && !up; ++attempt) {
        up = cluster.StartCoordinator();
        if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      EXPECT_TRUE(up) << cluster.coordinator().Stderr();
      if (!up) return nullptr;
    } else {
      const int w = std::uniform_int_distribution<int>(0, kWorkers - 1)(rng);
      const int code = cluster.StopWorker(w, sig);
      if (sig == SIGKILL) {
        ++*worker_kills;
      } else {
        EXPECT_EQ(code, 0) << "worker SIGTERM";
      }
      cluster.StartWorker(w);
    }
  }

  // Resumes by itself: no command is needed after a restart.
  const json status = cluster.WaitFor(job, Ended, 600, /*poll_ms=*/200);
  EXPECT_FALSE(status.is_null()) << "job did not end";
  if (status.is_null()) return nullptr;
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  const int64_t done = status.at("tasks_done").get<int64_t>();
  const int64_t failed = status.at("tasks_failed").get<int64_t>();
  EXPECT_EQ(done + failed, kPrompts) << status.dump();

  // Every prompt exactly once: answered, or dead-lettered with a reason.
  const std::string raw = dir + "/raw.jsonl";
  CommandResult exported =
      cluster.Cli({"export", job, "--format", "raw", "--include-duplicates",
                   "--include-failed", "--finish-reason", "any", "--out", raw});
  EXPECT_EQ(exported.exit_code, 0) << exported.err;
  std::vector<json> records = ReadJsonLines(raw);
  std::set<std::string> ids;
  int64_t answered = 0, dead = 0;
  for (const json& r : records) {
    EXPECT_TRUE(ids.insert(r.at("prompt_id").get<std::string>()).second)
        << "duplicate record " << r.at("prompt_id");
    if (r.at("state") == "done") {
      ++answered;
      EXPECT_TRUE(!r.at("content").get<std::string>().empty() ||
                  !r.at("duplicate_of").is_null())
          << r.dump();
    } else {
      ++dead;
      const std::string error = r.at("error").get<std::string>();
      EXPECT_FALSE(error.empty()) << r.dump();
    }
  }
  EXPECT_EQ(records.size(), static_cast<size_t>(kPrompts));
  EXPECT_EQ(answered, done);
  EXPECT_EQ(dead, failed);

  const json stats = cluster.SimStats();
  std::cout << tag << ": seed " << seed << ", " << answered << " answered, "
            << dead << " dead-lettered, "
            << stats.at("chat_completions_total") << " answers paid for, "
            << stats.at("chat_completions_repeated") << " paid twice, "
            << *coordinator_kills << " + " << *worker_kills
            << " SIGKILLs, faults " << stats.at("faults").dump() << std::endl;
  int64_t injected = 0;
  for (const auto& [kind, n] : stats.at("faults").items()) {
    injected += n.get<int64_t>();
  }
  EXPECT_GT(injected, kPrompts / 10) << "the faults were not injected";
  EXPECT_GT(stats.at("faults").value("latin1", 0), 0)
      << "no error page that is not UTF-8 was sent";

  // SIGTERM drains the restarted processes as well as the originals.
  for (int code : cluster.Terminate()) EXPECT_EQ(code, 0);
  check(stats);
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
  return stats;
}

TEST(ChaosTest, KillsAndFaultsLoseNothingAndPayTwiceAtMostWhatWasInFlight) {
  int coordinator_kills = 0, worker_kills = 0;
  const json stats = RunChaos(
      "chaos", {'c', 'c', 'C', 'w', 'w', 'w', 'W'},
      "500=0.05,503=0.04,529=0.02,reset=0.03,truncate=0.03,pad=0.02,"
      "slow=0.01,latin1=0.03",
      "    idle_timeout_ms: 5000\n    total_timeout_ms: 20000\n",
      &coordinator_kills, &worker_kills, [&](const json& stats) {
        // Paid twice: bounded by what can be in flight at a SIGKILL: every
        // worker's requests for a coordinator kill, one worker's for a
        // worker kill. The SIGTERMs add nothing.
        const int64_t bound =
            kMaxConcurrency * (coordinator_kills * 2 + worker_kills);
        EXPECT_LE(stats.at("chat_completions_repeated").get<int64_t>(),
                  bound);
      });
  ASSERT_FALSE(stats.is_null());
}

// Graceful stops only: the coordinator saves its leases and the workers
// announce what they hold, a worker drains and gives back what it did not
// send. Not one request is answered twice.
TEST(ChaosTest, GracefulStopsPayNothingTwice) {
  int coordinator_kills = 0, worker_kills = 0;
  // No slow or cut answers, and timeouts far above any answer's time even
  // on a loaded machine: a request that times out after the teacher
  // answered it is paid twice by design, whatever the stops do.
  const json stats = RunChaos(
      "graceful", {'C', 'C', 'W', 'W', 'W'},
      "500=0.05,503=0.04,529=0.02,reset=0.03,latin1=0.03",
      "    idle_timeout_ms: 30000\n    total_timeout_ms: 60000\n",
      &coordinator_kills, &worker_kills, [](const json& stats) {
        EXPECT_EQ(stats.at("chat_completions_repeated").get<int64_t>(), 0);
      });
  ASSERT_FALSE(stats.is_null());
}

// Teacher I/O, one misbehaviour at a time, through teacher-sim and a real
// worker: each is classified, retried, and either answered or dead-lettered
// with a reason that says what happened.
struct IoCase {
  std::string name;
  std::vector<std::string> sim_args;
  std::string teacher_extra;  // YAML lines for the profile
  bool answered;              // every task answered, or every task failed
  std::string reason;         // in each dead letter's error
  std::string max_tokens = "64";
  bool some = false;  // only some tasks fail (answers vary in length)
};

class TeacherIoTest : public ::testing::TestWithParam<IoCase> {};

TEST_P(TeacherIoTest, IsClassifiedAndRetried) {
  const IoCase& c = GetParam();
  constexpr int kPrompts = 4;
  const std::string dir = MakeTempDir("teacher_io");
  Cluster cluster =
      ChaosCluster(dir, c.sim_args, "    max_attempts: 2\n" + c.teacher_extra);
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(kPrompts));
  const std::string job =
      cluster.Submit(prompts, {"--max-tokens", c.max_tokens});
  const json status = cluster.WaitFor(job, Ended, 120, /*poll_ms=*/200);
  ASSERT_FALSE(status.is_null());
  // A job whose every task failed ends FAILED, with the reason.
  const bool all_failed = !c.answered && !c.some;
  EXPECT_EQ(status.at("state"), all_failed ? "failed" : "completed");
  if (all_failed) {
    EXPECT_NE(status.at("error").get<std::string>().find(c.reason),
              std::string::npos)
        << status.at("error");
  }
  if (c.some) {
    EXPECT_GE(status.at("tasks_failed"), 1);
    EXPECT_EQ(status.at("tasks_done").get<int>() +
                  status.at("tasks_failed").get<int>(),
              kPrompts);
  } else {
    EXPECT_EQ(status.at("tasks_done"), c.answered ? kPrompts : 0);
    EXPECT_EQ(status.at("tasks_failed"), c.answered ? 0 : kPrompts);
  }
  const std::string errors = dir + "/errors.jsonl";
  ASSERT_EQ(cluster.Cli({"export", job, "--format", "errors", "--out", errors})
                .exit_code,
            0);
  for (const json& letter : ReadJsonLines(errors)) {
    const std::string error = letter.at("error").get<std::string>();
    EXPECT_NE(error.find(c.reason), std::string::npos) << error;
    EXPECT_NE(error.find("after 2 attempts"), std::string::npos) << error;
  }
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, TeacherIoTest,
    ::testing::Values(
        IoCase{"Truncated200",
               {"--fault-rates", "truncate=1"},
               "",
               false,
               "transfer closed with"},
        IoCase{"ConnectionReset",
               {"--fault-rates", "reset=1"},
               "",
               false,
               "Connection reset by peer"},
        IoCase{"Status503", {"--fault-rates", "503=1"}, "", false, "503"},
        IoCase{"Status529", {"--fault-rates", "529=1"}, "", false, "529"},
        // Padding for 2 s, a line every 250 ms: the idle timeout (1 s) is
        // reset by each line, so the answer arrives.
        IoCase{"LongKeepAlivePadding",
               {"--fault-rates", "pad=1", "--pad-count", "8",
                "--pad-interval-ms", "250"},
               "    idle_timeout_ms: 1000\n",
               true,
               ""},
        // Nothing at all for 3 s: the idle timeout fires first ...
        IoCase{"StalledPastIdleTimeout",
               {"--fault-rates", "slow=1", "--slow-ms", "3000"},
               "    idle_timeout_ms: 500\n",
               false,
               "idle timeout"},
        // ... or, with a generous idle timeout, the total one.
        IoCase{"StalledPastTotalTimeout",
               {"--fault-rates", "slow=1", "--slow-ms", "3000"},
               "    idle_timeout_ms: 10000\n    total_timeout_ms: 800\n",
               false,
               "total timeout"},
        IoCase{"ResponseOverTheCap",
               {},
               "    max_response_bytes: 1024\n",
               false,
               "max_response_bytes",
               "2000",
               true}),
    [](const ::testing::TestParamInfo<IoCase>& info) {
      return info.param.name;
    });

TEST(TeacherDownTest, SpentQuotaPausesTheTeacherWithoutHammeringIt) {
  constexpr int kPrompts = 200;
  const std::string dir = MakeTempDir("quota");
  Cluster cluster = ChaosCluster(dir, {"--fault-rates", "quota=1"}, "");
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(kPrompts));
  const std::string job = cluster.Submit(prompts, {"--max-tokens", "64"});
  json status;
  for (int i = 0; i < 600; ++i) {
    status = json::parse(cluster.Cli({"status", job, "--json"}).out);
    if (status.at("teacher_status").at("paused").get<bool>()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // The teacher is paused for the cluster with the reason; the job waits.
  ASSERT_TRUE(status.at("teacher_status").at("paused").get<bool>());
  EXPECT_EQ(status.at("state"), "running");
  const std::string reason =
      status.at("teacher_status").at("pause_reason").get<std::string>();
  EXPECT_NE(reason.find("quota"), std::string::npos) << reason;
  // The tasks stay pending for when the account is fixed.
  EXPECT_EQ(status.at("tasks_done"), 0);
  EXPECT_EQ(status.at("tasks_failed"), 0);
  // Never hammered: no more requests than the worker had in flight.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const json stats = cluster.SimStats();
  EXPECT_LE(stats.at("requests_total").get<int64_t>(), kMaxConcurrency)
      << stats.dump();
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

TEST(RetryTest, RetryHarvestsDeadLettersAgainUntilNoneAreLeft) {
  constexpr int kPrompts = 200;
  const std::string dir = MakeTempDir("retry");
  // One attempt per task, half of them failing: many dead letters.
  Cluster cluster =
      ChaosCluster(dir, {"--fault-rates", "500=0.5", "--seed", "3"},
                   "    max_attempts: 1\n");
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(kPrompts));
  const std::string job = cluster.Submit(prompts, {"--max-tokens", "64"});
  json status = cluster.WaitFor(job, Ended, 120, /*poll_ms=*/200);
  ASSERT_FALSE(status.is_null());
  ASSERT_EQ(status.at("state"), "completed");
  const int64_t failed = status.at("tasks_failed").get<int64_t>();
  ASSERT_GT(failed, kPrompts / 4);

  // The dead letters, each with its reason.
  const std::string errors = dir + "/errors.jsonl";
  ASSERT_EQ(cluster.Cli({"export", job, "--format", "errors", "--out", errors})
                .exit_code,
            0);
  std::vector<json> letters = ReadJsonLines(errors);
  ASSERT_EQ(letters.size(), static_cast<size_t>(failed));
  EXPECT_NE(letters[0].at("error").get<std::string>().find("500"),
            std::string::npos)
      << letters[0].dump();

  int rounds = 0;
  while (status.at("tasks_failed").get<int64_t>() > 0 && rounds < 20) {
    ++rounds;
    CommandResult r = cluster.Cli({"retry", job});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, job + " running\n");
    status = cluster.WaitFor(job, Ended, 120, /*poll_ms=*/200);
    ASSERT_FALSE(status.is_null());
    EXPECT_EQ(status.at("state"), "completed");
    EXPECT_EQ(status.at("tasks_done").get<int64_t>() +
                  status.at("tasks_failed").get<int64_t>(),
              kPrompts);
  }
  EXPECT_EQ(status.at("tasks_failed"), 0) << "after " << rounds << " retries";
  EXPECT_EQ(status.at("tasks_done"), kPrompts);
  EXPECT_GE(rounds, 1);

  // Unknown and cancelled jobs are refused with a reason.
  CommandResult unknown = cluster.Cli({"retry", "job-999999"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no job 'job-999999'"), std::string::npos)
      << unknown.err;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace distillery::testing
