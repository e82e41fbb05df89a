// Every teacher adapter mode end to end, with real processes on loopback:
// teacher-sim speaking OpenAI Chat Completions and Anthropic Messages, plain
// and streamed; a coordinator on RocksDB; two workers; the CLI. Each mode
// harvests a few hundred prompts from a reasoning model and the raw export
// must hold the answer and the reasoning of every one, and for Anthropic
// the thinking blocks with their signatures (and redacted_thinking as such).
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

constexpr int kPrompts = 300;

std::string MakePromptFile(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    json row;
    row["id"] = "p" + std::to_string(i);
    row["prompt"] = "Adapter question " + std::to_string(i) + " about topic " +
                    std::to_string(i * 31 % 97);
    if (i % 5 == 0) row["system"] = "You are a careful teacher.";
    text += row.dump() + "\n";
  }
  return text;
}

struct Mode {
  std::string teacher;  // profile name
  std::string model;
  bool anthropic;
  bool redacted;  // the model makes the sim add redacted_thinking
};

class AdaptersTest : public ::testing::TestWithParam<Mode> {
 protected:
  static constexpr char kKey[] = "sk-test-adapters-0123456789";

  void SetUp() override {
    dir_ = MakeTempDir("adapters");
    sim_ = SpawnTeacherSim(dir_, {"--require-api-key", kKey}, &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    WriteFile(dir_ + "/key", std::string(kKey) + "\n");
    teachers_ = dir_ + "/teachers.yaml";
    const std::string base = "http://" + sim_address_;
    const std::string key = "    api_key_file: " + dir_ + "/key\n";
    WriteFile(teachers_,
              "teachers:\n"
              "  - name: openai-plain\n    api: openai\n    variant: sim\n"
              "    base_url: " + base + "/v1\n" + key +
              "  - name: openai-stream\n    api: openai\n    variant: sim\n"
              "    stream: true\n    base_url: " + base + "/v1\n" + key +
              "  - name: anthropic-plain\n    api: anthropic\n"
              "    thinking_budget_tokens: 1024\n    base_url: " + base +
              "\n" + key +
              "  - name: anthropic-stream\n    api: anthropic\n"
              "    stream: true\n    base_url: " + base + "\n" + key);
    coordinator_ =
        SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data", teachers_);
    coordinator_address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(coordinator_address_.empty()) << coordinator_->Stderr();
    for (int i = 0; i < 2; ++i) {
      workers_.push_back(SpawnWorker(dir_, coordinator_address_, teachers_,
                                     {"--name", "w" + std::to_string(i)}));
    }
  }

  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(coordinator_address_, std::move(args), dir_);
  }

  std::string dir_, teachers_, sim_address_, coordinator_address_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_P(AdaptersTest, HarvestsContentAndReasoningForEveryPrompt) {
  const Mode& mode = GetParam();
  const std::string prompts = dir_ + "/prompts.jsonl";
  WriteFile(prompts, MakePromptFile(kPrompts));
  CommandResult submitted =
      Cli({"submit", prompts, "--teacher", mode.teacher, "--model", mode.model,
           "--max-tokens", "2000"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string job;
  std::istringstream lines(submitted.out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) job = line;
  }
  ASSERT_EQ(job.rfind("job-", 0), 0u) << submitted.out;

  CommandResult watch = Cli({"watch", job});
  ASSERT_EQ(watch.exit_code, 0) << watch.out << watch.err;
  EXPECT_NE(watch.out.find("completed " + std::to_string(kPrompts) + "/" +
                           std::to_string(kPrompts)),
            std::string::npos)
      << watch.out;

  const std::string raw = dir_ + "/raw.jsonl";
  CommandResult exported = Cli({"export", job, "--format", "raw",
                                "--include-duplicates", "--out", raw});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::vector<json> records = ReadJsonLines(raw);
  ASSERT_EQ(records.size(), static_cast<size_t>(kPrompts));
  for (size_t i = 0; i < records.size(); ++i) {
    const json& r = records[i];
    SCOPED_TRACE(r.dump().substr(0, 300));
    EXPECT_EQ(r.at("prompt_id"), "p" + std::to_string(i));
    EXPECT_EQ(r.at("state"), "done");
    EXPECT_EQ(r.at("teacher"), mode.teacher);
    const std::string content = r.at("content");
    const std::string reasoning = r.at("reasoning");
    EXPECT_FALSE(content.empty());
    EXPECT_FALSE(reasoning.empty());
    // The sim quotes the prompt: the answer is this prompt's, reassembled
    // whole from the stream.
    EXPECT_NE(content.find("Adapter question " + std::to_string(i) + " "),
              std::string::npos);
    EXPECT_NE(reasoning.find("Let me think about"), std::string::npos);
    EXPECT_NE(reasoning.find("Now I can write the answer."), std::string::npos);
    EXPECT_GT(r.at("usage").at("prompt_tokens").get<int64_t>(), 0);
    EXPECT_GT(r.at("usage").at("completion_tokens").get<int64_t>(), 0);
    EXPECT_FALSE(r.at("finish_reason").get<std::string>().empty());
    if (!mode.anthropic) {
      EXPECT_EQ(r.at("finish_reason"), "stop");
      EXPECT_TRUE(r.at("reasoning_blocks").is_null());
      EXPECT_GT(r.at("usage").at("reasoning_tokens").get<int64_t>(), 0);
      continue;
    }
    EXPECT_EQ(r.at("finish_reason"), "end_turn");
    const json& blocks = r.at("reasoning_blocks");
    ASSERT_TRUE(blocks.is_array());
    ASSERT_EQ(blocks.size(), mode.redacted ? 2u : 1u);
    EXPECT_EQ(blocks[0].at("type"), "thinking");
    EXPECT_EQ(blocks[0].at("thinking"), reasoning);
    const std::string signature = blocks[0].at("signature");
    EXPECT_EQ(signature.rfind("Eq", 0), 0u);
    EXPECT_GT(signature.size(), 20u);
    if (mode.redacted) {
      EXPECT_EQ(blocks[1].at("type"), "redacted_thinking");
      EXPECT_FALSE(blocks[1].at("data").get<std::string>().empty());
    }
  }
  const json stats = json::parse(HttpGet(sim_address_, "/stats"));
  EXPECT_EQ(stats.at("chat_completions_total").get<int>(), kPrompts);
}

INSTANTIATE_TEST_SUITE_P(
    AllModes, AdaptersTest,
    ::testing::Values(Mode{"openai-plain", "sim-reasoner", false, false},
                      Mode{"openai-stream", "sim-reasoner", false, false},
                      Mode{"anthropic-plain", "claude-sim", true, false},
                      Mode{"anthropic-stream", "claude-thinking-redacted", true,
                           true}),
    [](const ::testing::TestParamInfo<Mode>& info) {
      std::string name = info.param.teacher;
      for (char& c : name) {
        if (c == '-') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace distillery::testing
