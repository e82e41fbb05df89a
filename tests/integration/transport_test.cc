// The coordinator link under weight and weather, with real processes on
// loopback: prompts and answers whose batches outgrow gRPC's default 4 MB
// (leases, reports and export chunks are cut to the message limit), a
// teacher whose error pages are Latin-1 (reports stay parseable, the job
// completes), and a coordinator restart after which the worker is back
// within seconds (the reconnect backoff is capped at about 2 s, not gRPC's
// 120 s).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// `n` distinct prompts of about `bytes` bytes each.
std::string MakePromptFile(int n, size_t bytes) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    std::string prompt = "Prompt " + std::to_string(i) + ":";
    while (prompt.size() < bytes) {
      prompt += " word" + std::to_string((prompt.size() * 7919 + i) % 10007);
    }
    json row;
    row["id"] = "p" + std::to_string(i);
    row["prompt"] = prompt;
    text += row.dump() + "\n";
  }
  return text;
}

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("transport");
    // Picked once: a restarted coordinator listens where the worker looks.
    coordinator_address_ = "127.0.0.1:" + std::to_string(PickFreePort());
  }

  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void StartSim(std::vector<std::string> args, int max_concurrency) {
    sim_ = SpawnTeacherSim(dir_, std::move(args), &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    teachers_ = dir_ + "/teachers.yaml";
    WriteFile(teachers_, "teachers:\n" + SimTeacherProfile(sim_address_) +
                             "    max_concurrency: " +
                             std::to_string(max_concurrency) + "\n");
  }

  bool StartCoordinator(std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--heartbeat-ms", "300"});
    coordinator_ = SpawnCoordinator(dir_, coordinator_address_, dir_ + "/data",
                                    teachers_, std::move(extra));
    return coordinator_->WaitForAddress() == coordinator_address_;
  }

  void StartWorker(std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(),
                 {"--name", "w" + std::to_string(workers_.size())});
    workers_.push_back(
        SpawnWorker(dir_, coordinator_address_, teachers_, std::move(extra)));
  }

  CommandResult Cli(std::vector<std::string> args, int timeout = 300) {
    return RunCli(coordinator_address_, std::move(args), dir_, timeout);
  }

  std::string Submit(const std::string& file) {
    CommandResult r = Cli({"submit", file, "--teacher", "sim", "--model",
                           "sim-small", "--max-tokens", "64"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string last;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) last = line;
    }
    return last;
  }

  // The job's status, or null while the coordinator is down.
  json Status(const std::string& job) {
    CommandResult r = Cli({"status", job, "--json"}, 30);
    if (r.exit_code != 0) return nullptr;
    return json::parse(r.out);
  }

  // Polls until the job ends; its last status, or null on timeout.
  json WaitForEnd(const std::string& job, int timeout_seconds) {
    json s;
    if (WaitUntil(
            [&] {
              s = Status(job);
              return !s.is_null() && s.at("state") != "running";
            },
            timeout_seconds, /*poll_ms=*/200)) {
      return s;
    }
    return nullptr;
  }

  std::string Logs() const {
    std::string logs = coordinator_ ? coordinator_->Stderr() : "";
    for (const auto& w : workers_) logs += "\n--- worker\n" + w->Stderr();
    return logs;
  }

  // Harvests `prompts` prompts of 40 KB and exports them; every record must
  // come back whole.
  void HarvestAndExportLargePrompts(int prompts, size_t answer_bytes) {
    const std::string file = dir_ + "/prompts.jsonl";
    WriteFile(file, MakePromptFile(prompts, 40 << 10));
    const std::string job = Submit(file);
    ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
    const json status = WaitForEnd(job, 120);
    ASSERT_FALSE(status.is_null()) << "the job stalled\n" << Logs();
    EXPECT_EQ(status.at("state"), "completed");
    EXPECT_EQ(status.at("tasks_done"), prompts) << status.dump();
    EXPECT_EQ(status.at("tasks_failed"), 0) << status.dump();

    const std::string out = dir_ + "/export.jsonl";
    // Every record, answers cut at max_tokens included.
    CommandResult r = Cli({"export", job, "--format", "raw", "--finish-reason",
                           "any", "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::vector<json> records = ReadJsonLines(out);
    ASSERT_EQ(records.size(), static_cast<size_t>(prompts));
    for (const json& record : records) {
      EXPECT_GE(record.dump().size(), size_t{40} << 10);
      if (answer_bytes > 0) {
        EXPECT_GE(record.dump().size(), (size_t{40} << 10) + answer_bytes);
      }
    }
  }

  std::string dir_, teachers_, sim_address_, coordinator_address_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

// 160 prompts of 40 KB: a lease of 256 of them is 6.5 MB, over gRPC's
// default 4 MB; so is an export chunk of 256 records.
TEST_F(TransportTest, PromptsOf40KbHarvestAndExportWithDefaultLimits) {
  StartSim({}, 256);
  ASSERT_TRUE(StartCoordinator()) << coordinator_->Stderr();
  StartWorker();
  HarvestAndExportLargePrompts(160, 0);
}

// With a 1 MB limit every batch must be cut by bytes: a lease holds about
// 25 such prompts, a report about 16 answers of 30 KB (with their raw
// bodies), an export chunk about 10 records.
TEST_F(TransportTest, LeasesReportsAndExportChunksAreCutToTheMessageLimit) {
  StartSim({"--answer-bytes", "30000"}, 256);
  ASSERT_TRUE(StartCoordinator({"--max-message-mb", "1", "--max-prompt-bytes",
                                "100000"}))
      << coordinator_->Stderr();
  StartWorker({"--max-message-mb", "1"});
  HarvestAndExportLargePrompts(160, 30000);
}

// A coordinator that could not lease its largest prompt refuses to start.
TEST_F(TransportTest, PromptLimitThatCannotFitAMessageIsRefusedAtStart) {
  StartSim({}, 4);
  EXPECT_FALSE(StartCoordinator({"--max-message-mb", "1"}));
  EXPECT_NE(coordinator_->Wait(), 0);
  EXPECT_NE(coordinator_->Stderr().find("--max-message-mb"),
            std::string::npos)
      << coordinator_->Stderr();
}

// A teacher that answers some requests 400 with a Latin-1 HTML page: those
// tasks are dead-lettered with a readable (UTF-8) reason, the others are
// answered, and the job completes.
TEST_F(TransportTest, Latin1ErrorPagesAreDeadLetteredAndTheJobCompletes) {
  constexpr int kPrompts = 100;
  StartSim({"--fault-rates", "latin1=0.3", "--seed", "11"}, 16);
  ASSERT_TRUE(StartCoordinator()) << coordinator_->Stderr();
  StartWorker();
  const std::string file = dir_ + "/prompts.jsonl";
  WriteFile(file, MakePromptFile(kPrompts, 100));
  const std::string job = Submit(file);
  const json status = WaitForEnd(job, 120);
  ASSERT_FALSE(status.is_null()) << "the job stalled\n" << Logs();
  EXPECT_EQ(status.at("state"), "completed");
  const int failed = status.at("tasks_failed").get<int>();
  EXPECT_GE(failed, kPrompts / 10) << "the fault was not injected";
  EXPECT_EQ(status.at("tasks_done").get<int>() + failed, kPrompts);

  const std::string errors = dir_ + "/errors.jsonl";
  ASSERT_EQ(Cli({"export", job, "--format", "errors", "--out", errors})
                .exit_code,
            0);
  const std::vector<json> letters = ReadJsonLines(errors);  // valid JSON
  EXPECT_EQ(letters.size(), static_cast<size_t>(failed));
  for (const json& letter : letters) {
    const std::string error = letter.at("error").get<std::string>();
    EXPECT_NE(error.find("400"), std::string::npos) << error;
    EXPECT_NE(error.find("caract\xEF\xBF\xBDre"), std::string::npos) << error;
  }
}

// A plain TCP listener on the coordinator's port while it is down: counts
// the worker's connection attempts (each is accepted and closed at once,
// which gRPC takes as a failed attempt and backs off from).
class AttemptCounter {
 public:
  explicit AttemptCounter(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // The killed coordinator's socket may linger for a moment.
    for (int i = 0; i < 100; ++i) {
      if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          listen(fd_, 16) == 0) {
        listening_ = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~AttemptCounter() { close(fd_); }
  bool listening() const { return listening_; }

  // Waits up to `timeout` for the next attempt; false if none came.
  bool NextAttempt(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    const int conn = accept(fd_, nullptr, nullptr);
    if (conn < 0) return false;
    close(conn);
    return true;
  }

 private:
  int fd_ = -1;
  bool listening_ = false;
};

// The coordinator stays down long enough (20 s) for gRPC's default backoff
// to space attempts 10-20 s apart; restarted right after one of the
// worker's attempts, it must see the worker report progress within 10 s.
// With the backoff capped at ~2 s that takes about 3 s.
TEST_F(TransportTest, WorkerMakesProgressSoonAfterACoordinatorRestart) {
  StartSim({"--latency-ms", "20"}, 4);
  ASSERT_TRUE(StartCoordinator()) << coordinator_->Stderr();
  StartWorker();
  const std::string file = dir_ + "/prompts.jsonl";
  WriteFile(file, MakePromptFile(3000, 100));
  const std::string job = Submit(file);
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  for (int i = 0; i < 300; ++i) {
    json s = Status(job);
    if (!s.is_null() && s.at("tasks_done").get<int>() >= 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  coordinator_->Signal(SIGKILL);
  coordinator_->Wait();
  const Clock::time_point killed = Clock::now();
  const int port =
      std::stoi(coordinator_address_.substr(coordinator_address_.rfind(':') + 1));
  double largest_gap = 0;
  {
    AttemptCounter attempts(port);
    ASSERT_TRUE(attempts.listening());
    double last = 0;
    int count = 0;
    while (SecondsSince(killed) < 90) {
      if (!attempts.NextAttempt(std::chrono::milliseconds(500))) continue;
      const double now = SecondsSince(killed);
      if (count++ > 0) largest_gap = std::max(largest_gap, now - last);
      last = now;
      if (now >= 20) break;
    }
    ASSERT_GE(SecondsSince(killed), 20) << "no connection attempts";
  }
  const Clock::time_point restarted = Clock::now();
  ASSERT_TRUE(StartCoordinator()) << coordinator_->Stderr();
  const int done_at_restart = Status(job).at("tasks_done").get<int>();
  double progress_after = -1;
  while (SecondsSince(restarted) < 60) {
    json s = Status(job);
    if (!s.is_null() && s.at("tasks_done").get<int>() > done_at_restart) {
      progress_after = SecondsSince(restarted);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  RecordProperty("reconnect_seconds", std::to_string(progress_after));
  std::cerr << "largest gap between connection attempts " << largest_gap
            << " s; progress " << progress_after << " s after the restart\n";
  EXPECT_GE(progress_after, 0) << "no progress after the restart\n" << Logs();
  EXPECT_LT(progress_after, 10) << Logs();
  EXPECT_LT(largest_gap, 6) << "reconnect backoff is not capped";
  const json end = WaitForEnd(job, 120);
  ASSERT_FALSE(end.is_null()) << Logs();
  EXPECT_EQ(end.at("tasks_done"), 3000);
}

}  // namespace
}  // namespace distillery::testing
