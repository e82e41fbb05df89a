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

#include <yaml-cpp/yaml.h>

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

// OpenAI's fine-tuning upload, as its documentation writes the chat format:
// a line's keys are messages, tools and parallel_tool_calls; a message's
// are role, content, name, weight, tool_calls, tool_call_id and
// function_call; roles are system, user, assistant, tool and function
// (developer for newer models); content is a string.
void ExpectOpenAiFineTuningLine(const json& line) {
  static const std::set<std::string> kLineKeys = {"messages", "tools",
                                                  "parallel_tool_calls"};
  static const std::set<std::string> kMessageKeys = {
      "role",       "content",      "name",         "weight",
      "tool_calls", "tool_call_id", "function_call"};
  static const std::set<std::string> kRoles = {
      "system", "developer", "user", "assistant", "tool", "function"};
  ASSERT_TRUE(line.is_object());
  for (const auto& [key, value] : line.items()) {
    EXPECT_TRUE(kLineKeys.count(key)) << "line key " << key << ": "
                                      << line.dump();
  }
  ASSERT_TRUE(line.at("messages").is_array());
  for (const json& m : line.at("messages")) {
    for (const auto& [key, value] : m.items()) {
      EXPECT_TRUE(kMessageKeys.count(key)) << "message key " << key << ": "
                                           << line.dump();
    }
    EXPECT_TRUE(kRoles.count(m.at("role").get<std::string>())) << m.dump();
    EXPECT_TRUE(m.at("content").is_string()) << m.dump();
  }
}

// A conversational dataset as Hugging Face's chat templates and TRL's
// SFTTrainer read it: "messages", each with role and string content, the
// assistant's trace (when there is one) under `reasoning_key`, and
// "metadata" beside them; no other keys.
void ExpectChatLine(const json& line, const std::string& reasoning_key) {
  ASSERT_TRUE(line.is_object());
  for (const auto& [key, value] : line.items()) {
    EXPECT_TRUE(key == "messages" || key == "metadata") << key;
  }
  for (const json& m : line.at("messages")) {
    for (const auto& [key, value] : m.items()) {
      EXPECT_TRUE(key == "role" || key == "content" ||
                  (key == reasoning_key && m.at("role") == "assistant"))
          << key << ": " << m.dump();
    }
    EXPECT_TRUE(m.at("content").is_string());
  }
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

  // openai: exactly what OpenAI's fine-tuning upload accepts, so no trace
  // (the default drops it, and says so) and no metadata; only finished
  // answers (finish reason stop/end_turn) by default.
  const std::string openai = Export({job, "--format", "openai"});
  std::vector<json> lines = ParseLines(openai);
  EXPECT_EQ(static_cast<int64_t>(lines.size()), stop_unique);
  for (const json& line : lines) {
    ExpectOpenAiFineTuningLine(line);
    ExpectChat(line.at("messages"), "role", "system", "user", "assistant");
    const json& a = line.at("messages").back();
    EXPECT_FALSE(a.contains("reasoning"));
    EXPECT_EQ(a.at("content").get<std::string>().find("<think>"),
              std::string::npos);
  }
  {
    const CommandResult r = Cli({"export", job, "--format", "openai"});
    EXPECT_NE(r.err.find("reasoning traces left out"), std::string::npos)
        << r.err;
    const CommandResult field = Cli(
        {"export", job, "--format", "openai", "--reasoning", "field"});
    EXPECT_EQ(field.exit_code, 2);
    EXPECT_NE(field.err.find("OpenAI's fine-tuning format has no key"),
              std::string::npos)
        << field.err;
  }
  EXPECT_EQ(Export({job, "--format", "openai", "--finish-reason", "any"})
                .size() > openai.size(),
            true);

  // chat (Hugging Face, TRL, axolotl): the same messages, the trace under
  // --reasoning-key (reasoning_content by default, as Qwen3's and
  // DeepSeek's chat templates read it), and the metadata.
  for (const std::string key : {"", "thinking"}) {
    std::vector<std::string> args = {job, "--format", "chat"};
    if (!key.empty()) args.insert(args.end(), {"--reasoning-key", key});
    const std::vector<json> chat = ParseLines(Export(args));
    EXPECT_EQ(static_cast<int64_t>(chat.size()), stop_unique);
    const std::string want = key.empty() ? "reasoning_content" : key;
    for (const json& line : chat) {
      ExpectChatLine(line, want);
      ExpectChat(line.at("messages"), "role", "system", "user", "assistant");
      const json& a = line.at("messages").back();
      EXPECT_FALSE(a.at(want).get<std::string>().empty()) << line.dump();
      EXPECT_TRUE(line.at("metadata").contains("group")) << line.dump();
    }
  }

  // think-tags: reasoning inline, before the answer, no separate field.
  for (const json& line :
       ParseLines(Export({job, "--format", "openai", "--reasoning",
                          "think-tags"}))) {
    ExpectOpenAiFineTuningLine(line);
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

// Dataset rows through a template: a row missing a field the template
// uses is refused naming the row and the field (and nothing is stored); a
// row's own system, max_tokens and temperature reach the teacher; the other
// fields land in metadata. Then an export with splits and a dataset card.
TEST_F(ExportTest, TemplateRowsWithOverridesThenSplitsAndACard) {
  const std::string tmpl = dir_ + "/solve.txt";
  WriteFile(tmpl, "Solve step by step: {{question}} (topic {{topic}})");
  const std::string bad = dir_ + "/bad_rows.jsonl";
  WriteFile(bad,
            "{\"question\":\"1+1\",\"topic\":\"sums\",\"answer\":\"2\"}\n"
            "{\"question\":\"2+2\",\"answer\":\"4\"}\n");
  CommandResult refused =
      Cli({"submit", "--input", bad, "--template", tmpl, "--teacher", "sim",
           "--model", "sim-reasoner"});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("row 2: the template uses field \"topic\", which "
                             "the row does not have"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(Cli({"jobs"}).out.find("job-"), std::string::npos)
      << "a refused submission left a job";
  CommandResult no_template = Cli({"submit", "--input", bad, "--teacher", "sim",
                                   "--model", "sim-reasoner"});
  EXPECT_EQ(no_template.exit_code, 2);
  EXPECT_NE(no_template.err.find("need --template"), std::string::npos)
      << no_template.err;

  // 60 rows; every third row brings its own system prompt, max_tokens 5
  // and temperature 0.25.
  std::string rows;
  for (int i = 0; i < 60; ++i) {
    json row = {{"id", "r" + std::to_string(i)},
                {"question", "what is " + std::to_string(i) + " squared?"},
                {"topic", "squares"},
                {"answer", std::to_string(i * i)}};
    if (i % 3 == 0) {
      row["system"] = "Answer in one word.";
      row["max_tokens"] = 5;
      row["temperature"] = 0.25;
    }
    rows += row.dump() + "\n";
  }
  const std::string rows_file = dir_ + "/rows.jsonl";
  WriteFile(rows_file, rows);
  CommandResult submitted =
      Cli({"submit", "--input", rows_file, "--template", tmpl, "--teacher",
           "sim", "--model", "sim-reasoner", "--max-tokens", "400",
           "--temperature", "0.9", "--system", "You are careful."});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = submitted.out.substr(0, submitted.out.find('\n'));
  ASSERT_EQ(Cli({"watch", job}).exit_code, 0);
  const std::vector<json> raw =
      ParseLines(Export({job, "--format", "raw", "--finish-reason", "any",
                         "--include-duplicates"}));
  ASSERT_EQ(raw.size(), 60u);
  for (const json& r : raw) {
    SCOPED_TRACE(r.dump().substr(0, 400));
    const int i = std::stoi(r.at("prompt_id").get<std::string>().substr(1));
    const json& messages = r.at("messages");
    EXPECT_EQ(messages.back().at("content"),
              "Solve step by step: what is " + std::to_string(i) +
                  " squared? (topic squares)");
    EXPECT_EQ(r.at("metadata"), json({{"answer", std::to_string(i * i)}}));
    if (i % 3 == 0) {
      EXPECT_EQ(messages.front().at("content"), "Answer in one word.");
      EXPECT_EQ(r.at("params").at("max_tokens"), 5);
      EXPECT_EQ(r.at("params").at("temperature"), 0.25);
      // The teacher was asked for 5 tokens: it stopped there.
      EXPECT_LE(r.at("usage").at("completion_tokens").get<int>(), 5);
      EXPECT_EQ(r.at("finish_reason"), "length");
    } else {
      EXPECT_EQ(messages.front().at("content"), "You are careful.");
      EXPECT_EQ(r.at("params").at("max_tokens"), 400);
      EXPECT_EQ(r.at("params").at("temperature"), 0.9);
    }
  }

  // Splits and a card beside them.
  const std::string out = dir_ + "/hub/data.jsonl";
  CommandResult exported =
      Cli({"export", job, "--format", "chat", "--finish-reason", "any",
           "--out", out, "--split", "train=0.8,test=0.2", "--card",
           "--license", "mit", "--language", "en", "--pretty-name",
           "Squares"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::vector<json> train = ReadExport(dir_ + "/hub/data.train.jsonl");
  const std::vector<json> test = ReadExport(dir_ + "/hub/data.test.jsonl");
  // The short answers of 5 tokens repeat one another: exact duplicates are
  // left out, and the card counts what is in the files.
  const std::vector<json> chat =
      ParseLines(Export({job, "--format", "chat", "--finish-reason", "any"}));
  EXPECT_EQ(train.size() + test.size(), chat.size());
  std::set<std::string> prompts;
  for (const json& line : chat) {
    const json& m = line.at("messages");
    prompts.insert(m.at(m.size() - 2).at("content").get<std::string>());
  }
  EXPECT_FALSE(test.empty());
  const std::string card = ReadFile(dir_ + "/hub/README.md");
  ASSERT_EQ(card.rfind("---\n", 0), 0u) << card;
  const YAML::Node front =
      YAML::Load(card.substr(4, card.find("\n---\n", 4) - 4));
  EXPECT_EQ(front["license"].as<std::string>(), "mit");
  EXPECT_EQ(front["language"][0].as<std::string>(), "en");
  EXPECT_EQ(front["pretty_name"].as<std::string>(), "Squares");
  const YAML::Node files = front["configs"][0]["data_files"];
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0]["split"].as<std::string>(), "train");
  EXPECT_EQ(files[0]["path"].as<std::string>(), "data.train.jsonl");
  EXPECT_EQ(files[1]["split"].as<std::string>(), "test");
  EXPECT_EQ(files[1]["path"].as<std::string>(), "data.test.jsonl");
  EXPECT_NE(card.find("| sim | sim-reasoner | " + std::to_string(chat.size()) +
                      " |"),
            std::string::npos)
      << card;
  EXPECT_NE(card.find("| Records | " + std::to_string(chat.size()) + " |"),
            std::string::npos);
  EXPECT_NE(card.find("| Exact duplicates left out | " +
                      std::to_string(60 - chat.size()) + " |"),
            std::string::npos)
      << card;
  EXPECT_NE(card.find("| Prompts | " + std::to_string(prompts.size()) + " |"),
            std::string::npos)
      << card;
  EXPECT_NE(card.find("60 prompts"), std::string::npos) << card;
  EXPECT_NE(card.find("| Split `test` | " + std::to_string(test.size()) +
                      " |"),
            std::string::npos)
      << card;
  EXPECT_NE(card.find("samples 1, max_tokens 400, temperature 0.9"),
            std::string::npos)
      << card;
  EXPECT_NE(card.find(job), std::string::npos);
  // Those three files and nothing else: no lock or temporary file is left.
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/hub")) {
    names.insert(e.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"README.md", "data.test.jsonl",
                                          "data.train.jsonl"}));
}

}  // namespace
}  // namespace distillery::testing
