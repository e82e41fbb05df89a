// `distillery run`, the embedded single-machine cluster, against a real
// teacher-sim: Ctrl-C keeps the job and prints the command that resumes it,
// a later run harvests only its own file (never the interrupted job behind
// the user's back), and every summary counts exactly the requests the
// teacher saw.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

// The figure of "this run: N teacher requests sent" in a run's stderr.
int64_t RequestsSent(const std::string& err) {
  std::smatch m;
  static const std::regex kSent("this run: (\\d+) teacher requests sent");
  EXPECT_TRUE(std::regex_search(err, m, kSent)) << err;
  return m.empty() ? -1 : std::stoll(m[1].str());
}

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("run");
    // Slow answers, few at a time: the first job is still harvesting when
    // it is interrupted.
    sim_ = SpawnTeacherSim(dir_, {"--latency-ms", "150"}, &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    teachers_ = dir_ + "/teachers.yaml";
    WriteFile(teachers_, "teachers:\n" + SimTeacherProfile(sim_address_) +
                             "    max_concurrency: 2\n");
    data_dir_ = dir_ + "/data";
  }

  void TearDown() override {
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> RunArgs(const std::string& file,
                                   const std::string& out) {
    return {"run",       file,       "--teachers", teachers_, "--teacher",
            "sim",       "--model",  "sim-chat",   "--data-dir", data_dir_,
            "--out",     out,        "--workers",  "1"};
  }

  int64_t SimRequests() {
    const std::string body = HttpGet(sim_address_, "/stats");
    if (body.empty()) return -1;
    return json::parse(body).at("chat_completions_total").get<int64_t>();
  }

  std::string dir_, teachers_, sim_address_, data_dir_;
  std::unique_ptr<Process> sim_;
};

// An embedded worker sends as many requests at once as it may have in
// flight (256), as distillery-worker does: its HTTP client has a connection
// for each, where curl's default of 64 per host used to queue the rest.
// Seen by a teacher that answers after 2 s and takes 100 at a time: 150
// requests at once is more than it takes, so it refuses some (429) and
// they are answered when retried.
TEST_F(RunTest, EmbeddedWorkerSendsUpToItsInFlightCapAtOnce) {
  std::string narrow_address;
  std::unique_ptr<Process> narrow = SpawnTeacherSim(
      dir_,
      {"--latency-ms", "2000", "--max-concurrency", "100",
       "--no-ratelimit-headers"},
      &narrow_address);
  ASSERT_FALSE(narrow_address.empty()) << narrow->Stderr();
  const std::string teachers = dir_ + "/narrow.yaml";
  WriteFile(teachers, "teachers:\n" + SimTeacherProfile(narrow_address));
  const std::string prompts = dir_ + "/wide.jsonl";
  WriteFile(prompts, DistinctPrompts(150, "w", /*ids=*/true));
  CommandResult run = RunCommand(
      "distillery",
      {"run", prompts, "--teachers", teachers, "--teacher", "sim", "--model",
       "sim-chat", "--data-dir", dir_ + "/wide-data", "--out",
       dir_ + "/wide-out.jsonl", "--workers", "1"},
      dir_, 120);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(CountLines(ReadFile(dir_ + "/wide-out.jsonl")), 150);
  const json stats = json::parse(HttpGet(narrow_address, "/stats"));
  EXPECT_GT(stats.at("rate_limited_total").get<int64_t>(), 0)
      << "never more than 100 requests in flight at once: " << stats.dump();
}

TEST_F(RunTest, CtrlCKeepsTheJobAndALaterRunHarvestsOnlyItsOwnFile) {
  const std::string a = dir_ + "/a.jsonl";
  const std::string b = dir_ + "/b.jsonl";
  WriteFile(a, DistinctPrompts(60, "a", /*ids=*/true));
  WriteFile(b, DistinctPrompts(10, "b", /*ids=*/true));

  // Run A, interrupted once the teacher has seen a few requests.
  Process run_a("distillery", RunArgs(a, dir_ + "/a-out.jsonl"), dir_);
  WaitUntil([&] { return SimRequests() >= 4 || !run_a.Running(); },
            /*timeout_seconds=*/60, /*poll_ms=*/20);
  ASSERT_TRUE(run_a.Running()) << run_a.Stderr();
  ASSERT_GE(SimRequests(), 4);
  run_a.Signal(SIGINT);
  EXPECT_EQ(run_a.Wait(), 130) << run_a.Stderr();
  const std::string err_a = run_a.Stderr();
  EXPECT_NE(err_a.find("interrupted: stopping"), std::string::npos) << err_a;
  EXPECT_NE(err_a.find("job job-000001 is kept in " + data_dir_), std::string::npos)
      << err_a;
  const std::string resume = "distillery run --resume job-000001 --teachers " +
                             teachers_ + " --data-dir " + data_dir_ +
                             " --workers 1 --out " + dir_ + "/a-out.jsonl";
  EXPECT_NE(err_a.find("Resume it with:\n  " + resume + "\n"), std::string::npos)
      << err_a;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/a-out.jsonl"));
  // The summary counts what the teacher saw: in-flight requests finished.
  const int64_t after_a = SimRequests();
  EXPECT_EQ(RequestsSent(err_a), after_a);
  EXPECT_LT(after_a, 60) << "the job ran to the end before Ctrl-C";

  // Run B on the same data dir: A is named and left alone.
  CommandResult run_b =
      RunCommand("distillery", RunArgs(b, dir_ + "/b-out.jsonl"), dir_, 120);
  ASSERT_EQ(run_b.exit_code, 0) << run_b.err;
  EXPECT_NE(run_b.err.find("holds 1 unfinished job(s) of earlier runs, left "
                           "as they are"),
            std::string::npos)
      << run_b.err;
  EXPECT_NE(run_b.err.find("job-000001 (a.jsonl, running "), std::string::npos)
      << run_b.err;
  EXPECT_EQ(SimRequests() - after_a, 10) << "run B paid for job A";
  EXPECT_EQ(RequestsSent(run_b.err), 10);
  EXPECT_EQ(CountLines(ReadFile(dir_ + "/b-out.jsonl")), 10);
  EXPECT_EQ(ReadFile(dir_ + "/b-out.jsonl").find("a question"),
            std::string::npos);

  // Resuming A, as the interrupted run said: only its missing answers are
  // paid for, and the export has all of it.
  const int64_t before_resume = SimRequests();
  CommandResult resumed = RunCommand(
      "distillery",
      {"run", "--resume", "job-000001", "--teachers", teachers_, "--data-dir",
       data_dir_, "--workers", "1", "--out", dir_ + "/a-out.jsonl"},
      dir_, 120);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(resumed.err.find("unfinished job"), std::string::npos)
      << resumed.err;
  const int64_t paid = SimRequests() - before_resume;
  EXPECT_EQ(RequestsSent(resumed.err), paid);
  EXPECT_EQ(paid + after_a, 60) << "an answer was paid for twice or lost";
  EXPECT_EQ(CountLines(ReadFile(dir_ + "/a-out.jsonl")), 60);
}

TEST_F(RunTest, ResumeNeedsAJobOfTheDataDirAndAFileNeedsTeacherAndModel) {
  CommandResult r = RunCommand("distillery",
                               {"run", "--resume", "job-000009", "--teachers",
                                teachers_, "--data-dir", data_dir_},
                               dir_, 60);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("error: --resume: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("job-000009"), std::string::npos) << r.err;

  // An export flag typo is refused before anything is paid for.
  const std::string file = dir_ + "/one.jsonl";
  WriteFile(file, DistinctPrompts(1, "x", /*ids=*/true));
  std::vector<std::string> args = RunArgs(file, dir_ + "/out.jsonl");
  args.insert(args.end(), {"--finish-reason", "stopp"});
  r = RunCommand("distillery", args, dir_, 60);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no teacher reports 'stopp'"), std::string::npos)
      << r.err;
  EXPECT_EQ(SimRequests(), 0);

  r = RunCommand("distillery",
                 {"run", dir_ + "/x.jsonl", "--teachers", teachers_}, dir_, 60);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("give FILE with --teacher and --model, or --resume JOB"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace distillery::testing
