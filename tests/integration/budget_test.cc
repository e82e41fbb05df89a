// A spend limit: a job with a budget below its cost pauses before it could
// go over, says why, and completes after `distillery resume` with a higher
// budget, paying for no answer twice.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

TEST(BudgetTest, PausesAtTheBudgetAndResumesWithMore) {
  const std::string dir = MakeTempDir("budget");
  std::string sim_address;
  auto sim = SpawnTeacherSim(dir, {"--latency-ms", "5"}, &sim_address);
  ASSERT_FALSE(sim_address.empty()) << sim->Stderr();
  // $1 per thousand tokens either way: a 64-token request costs at most
  // about $0.08, so a budget of $1 buys roughly a dozen of 40 prompts.
  const std::string teachers = dir + "/teachers.yaml";
  WriteFile(teachers,
            "teachers:\n" + SimTeacherProfile(sim_address) +
                "    rpm: 0\n    tpm: 0\n    max_concurrency: 4\n"
                "    pricing:\n      \"*\": {input: 1000, output: 1000}\n");
  auto coordinator = SpawnCoordinator(dir, "127.0.0.1:0", dir + "/data",
                                      teachers, {"--heartbeat-ms", "200"});
  const std::string address = coordinator->WaitForAddress();
  ASSERT_FALSE(address.empty()) << coordinator->Stderr();
  auto worker = SpawnWorker(dir, address, teachers);
  auto cli = [&](std::vector<std::string> args) {
    return RunCli(address, std::move(args), dir);
  };

  WriteFile(dir + "/p.jsonl", DistinctPrompts(40, "budget"));
  CommandResult submit = cli({"submit", dir + "/p.jsonl", "--teacher", "sim",
                              "--model", "sim-chat", "--max-tokens", "64",
                              "--budget-usd", "1"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string job = submit.out.substr(0, submit.out.find('\n'));

  CommandResult watch = cli({"watch", job});
  EXPECT_EQ(watch.exit_code, 3) << watch.out << watch.err;
  EXPECT_NE(watch.err.find("budget of $1.0000 reached"), std::string::npos)
      << watch.err;
  json paused = json::parse(cli({"status", job, "--json"}).out);
  EXPECT_EQ(paused.at("state"), "paused");
  const double spent = paused.at("cost_usd").get<double>();
  const int done = paused.at("tasks_done").get<int>();
  EXPECT_GT(done, 0);
  EXPECT_LT(done, 40);
  // Never past the budget: each lease reserved its task's most cost.
  EXPECT_LE(spent, 1.0);
  EXPECT_GT(spent, 0.5) << "stopped far short of the budget";

  // A lower or equal budget is refused; a higher one runs to the end.
  CommandResult refused = cli({"resume", job, "--budget-usd", "0.5"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("not above"), std::string::npos) << refused.err;
  CommandResult resume = cli({"resume", job, "--budget-usd", "100"});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  CommandResult watch2 = cli({"watch", job});
  EXPECT_EQ(watch2.exit_code, 0) << watch2.err;
  json final_status = json::parse(cli({"status", job, "--json"}).out);
  EXPECT_EQ(final_status.at("tasks_done"), 40);
  // Paid once: the simulator answered each prompt exactly once.
  json stats = json::parse(HttpGet(sim_address, "/stats"));
  EXPECT_EQ(stats.at("chat_completions_total"), 40);

  // Every record carries its cost, and they add up to the job's spend.
  const std::string raw = dir + "/raw.jsonl";
  ASSERT_EQ(cli({"export", job, "--format", "raw", "--finish-reason", "any",
                 "--include-duplicates", "--out", raw})
                .exit_code,
            0);
  double total = 0;
  int records = 0;
  std::istringstream lines(ReadFile(raw));
  for (std::string line; std::getline(lines, line);) {
    const double cost = json::parse(line).at("cost_usd").get<double>();
    EXPECT_GT(cost, 0);
    total += cost;
    ++records;
  }
  EXPECT_EQ(records, 40);
  EXPECT_NEAR(total, final_status.at("cost_usd").get<double>(), 1e-9);
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

// Two workers leasing and reporting at once, several jobs, costs in
// thousandths of a dollar (no binary fraction holds them exactly): every
// job must end paused at its budget with the reason. The old running sum
// of double reservations kept about half of them "running" forever, just
// under their budget, with nothing in flight.
TEST(BudgetTest, BudgetedJobsOnTwoWorkersAllPauseNeverHang) {
  constexpr int kJobs = 6;
  const std::string dir = MakeTempDir("budget-two-workers");
  std::string sim_address;
  auto sim = SpawnTeacherSim(dir, {"--latency-ms", "5"}, &sim_address);
  ASSERT_FALSE(sim_address.empty()) << sim->Stderr();
  const std::string teachers = dir + "/teachers.yaml";
  WriteFile(teachers,
            "teachers:\n" + SimTeacherProfile(sim_address) +
                "    rpm: 0\n    tpm: 0\n    max_concurrency: 8\n"
                "    pricing:\n      \"*\": {input: 1000, output: 1000}\n");
  auto coordinator = SpawnCoordinator(dir, "127.0.0.1:0", dir + "/data",
                                      teachers, {"--heartbeat-ms", "200"});
  const std::string address = coordinator->WaitForAddress();
  ASSERT_FALSE(address.empty()) << coordinator->Stderr();
  auto w0 = SpawnWorker(dir, address, teachers, {"--name", "w0"});
  auto w1 = SpawnWorker(dir, address, teachers, {"--name", "w1"});
  auto cli = [&](std::vector<std::string> args) {
    return RunCli(address, std::move(args), dir);
  };
  std::vector<std::string> jobs;
  for (int j = 0; j < kJobs; ++j) {
    std::string prompts;
    for (int i = 0; i < 40; ++i) {
      prompts += json({{"prompt", "job " + std::to_string(j) + " question " +
                                      std::to_string(i) +
                                      std::string(i * 7 % 50, '?')}})
                     .dump() + "\n";
    }
    const std::string file = dir + "/p" + std::to_string(j) + ".jsonl";
    WriteFile(file, prompts);
    CommandResult submit = cli({"submit", file, "--teacher", "sim", "--model",
                                "sim-chat", "--max-tokens", "64", "--budget-usd",
                                "0.7"});
    ASSERT_EQ(submit.exit_code, 0) << submit.err;
    jobs.push_back(submit.out.substr(0, submit.out.find('\n')));
  }
  for (const std::string& job : jobs) {
    json status;
    WaitUntil(
        [&] {
          status = json::parse(cli({"status", job, "--json"}).out);
          return status.at("state") != "running";
        },
        /*timeout_seconds=*/120, /*poll_ms=*/100);
    EXPECT_EQ(status.at("state"), "paused")
        << job << " never paused: " << status.dump();
    EXPECT_NE(status.value("error", "").find("budget of $0.7000 reached"),
              std::string::npos)
        << status.dump();
    // Reservations are estimates (prompt bytes / 4 + 4 a message), and
    // teacher-sim counts a prompt's tokens its own way: within a cent.
    EXPECT_LE(status.at("cost_usd").get<double>(), 0.71) << status.dump();
    EXPECT_LT(status.at("tasks_done").get<int>(), 40) << status.dump();
  }
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

TEST(BudgetTest, BudgetWithoutAPriceIsRefused) {
  const std::string dir = MakeTempDir("budget-noprice");
  const std::string teachers = dir + "/teachers.yaml";
  WriteFile(teachers, "teachers:\n  - name: sim\n    api: openai\n"
                      "    base_url: http://127.0.0.1:9/v1\n");
  auto coordinator =
      SpawnCoordinator(dir, "127.0.0.1:0", dir + "/data", teachers);
  const std::string address = coordinator->WaitForAddress();
  ASSERT_FALSE(address.empty()) << coordinator->Stderr();
  WriteFile(dir + "/p.jsonl", "{\"prompt\": \"q\"}\n");
  CommandResult r = RunCli(address,
                           {"submit", dir + "/p.jsonl", "--teacher", "sim",
                            "--model", "m", "--budget-usd", "5"},
                           dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("has no pricing for model 'm'"), std::string::npos)
      << r.err;
  CommandResult jobs = RunCli(address, {"jobs"}, dir);
  EXPECT_EQ(jobs.out.find("job-"), std::string::npos) << jobs.out;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace distillery::testing
