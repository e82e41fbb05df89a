// Datasets from real processes: teacher-sim, a coordinator on RocksDB, a
// worker and the distillery CLI. Checks each export format line by line
// against its schema, the reasoning layouts, filters, dead letters, that
// the order is the same on every export and across a coordinator restart,
// and that splits are stable when prompts are added.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

std::vector<json> ParseLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    EXPECT_FALSE(line.empty()) << "blank line in an export";
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

// An export file's records, with no blank line among them.
std::vector<json> ReadExport(const std::string& path) {
  return ParseLines(ReadFile(path));
}

// Prompts with ids "q<i>" (ids are what splits hash), from `first` on.
std::string MakePrompts(int first, int n) {
  std::string text;
  for (int i = first; i < first + n; ++i) {
    json row;
    row["id"] = "q" + std::to_string(i);
    row["prompt"] = "Explain concept " + std::to_string(i) + " of topic " +
                    std::to_string(i % 13) + " in detail.";
    if (i % 4 == 0) row["system"] = "You are a careful tutor.";
    row["metadata"] = {{"index", i}, {"group", i % 3 == 0 ? "a" : "b"}};
    text += row.dump() + "\n";
  }
  return text;
}

int PromptIndex(const json& raw) {
  return std::stoi(raw.at("prompt_id").get<std::string>().substr(1));
}

// Chat invariants the fine-tuning tools check: an optional system message
// first, then user/assistant alternating, ending with the assistant.
void ExpectChat(const json& turns, const char* role_key, const char* system,
                const char* user, const char* assistant) {
  ASSERT_TRUE(turns.is_array());
  size_t i = 0;
  if (!turns.empty() && turns[0].at(role_key) == system) ++i;
  ASSERT_GE(turns.size(), i + 2);
  for (size_t k = 0; i < turns.size(); ++i, ++k) {
    EXPECT_EQ(turns[i].at(role_key), k % 2 == 0 ? user : assistant);
    EXPECT_TRUE(turns[i].at(role_key == std::string("role") ? "content"
                                                              : "value")
                    .is_string());
  }
  EXPECT_EQ(turns.back().at(role_key), assistant);
}

class ExportTest : public ::testing::Test {
 protected:
  virtual std::string SimErrorRate() const { return "0"; }
  virtual std::string MaxAttempts() const { return "5"; }

  void SetUp() override {
    dir_ = MakeTempDir("export");
    sim_ = SpawnTeacherSim(
        dir_, {"--latency-ms", "2", "--error-rate", SimErrorRate()},
        &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    teachers_ = dir_ + "/teachers.yaml";
    WriteFile(teachers_, "teachers:\n" + SimTeacherProfile(sim_address_) +
                             "    max_concurrency: 16\n    max_attempts: " +
                             MaxAttempts() + "\n");
    StartCoordinator();
    worker_ =
        SpawnWorker(dir_, coordinator_address_, teachers_, {"--name", "w"});
  }

  void TearDown() override {
    worker_.reset();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  void StartCoordinator() {
    coordinator_ =
        SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data", teachers_,
                         {"--lease-seconds", "3", "--heartbeat-ms", "300"});
    coordinator_address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(coordinator_address_.empty()) << coordinator_->Stderr();
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(coordinator_address_, std::move(args), dir_);
  }

  // Submits, waits for the end, returns the job id.
  std::string Harvest(const std::string& prompts, int samples,
                      const std::string& max_tokens) {
    const std::string file =
        dir_ + "/prompts" + std::to_string(files_++) + ".jsonl";
    WriteFile(file, prompts);
    CommandResult r = Cli({"submit", file, "--teacher", "sim", "--model",
                           "sim-reasoner", "--samples",
                           std::to_string(samples), "--max-tokens",
                           max_tokens});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string job = r.out.substr(0, r.out.find('\n'));
    CommandResult watch = Cli({"watch", job});
    // 0: completed; 4: completed with dead letters (the tests that want
    // those check them).
    EXPECT_TRUE(watch.exit_code == 0 || watch.exit_code == 4)
        << watch.exit_code << watch.out << watch.err;
    return job;
  }

  // Exports to stdout; fails the test on a non-zero exit.
  std::string Export(std::vector<std::string> args) {
    args.insert(args.begin(), "export");
    CommandResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  json Status(const std::string& job) {
    CommandResult r = Cli({"status", job, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  std::string dir_, teachers_, sim_address_, coordinator_address_;
  int files_ = 0;
  std::unique_ptr<Process> sim_, coordinator_, worker_;
};

TEST_F(ExportTest, FormatsLayoutsFiltersAndStableOrderAcrossRestart) {
  // A 300-token budget: some answers run out ("length"), most do not.
  const std::string job = Harvest(MakePrompts(0, 300), 2, "300");
  const json status = Status(job);
  ASSERT_EQ(status.at("tasks_done"), 600);
  ASSERT_TRUE(status.contains("near_duplicate_answers"));
  EXPECT_GE(status.at("near_duplicate_answers").get<int>(), 0);

  // raw, everything: submission order (prompt, then sample).
  const std::string raw_text =
      Export({job, "--format", "raw", "--finish-reason", "any",
              "--include-duplicates"});
  const std::vector<json> raw = ParseLines(raw_text);
  ASSERT_EQ(raw.size(), 600u);
  int64_t stop_unique = 0, length = 0, group_a = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    EXPECT_EQ(PromptIndex(raw[i]), static_cast<int>(i / 2));
    EXPECT_EQ(raw[i].at("sample"), static_cast<int>(i % 2));
    const std::string finish = raw[i].at("finish_reason");
    length += finish == "length";
    stop_unique += finish == "stop" && raw[i].at("duplicate_of").is_null();
    group_a += raw[i].at("metadata").at("group") == "a" &&
               finish == "stop" && raw[i].at("duplicate_of").is_null();
    EXPECT_TRUE(raw[i].contains("near_duplicate_of"));
  }
  ASSERT_GT(length, 0) << "no truncated answers: the filter is untested";
  ASSERT_GT(stop_unique, 0);

  // openai, default layout: reasoning in its own field; only finished
  // answers (finish reason stop/end_turn) by default.
  const std::string openai = Export({job, "--format", "openai"});
  std::vector<json> lines = ParseLines(openai);
  EXPECT_EQ(static_cast<int64_t>(lines.size()), stop_unique);
  for (const json& line : lines) {
    ExpectChat(line.at("messages"), "role", "system", "user", "assistant");
    const json& a = line.at("messages").back();
    EXPECT_FALSE(a.at("reasoning").get<std::string>().empty());
    EXPECT_EQ(a.at("content").get<std::string>().find("<think>"),
              std::string::npos);
  }
  EXPECT_EQ(Export({job, "--format", "openai", "--finish-reason", "any"})
                .size() > openai.size(),
            true);

  // think-tags: reasoning inline, before the answer, no separate field.
  for (const json& line :
       ParseLines(Export({job, "--format", "openai", "--reasoning",
                          "think-tags"}))) {
    ExpectChat(line.at("messages"), "role", "system", "user", "assistant");
    const json& a = line.at("messages").back();
    const std::string content = a.at("content");
    EXPECT_EQ(content.rfind("<think>\n", 0), 0u) << content;
    EXPECT_NE(content.find("\n</think>\n"), std::string::npos);
    EXPECT_FALSE(a.contains("reasoning"));
  }
  // drop: no reasoning anywhere.
  for (const json& line : ParseLines(
           Export({job, "--format", "openai", "--reasoning", "drop"}))) {
    const json& a = line.at("messages").back();
    EXPECT_FALSE(a.contains("reasoning"));
    EXPECT_EQ(a.at("content").get<std::string>().find("<think>"),
              std::string::npos);
  }
  // sharegpt, each layout.
  for (const std::string layout : {"field", "think-tags", "drop"}) {
    std::vector<json> share = ParseLines(
        Export({job, "--format", "sharegpt", "--reasoning", layout}));
    EXPECT_EQ(static_cast<int64_t>(share.size()), stop_unique);
    for (const json& line : share) {
      ExpectChat(line.at("conversations"), "from", "system", "human", "gpt");
      const json& g = line.at("conversations").back();
      const std::string value = g.at("value");
      EXPECT_EQ(g.contains("reasoning"), layout == "field") << layout;
      EXPECT_EQ(value.rfind("<think>\n", 0) == 0, layout == "think-tags")
          << layout;
    }
  }

  // Filters: metadata, model, length.
  EXPECT_EQ(static_cast<int64_t>(
                ParseLines(Export({job, "--metadata", "group=a"})).size()),
            group_a);
  EXPECT_TRUE(Export({job, "--model", "another-model"}).empty());
  for (const json& line :
       ParseLines(Export({job, "--format", "raw", "--max-chars", "400"}))) {
    EXPECT_LE(line.at("content").get<std::string>().size(), 400u);
  }
  const size_t deduped =
      ParseLines(Export({job, "--near-dup-threshold", "0.85"})).size();
  EXPECT_LE(deduped, lines.size());

  // The same bytes on every export, and after a coordinator restart.
  EXPECT_EQ(Export({job, "--format", "openai"}), openai);
  const std::string near =
      Export({job, "--format", "raw", "--near-dup-threshold", "0.7"});
  worker_.reset();
  coordinator_->Signal(SIGTERM);
  EXPECT_EQ(coordinator_->Wait(), 0);
  StartCoordinator();
  EXPECT_EQ(Export({job, "--format", "openai"}), openai);
  EXPECT_EQ(Export({job, "--format", "raw", "--finish-reason", "any",
                    "--include-duplicates"}),
            raw_text);
  EXPECT_EQ(Export({job, "--format", "raw", "--near-dup-threshold", "0.7"}),
            near);

  // Bad requests are usage errors with a clear message.
  CommandResult bad = Cli({"export", job, "--format", "alpaca"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown export format 'alpaca'"), std::string::npos);
  bad = Cli({"export", job, "--min-chars", "50", "--max-chars", "10"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("min chars (50) is above max chars (10)"),
            std::string::npos)
      << bad.err;
  bad = Cli({"export", job, "--split", "train=0.9,test=0.2", "--out",
             dir_ + "/x.jsonl"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("sum to 1.1, not 1"), std::string::npos) << bad.err;
  bad = Cli({"export"});
  EXPECT_EQ(bad.exit_code, 2);
}

TEST_F(ExportTest, SeveralJobsAndStableSplitsWhenPromptsAreAdded) {
  const std::string first = Harvest(MakePrompts(0, 200), 2, "1000");
  // The same prompts and 100 more: the old ones come from the cache.
  const std::string second = Harvest(MakePrompts(0, 300), 2, "1000");

  // Several jobs in one export, in the order given, each once.
  const std::vector<json> both = ParseLines(
      Export({first, "--job", second, "--job", first, "--format", "raw",
              "--include-duplicates"}));
  ASSERT_EQ(both.size(), 400u + 600u);
  EXPECT_EQ(both.front().at("job_id"), first);
  EXPECT_EQ(both.back().at("job_id"), second);

  auto split_of = [&](const std::string& job, const std::string& out) {
    CommandResult r =
        Cli({"export", job, "--format", "raw", "--include-duplicates",
             "--split", "train=0.8,test=0.2", "--seed", "7", "--out", out});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::string> split;
    std::map<std::string, int> count;
    for (const std::string name : {"train", "test"}) {
      const std::string path = dir_ + "/" + job + "." + name + ".jsonl";
      EXPECT_TRUE(std::filesystem::exists(path)) << path;
      for (const json& line : ReadExport(path)) {
        const std::string id = line.at("prompt_id");
        // All samples of a prompt land together.
        auto [it, inserted] = split.emplace(id, name);
        EXPECT_EQ(it->second, name) << id;
        ++count[name];
      }
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    return std::make_pair(split, count);
  };
  auto [a, a_counts] = split_of(first, dir_ + "/" + first + ".jsonl");
  auto [b, b_counts] = split_of(second, dir_ + "/" + second + ".jsonl");
  ASSERT_EQ(a.size(), 200u);
  ASSERT_EQ(b.size(), 300u);
  for (const auto& [id, name] : a) EXPECT_EQ(b.at(id), name) << id;
  // Roughly the fractions asked for (200 prompts x 2 samples).
  EXPECT_GT(a_counts["test"], 40);
  EXPECT_LT(a_counts["test"], 130);
}

// A flaky teacher and a single attempt: some tasks are dead-lettered.
class DeadLetterExportTest : public ExportTest {
 protected:
  std::string SimErrorRate() const override { return "0.2"; }
  std::string MaxAttempts() const override { return "1"; }
};

TEST_F(DeadLetterExportTest, ErrorsFormatListsFailedTasks) {
  const std::string job = Harvest(MakePrompts(0, 200), 1, "1000");
  const json status = Status(job);
  const int failed = status.at("tasks_failed");
  ASSERT_GT(failed, 0);
  const std::vector<json> errors =
      ParseLines(Export({job, "--format", "errors"}));
  ASSERT_EQ(static_cast<int>(errors.size()), failed);
  int last = -1;
  for (const json& e : errors) {
    EXPECT_EQ(e.at("job_id"), job);
    const int index = PromptIndex(e);
    EXPECT_GT(index, last);  // submission order
    last = index;
    EXPECT_EQ(e.at("line"), index + 1);
    EXPECT_GE(e.at("attempts").get<int>(), 1);
    EXPECT_FALSE(e.at("error").get<std::string>().empty());
    EXPECT_EQ(e.at("messages").back().at("role"), "user");
  }
  // Answer formats leave dead letters out.
  EXPECT_EQ(static_cast<int>(
                ParseLines(Export({job, "--format", "raw", "--finish-reason",
                                   "any", "--include-duplicates"}))
                    .size()),
            status.at("tasks_done").get<int>());
}

}  // namespace
}  // namespace distillery::testing
