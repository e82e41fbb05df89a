// The whole harvest path with real processes on loopback: teacher-sim, a
// coordinator on RocksDB, two workers, and the distillery CLI.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
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

// 2,000 distinct prompts in both shapes, with ids and metadata.
std::string MakePromptFile(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    json row;
    row["id"] = "q" + std::to_string(i);
    if (i % 2 == 0) {
      row["prompt"] = "Question number " + std::to_string(i) +
                      ": explain idea " + std::to_string(i * 7919 % 1000);
    } else {
      row["messages"] = {{{"role", "user"},
                          {"content", "Prompt " + std::to_string(i) +
                                          " asks about topic " +
                                          std::to_string(i % 37)}}};
    }
    row["metadata"] = {{"index", i}, {"split", i % 3 == 0 ? "a" : "b"}};
    text += row.dump() + "\n";
  }
  return text;
}

class HarvestTest : public ::testing::Test {
 protected:
  virtual std::string SimLatencyMs() const { return "5"; }

  void SetUp() override {
    dir_ = MakeTempDir("harvest");
    sim_ =
        SpawnTeacherSim(dir_, {"--latency-ms", SimLatencyMs()}, &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    teachers_ = dir_ + "/teachers.yaml";
    WriteFile(teachers_, "teachers:\n" + SimTeacherProfile(sim_address_) +
                             "    max_concurrency: 16\n");
    StartCoordinator("127.0.0.1:0");
    for (int i = 0; i < 2; ++i) StartWorker(i);
  }

  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void StartCoordinator(const std::string& listen) {
    coordinator_ =
        SpawnCoordinator(dir_, listen, dir_ + "/data", teachers_,
                         {"--lease-seconds", "3", "--heartbeat-ms", "300"});
    coordinator_address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(coordinator_address_.empty()) << coordinator_->Stderr();
  }

  void StartWorker(int i) {
    workers_.push_back(SpawnWorker(dir_, coordinator_address_, teachers_,
                                   {"--name", "w" + std::to_string(i)}));
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(coordinator_address_, std::move(args), dir_);
  }

  std::string Submit(const std::string& file, const std::string& model) {
    CommandResult r = Cli({"submit", file, "--teacher", "sim", "--model", model,
                           "--max-tokens", "300"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string last;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) last = line;
    }
    return last;
  }

  json Status(const std::string& job) {
    CommandResult r = Cli({"status", job, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  int64_t SimChatCompletions() {
    const std::string body = HttpGet(sim_address_, "/stats");
    return json::parse(body).at("chat_completions_total").get<int64_t>();
  }

  std::string dir_, teachers_, sim_address_, coordinator_address_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(HarvestTest, HarvestsExportsAndAnswersResubmissionFromCache) {
  const std::string prompts = dir_ + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(2000));
  const std::string job = Submit(prompts, "sim-reasoner");
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;

  CommandResult watch = Cli({"watch", job});
  ASSERT_EQ(watch.exit_code, 0) << watch.out << watch.err;
  EXPECT_NE(watch.out.find("completed 2000/2000"), std::string::npos)
      << watch.out;

  const std::string raw = dir_ + "/raw.jsonl";
  CommandResult exported =
      Cli({"export", job, "--format", "raw", "--include-duplicates",
           "--finish-reason", "any", "--out", raw});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::vector<json> records = ReadJsonLines(raw);
  ASSERT_EQ(records.size(), 2000u);
  std::set<std::string> ids;
  for (size_t i = 0; i < records.size(); ++i) {
    const json& r = records[i];
    // Submission order, each prompt once, metadata carried through.
    EXPECT_EQ(r.at("prompt_id"), "q" + std::to_string(i));
    ids.insert(r.at("prompt_id").get<std::string>());
    EXPECT_EQ(r.at("metadata").at("index"), static_cast<int>(i));
    EXPECT_FALSE(r.at("content").get<std::string>().empty());
    EXPECT_FALSE(r.at("reasoning").get<std::string>().empty());
    EXPECT_GT(r.at("usage").at("reasoning_tokens").get<int64_t>(), 0);
    EXPECT_EQ(r.at("teacher"), "sim");
    EXPECT_EQ(r.at("model"), "sim-reasoner");
    EXPECT_EQ(r.at("request_key").get<std::string>().size(), 32u);
  }
  EXPECT_EQ(ids.size(), 2000u);
  EXPECT_EQ(SimChatCompletions(), 2000);

  // The chat format keeps the reasoning in its own field.
  const std::string openai = dir_ + "/chat.jsonl";
  // Every finish reason: the default keeps only finished ("stop") answers.
  ASSERT_EQ(Cli({"export", job, "--format", "chat", "--finish-reason", "any",
                 "--out", openai})
                .exit_code,
            0);
  std::vector<json> lines = ReadJsonLines(openai);
  const json status = Status(job);
  EXPECT_EQ(lines.size(),
            2000u - status.at("duplicate_answers").get<size_t>());
  ASSERT_FALSE(lines.empty());
  const json& last = lines[0].at("messages").back();
  EXPECT_EQ(last.at("role"), "assistant");
  EXPECT_FALSE(last.at("reasoning_content").get<std::string>().empty());
  EXPECT_EQ(lines[0].at("metadata").at("index"), 0);

  // The same file again: everything comes from the cache, nothing is sent.
  const int64_t sent_before = SimChatCompletions();
  const std::string job2 = Submit(prompts, "sim-reasoner");
  ASSERT_NE(job2, job);
  CommandResult watch2 = Cli({"watch", job2});
  ASSERT_EQ(watch2.exit_code, 0) << watch2.err;
  EXPECT_EQ(SimChatCompletions(), sent_before);
  const json status2 = Status(job2);
  EXPECT_EQ(status2.at("state"), "completed");
  EXPECT_EQ(status2.at("cache_hits"), 2000);
  EXPECT_EQ(status2.at("teacher_requests"), 0);
}

// Slower answers, so the job is surely mid-way when a worker dies.
class SlowHarvestTest : public HarvestTest {
 protected:
  std::string SimLatencyMs() const override { return "40"; }
};

TEST_F(SlowHarvestTest, KilledWorkerLosesNothing) {
  const std::string prompts = dir_ + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(2000));
  const std::string job = Submit(prompts, "sim-chat");
  // Wait until some work is done, then SIGKILL worker 0 with leases held.
  for (int i = 0; i < 3000; ++i) {
    if (Status(job).at("tasks_done").get<int>() >= 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const json before = Status(job);
  ASSERT_LT(before.at("tasks_done").get<int>(), 2000)
      << "job finished before the kill; nothing was tested";
  workers_[0]->Signal(SIGKILL);
  EXPECT_EQ(workers_[0]->Wait(), 128 + SIGKILL);

  CommandResult watch = Cli({"watch", job});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  const std::string raw = dir_ + "/raw.jsonl";
  ASSERT_EQ(Cli({"export", job, "--format", "raw", "--include-duplicates",
                 "--out", raw})
                .exit_code,
            0);
  std::vector<json> records = ReadJsonLines(raw);
  ASSERT_EQ(records.size(), 2000u);
  std::map<std::string, int> seen;
  for (const json& r : records) ++seen[r.at("prompt_id").get<std::string>()];
  EXPECT_EQ(seen.size(), 2000u);
  for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << id;
  const json status = Status(job);
  EXPECT_EQ(status.at("tasks_done"), 2000);
  EXPECT_EQ(status.at("tasks_failed"), 0);
  // Requests re-sent after the kill are at most what the dead worker held:
  // up to max_concurrency (16) in flight, plus answers it had not reported
  // yet (it leases again as soon as an answer arrives and reports within
  // report_delay; under a sanitizer that can be a few more).
  EXPECT_LE(SimChatCompletions(), 2000 + 2 * 16);
}

// Runs `distillery ARGS` with its stdout on a pseudo-terminal `columns`
// wide; returns everything it printed there and its exit code.
std::pair<std::string, int> RunOnTerminal(const std::vector<std::string>& args,
                                          int columns) {
  winsize size{};
  size.ws_row = 24;
  size.ws_col = static_cast<unsigned short>(columns);
  int master = -1;
  const std::string binary = BinDir() + "/distillery";
  std::vector<char*> argv = {const_cast<char*>(binary.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = forkpty(&master, nullptr, nullptr, &size);
  if (pid == 0) {
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  std::string output;
  if (pid < 0) return {output, -1};
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const ssize_t n = read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO once the child has exited and closed the pty
    output.append(buf, n);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  return {output, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST_F(SlowHarvestTest, WatchDrawsABarOnATerminalAndPlainLinesOtherwise) {
  const std::string prompts = dir_ + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(1500));
  const std::string job = Submit(prompts, "sim-chat");
  // Both watches follow the same job from its start.
  Process plain("distillery",
                {"--coordinator", coordinator_address_, "watch", job}, dir_);
  auto [tty, tty_exit] = RunOnTerminal(
      {"--coordinator", coordinator_address_, "watch", job}, 100);
  EXPECT_EQ(plain.Wait(), 0);
  EXPECT_EQ(tty_exit, 0) << tty;

  // The terminal gets one bar, redrawn in place, within its width.
  EXPECT_GE(std::count(tty.begin(), tty.end(), '\r'), 3) << tty;
  EXPECT_NE(tty.find("\r\033[K" + job + " ["), std::string::npos) << tty;
  EXPECT_NE(tty.find("\u2588"), std::string::npos) << tty;  // a full cell
  EXPECT_NE(tty.find("/s eta "), std::string::npos) << tty;
  EXPECT_NE(tty.find("$0.0000 0 failed"), std::string::npos) << tty;
  size_t from = 0;
  for (size_t at; (at = tty.find("\033[K", from)) != std::string::npos;) {
    const size_t end = tty.find_first_of("\r\n", at);
    std::string frame = tty.substr(at + 3, end - at - 3);
    int columns = 0;
    for (unsigned char c : frame) columns += (c & 0xC0) != 0x80;
    EXPECT_LE(columns, 100) << frame;
    from = at + 3;
  }
  // Then the final figures in full (the pty turns \n into \r\n).
  EXPECT_NE(tty.find(job + " completed 1500/1500 (100.0%)"), std::string::npos)
      << tty;

  // Anything else gets plain lines: no control characters, one a second
  // at most plus the last.
  const std::string out = plain.Stdout();
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(out.find('\033'), std::string::npos) << out;
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 2u) << out;
  for (const std::string& line : lines) {
    EXPECT_EQ(line.rfind(job + " ", 0), 0u) << line;
    EXPECT_NE(line.find(" spend $"), std::string::npos) << line;
  }
  EXPECT_NE(lines.back().find("completed 1500/1500 (100.0%)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(" eta "), std::string::npos) << out;
}

TEST_F(HarvestTest, MalformedPromptFileIsRejectedWhole) {
  struct Case {
    std::string third_line;
    std::string reason;
  } cases[] = {
      {"{not json", "not valid JSON"},
      {"{\"id\": 3}", "no \"prompt\" or \"messages\""},
      {"{\"prompt\": \"   \"}", "empty prompt"},
      {"{\"prompt\": \"bad \xC3\x28 bytes\"}", "invalid UTF-8"},
      {"[1, 2]", "expected a JSON object"},
  };
  for (const Case& c : cases) {
    const std::string file = dir_ + "/bad.jsonl";
    WriteFile(file, "{\"prompt\": \"fine\"}\n{\"prompt\": \"also fine\"}\n" +
                        c.third_line + "\n{\"prompt\": \"never read\"}\n");
    CommandResult r = Cli({"submit", file, "--teacher", "sim", "--model", "sim-chat"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    // One line, naming the line number and the reason.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
  }
  CommandResult jobs = Cli({"jobs"});
  ASSERT_EQ(jobs.exit_code, 0);
  EXPECT_EQ(jobs.out.find("job-"), std::string::npos) << jobs.out;
  EXPECT_EQ(SimChatCompletions(), 0);
}

}  // namespace
}  // namespace distillery::testing
