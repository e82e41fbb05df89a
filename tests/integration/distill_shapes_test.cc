// The harvest shapes beyond plain text, end to end with real processes on
// loopback (teacher-sim, a coordinator on RocksDB, workers, the CLI):
// several choices per request (use_n) with a server that accepts n and one
// that refuses it; logprobs stored and exported; tool-call prompts and
// answers through both APIs and both tool export formats; a --json-schema
// job whose teacher sometimes answers bad JSON, with only valid answers
// exported; logprobs, tools and schemas in --mode batch.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

int64_t Int(const json& j, const char* key) { return j.at(key).get<int64_t>(); }

bool Ended(const json& s) {
  if (s.is_null()) return false;
  const std::string state = s.at("state");
  return state == "completed" || state == "failed" || state == "cancelled";
}

ClusterOptions SimCluster(std::vector<std::string> sim_args,
                          std::string profile = "") {
  ClusterOptions options;
  options.sim_args = {"--latency-ms", "2"};
  options.sim_args.insert(options.sim_args.end(), sim_args.begin(),
                          sim_args.end());
  options.teacher_extra = std::move(profile);
  // An Anthropic profile on the same simulator.
  options.more_profiles = [](const std::string& sim) {
    return "  - name: claude\n    api: anthropic\n    base_url: http://" + sim +
           "\n    max_attempts: 6\n";
  };
  return options;
}

std::string Prompts(int n) {
  return JsonLines(n, [](int i) {
    return json{{"id", "p" + std::to_string(i)},
                {"prompt", "Write a short note about topic " +
                               std::to_string(i) + "."}};
  });
}

std::vector<json> Export(Cluster& cluster, const std::string& job,
                         const std::string& format,
                         std::vector<std::string> extra = {}) {
  static int n = 0;
  const std::string out =
      cluster.dir() + "/export-" + std::to_string(++n) + ".jsonl";
  std::vector<std::string> args = {"export", job, "--format", format, "--out",
                                   out};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = cluster.Cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ReadJsonLines(out);
}

json Finished(Cluster& cluster, const std::string& job) {
  const json status = cluster.WaitFor(job, Ended, 300, 100);
  EXPECT_FALSE(status.is_null()) << "the job did not end";
  if (status.is_null()) return status;
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  return status;
}

// Every sample a distinct record, each prompt's samples with distinct text.
void ExpectDistinctSamples(const std::vector<json>& raw, int prompts,
                           int samples) {
  ASSERT_EQ(raw.size(), static_cast<size_t>(prompts * samples));
  std::map<std::string, std::set<std::string>> texts;
  std::map<std::string, std::set<int>> indexes;
  for (const json& r : raw) {
    texts[r.at("prompt_id")].insert(r.at("content").get<std::string>());
    indexes[r.at("prompt_id")].insert(r.at("sample").get<int>());
  }
  ASSERT_EQ(texts.size(), static_cast<size_t>(prompts));
  for (const auto& [id, set] : texts) {
    EXPECT_EQ(set.size(), static_cast<size_t>(samples)) << id;
    EXPECT_EQ(indexes[id].size(), static_cast<size_t>(samples)) << id;
  }
}

TEST(DistillShapesTest, UseNAsksForAPromptsSamplesInOneRequest) {
  constexpr int kPrompts = 40, kSamples = 4;
  const std::string dir = MakeTempDir("use-n");
  Cluster cluster(dir, SimCluster({}, "    use_n: true\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", Prompts(kPrompts));
  const std::string job = cluster.Submit(
      dir + "/p.jsonl", {"--samples", std::to_string(kSamples),
                         "--temperature", "1"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = Finished(cluster, job);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(Int(status, "tasks_done"), kPrompts * kSamples);
  const json sim = cluster.SimStats();
  const int64_t requests = sim.at("chat_completions_total");
  // A lease may split a prompt's samples; most go together.
  EXPECT_LE(requests, kPrompts * kSamples / 2) << sim.dump();
  EXPECT_EQ(sim.at("choices_total").get<int64_t>(), kPrompts * kSamples)
      << "a choice paid for and not kept";
  EXPECT_EQ(Int(status, "teacher_requests"), requests);
  ExpectDistinctSamples(
      Export(cluster, job, "raw", {"--include-duplicates"}), kPrompts,
      kSamples);
  std::cerr << "use_n: " << kPrompts * kSamples << " samples in " << requests
            << " requests\n";
}

TEST(DistillShapesTest, UseNFallsBackToOneRequestASampleWhenRefused) {
  constexpr int kPrompts = 30, kSamples = 3;
  const std::string dir = MakeTempDir("use-n-refused");
  Cluster cluster(dir, SimCluster({"--refuse-n"}, "    use_n: true\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", Prompts(kPrompts));
  const std::string job = cluster.Submit(
      dir + "/p.jsonl", {"--samples", std::to_string(kSamples)});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = Finished(cluster, job);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(Int(status, "tasks_done"), kPrompts * kSamples);
  EXPECT_EQ(Int(status, "tasks_failed"), 0);
  const json sim = cluster.SimStats();
  // Refused once per request in flight when the first refusal came back
  // (at most the concurrency cap), then one request per sample.
  const int64_t refused = sim.at("by_status").value("400", int64_t{0});
  EXPECT_GE(refused, 1) << sim.dump();
  EXPECT_LE(refused, 16) << sim.dump();
  EXPECT_EQ(sim.at("chat_completions_total").get<int64_t>(),
            kPrompts * kSamples);
  EXPECT_NE(cluster.worker(0).Stderr().find("use_n is off"),
            std::string::npos)
      << cluster.worker(0).Stderr();
  ExpectDistinctSamples(
      Export(cluster, job, "raw", {"--include-duplicates"}), kPrompts,
      kSamples);
}

TEST(DistillShapesTest, LogprobsAreStoredAndExportedInBothFormats) {
  constexpr int kPrompts = 20;
  const std::string dir = MakeTempDir("logprobs");
  Cluster cluster(dir, SimCluster({}));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", Prompts(kPrompts));
  const std::string job =
      cluster.Submit(dir + "/p.jsonl", {"--logprobs", "5"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  ASSERT_FALSE(Finished(cluster, job).is_null());
  const std::vector<json> lines = Export(cluster, job, "logprobs");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kPrompts));
  for (const json& l : lines) {
    const std::string content = l.at("messages").back().at("content");
    std::string joined;
    for (const json& t : l.at("tokens")) joined += t.get<std::string>();
    EXPECT_EQ(joined, content);
    ASSERT_EQ(l.at("logprobs").size(), l.at("tokens").size());
    ASSERT_EQ(l.at("top_logprobs").size(), l.at("tokens").size());
    ASSERT_FALSE(l.at("tokens").empty());
    for (size_t i = 0; i < l.at("tokens").size(); ++i) {
      const json& top = l.at("top_logprobs")[i];
      ASSERT_EQ(top.size(), 5u) << l.dump();
      EXPECT_EQ(top[0][0], l.at("tokens")[i]);
      EXPECT_NEAR(top[0][1].get<double>(), l.at("logprobs")[i].get<double>(),
                  1e-3);
      EXPECT_LE(l.at("logprobs")[i].get<double>(), 0);
    }
  }
  const std::vector<json> raw = Export(cluster, job, "raw");
  ASSERT_EQ(raw.size(), static_cast<size_t>(kPrompts));
  for (const json& r : raw) {
    EXPECT_EQ(r.at("params").at("top_logprobs"), 5) << r.dump();
    EXPECT_FALSE(r.at("logprobs").at("tokens").empty());
  }
}

TEST(DistillShapesTest, LogprobsFromATeacherWithoutThemAreRefusedAtSubmit) {
  const std::string dir = MakeTempDir("logprobs-refused");
  Cluster cluster(dir, SimCluster({}));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  WriteFile(dir + "/p.jsonl", Prompts(3));
  for (const auto& [teacher, model, why] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"claude", "claude-sonnet", "Anthropic's API, which gives no logprobs"}}) {
    CommandResult r = cluster.Cli({"submit", dir + "/p.jsonl", "--teacher",
                                   teacher, "--model", model, "--logprobs",
                                   "5"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  }
  CommandResult jobs = cluster.Cli({"jobs"});
  EXPECT_EQ(jobs.out.find("job-"), std::string::npos) << jobs.out;
}

const char* kWeatherTool =
    R"({"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}}})";

// Lines 0-5 offer the tool; lines 6-8 are traces ending in its result.
std::string ToolPrompts() {
  std::string out;
  for (int i = 0; i < 6; ++i) {
    out += json{{"id", "ask" + std::to_string(i)},
                {"prompt", "What is the weather in city " + std::to_string(i) +
                               "?"},
                {"tools", json::array({json::parse(kWeatherTool)})}}
               .dump() +
           "\n";
  }
  for (int i = 0; i < 3; ++i) {
    const std::string id = "call_" + std::to_string(i);
    json call = {{"id", id},
                 {"type", "function"},
                 {"function",
                  {{"name", "get_weather"},
                   {"arguments", R"({"city":"Lyon )" + std::to_string(i) +
                                     R"(","days":1})"}}}};
    out += json{{"id", "trace" + std::to_string(i)},
                {"messages",
                 {{{"role", "user"},
                   {"content", "Weather in Lyon " + std::to_string(i) + "?"}},
                  {{"role", "assistant"},
                   {"content", nullptr},
                   {"tool_calls", json::array({call})}},
                  {{"role", "tool"},
                   {"tool_call_id", id},
                   {"content", std::to_string(20 + i) + " C and clear"}}}},
                {"tools", json::array({json::parse(kWeatherTool)})}}
               .dump() +
           "\n";
  }
  return out;
}

void CheckToolExports(Cluster& cluster, const std::string& job,
                      const std::string& finish) {
  const std::vector<json> openai = Export(cluster, job, "openai");
  ASSERT_EQ(openai.size(), 9u) << "the default filter keeps tool calls";
  int calls = 0, texts = 0;
  for (const json& l : openai) {
    EXPECT_EQ(l.at("tools")[0].at("function").at("name"), "get_weather");
    const json& answer = l.at("messages").back();
    EXPECT_EQ(answer.at("role"), "assistant");
    if (answer.contains("tool_calls")) {
      ++calls;
      // OpenAI's calls come without text; Anthropic's with a preface.
      if (finish == "tool_calls") {
        EXPECT_EQ(answer.at("content"), nullptr);
      } else {
        EXPECT_TRUE(answer.at("content").is_string()) << answer;
      }
      const json& call = answer.at("tool_calls")[0];
      EXPECT_EQ(call.at("type"), "function");
      EXPECT_FALSE(call.at("id").get<std::string>().empty());
      EXPECT_EQ(call.at("function").at("name"), "get_weather");
      const json args =
          json::parse(call.at("function").at("arguments").get<std::string>());
      EXPECT_TRUE(args.at("city").is_string()) << args;
      EXPECT_TRUE(args.at("days").is_number_integer()) << args;
      EXPECT_EQ(l.at("messages").size(), 2u) << "only the asking prompts";
    } else {
      ++texts;
      EXPECT_FALSE(answer.at("content").get<std::string>().empty());
      // The trace is kept: the call and its result before the answer.
      ASSERT_EQ(l.at("messages").size(), 4u) << l.dump();
      EXPECT_EQ(l.at("messages")[1].at("tool_calls")[0].at("id"),
                l.at("messages")[2].at("tool_call_id"));
    }
  }
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(texts, 3);
  for (const json& r : Export(cluster, job, "raw")) {
    if (r.contains("tool_calls")) EXPECT_EQ(r.at("finish_reason"), finish);
  }
  const std::vector<json> sharegpt = Export(cluster, job, "sharegpt");
  ASSERT_EQ(sharegpt.size(), 9u);
  int function_calls = 0, observations = 0;
  for (const json& l : sharegpt) {
    EXPECT_EQ(json::parse(l.at("tools").get<std::string>())[0].at("name"),
              "get_weather");
    for (const json& turn : l.at("conversations")) {
      if (turn.at("from") == "function_call") {
        ++function_calls;
        const json call = json::parse(turn.at("value").get<std::string>());
        EXPECT_EQ(call.at("name"), "get_weather");
        EXPECT_TRUE(call.at("arguments").is_object());
      }
      observations += turn.at("from") == "observation";
    }
  }
  EXPECT_EQ(function_calls, 6 + 3);  // the answers' and the traces'
  EXPECT_EQ(observations, 3);
}

TEST(DistillShapesTest, ToolCallsRoundTripThroughBothApis) {
  const std::string dir = MakeTempDir("tools");
  Cluster cluster(dir, SimCluster({}));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/tools.jsonl", ToolPrompts());
  const std::string openai_job = cluster.Submit(dir + "/tools.jsonl");
  ASSERT_EQ(openai_job.rfind("job-", 0), 0u) << openai_job;
  ASSERT_FALSE(Finished(cluster, openai_job).is_null());
  CheckToolExports(cluster, openai_job, "tool_calls");

  CommandResult r = cluster.Cli({"submit", dir + "/tools.jsonl", "--teacher",
                                 "claude", "--model", "claude-sim"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string claude_job = r.out.substr(r.out.rfind("job-"), 10);
  ASSERT_FALSE(Finished(cluster, claude_job).is_null());
  CheckToolExports(cluster, claude_job, "tool_use");
}

const char* kPersonSchema = R"({"type":"object","properties":{
  "name":{"type":"string"},"age":{"type":"integer"},
  "tags":{"type":"array","items":{"type":"string"}}},
  "required":["name","age","tags"],"additionalProperties":false})";

// Checked here by hand, not by the validator under test.
void ExpectPerson(const std::string& content) {
  const json person = json::parse(content, nullptr, false);
  ASSERT_TRUE(person.is_object()) << content;
  EXPECT_TRUE(person.at("name").is_string()) << content;
  EXPECT_TRUE(person.at("age").is_number_integer()) << content;
  EXPECT_TRUE(person.at("tags").is_array()) << content;
  EXPECT_EQ(person.size(), 3u) << content;
}

TEST(DistillShapesTest, SchemaJobExportsOnlyValidAnswers) {
  constexpr int kPrompts = 40;
  const std::string dir = MakeTempDir("schema");
  Cluster cluster(dir, SimCluster({"--json-invalid-rate", "0.3"},
                                  "    max_attempts: 8\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", Prompts(kPrompts));
  WriteFile(dir + "/person.json", kPersonSchema);
  for (const auto& [teacher, model] :
       std::vector<std::pair<std::string, std::string>>{
           {"sim", "sim-small"}, {"claude", "claude-sim"}}) {
    SCOPED_TRACE(teacher);
    CommandResult r = cluster.Cli(
        {"submit", dir + "/p.jsonl", "--teacher", teacher, "--model", model,
         "--json-schema", dir + "/person.json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string job = r.out.substr(r.out.rfind("job-"), 10);
    const json status = Finished(cluster, job);
    ASSERT_FALSE(status.is_null());
    EXPECT_EQ(Int(status, "tasks_done"), kPrompts) << status.dump();
    EXPECT_GT(Int(status, "schema_failures"), 0) << status.dump();
    EXPECT_EQ(status.at("json_schema"), "person");
    const std::vector<json> lines = Export(cluster, job, "openai");
    ASSERT_EQ(lines.size(), static_cast<size_t>(kPrompts));
    for (const json& l : lines) {
      ExpectPerson(l.at("messages").back().at("content"));
    }
  }
}

// The same features by batch: the batch files carry logprobs, tools and the
// schema; results go through the same checks at commit, and an answer that
// does not match is sent again in a later batch.
TEST(DistillShapesTest, BatchJobsCarryLogprobsToolsAndSchemas) {
  constexpr int kPrompts = 30;
  const std::string dir = MakeTempDir("shapes-batch");
  Cluster cluster(dir, SimCluster({"--batch-latency-ms", "0",
                                   "--json-invalid-rate", "0.3"},
                                  "    batch_poll_interval_ms: 100\n"
                                  "    max_attempts: 8\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", Prompts(kPrompts));
  WriteFile(dir + "/tools.jsonl", ToolPrompts());
  WriteFile(dir + "/person.json", kPersonSchema);

  const std::string logprobs_job =
      cluster.Submit(dir + "/p.jsonl", {"--mode", "batch", "--logprobs", "3"});
  ASSERT_EQ(logprobs_job.rfind("job-", 0), 0u) << logprobs_job;
  ASSERT_FALSE(Finished(cluster, logprobs_job).is_null());
  const std::vector<json> lines = Export(cluster, logprobs_job, "logprobs");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kPrompts));
  for (const json& l : lines) {
    ASSERT_FALSE(l.at("tokens").empty()) << l.dump();
    EXPECT_EQ(l.at("top_logprobs")[0].size(), 3u) << l.dump();
  }

  const std::string tools_job =
      cluster.Submit(dir + "/tools.jsonl", {"--mode", "batch"});
  ASSERT_EQ(tools_job.rfind("job-", 0), 0u) << tools_job;
  ASSERT_FALSE(Finished(cluster, tools_job).is_null());
  CheckToolExports(cluster, tools_job, "tool_calls");
  CommandResult r =
      cluster.Cli({"submit", dir + "/tools.jsonl", "--teacher", "claude",
                   "--model", "claude-sim", "--mode", "batch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string claude_job = r.out.substr(r.out.rfind("job-"), 10);
  ASSERT_FALSE(Finished(cluster, claude_job).is_null());
  CheckToolExports(cluster, claude_job, "tool_use");

  const std::string schema_job = cluster.Submit(
      dir + "/p.jsonl",
      {"--mode", "batch", "--json-schema", dir + "/person.json"});
  ASSERT_EQ(schema_job.rfind("job-", 0), 0u) << schema_job;
  const json status = Finished(cluster, schema_job);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(Int(status, "tasks_done"), kPrompts) << status.dump();
  EXPECT_GT(Int(status, "schema_failures"), 0) << status.dump();
  EXPECT_GE(status.at("batches").size(), 2u) << "re-asks need a later batch";
  const std::vector<json> persons = Export(cluster, schema_job, "openai");
  ASSERT_EQ(persons.size(), static_cast<size_t>(kPrompts));
  for (const json& l : persons) {
    ExpectPerson(l.at("messages").back().at("content"));
  }
}

TEST(DistillShapesTest, AnswersThatNeverMatchAreDeadLetteredWithTheReason) {
  const std::string dir = MakeTempDir("schema-dead");
  Cluster cluster(dir, SimCluster({"--json-invalid-rate", "1"},
                                  "    max_attempts: 2\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", Prompts(6));
  WriteFile(dir + "/person.json", kPersonSchema);
  const std::string job = cluster.Submit(
      dir + "/p.jsonl", {"--json-schema", dir + "/person.json"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = cluster.WaitFor(job, Ended, 300, 100);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(status.at("state"), "failed") << status.dump();
  EXPECT_EQ(Int(status, "tasks_failed"), 6);
  EXPECT_EQ(Int(status, "schema_failures"), 12);  // two attempts each
  EXPECT_TRUE(Export(cluster, job, "openai").empty());
  for (const json& e : Export(cluster, job, "errors")) {
    const std::string error = e.at("error");
    EXPECT_TRUE(error.find("answer is not JSON") != std::string::npos ||
                error.find("answer does not match the schema") !=
                    std::string::npos)
        << error;
    EXPECT_NE(error.find("(after 2 attempts)"), std::string::npos) << error;
  }
}

TEST(DistillShapesTest, BadSchemaFilesAreRefusedAtSubmit) {
  const std::string dir = MakeTempDir("schema-bad");
  Cluster cluster(dir, SimCluster({}));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  WriteFile(dir + "/p.jsonl", Prompts(2));
  WriteFile(dir + "/broken.json", "{\"type\": ");
  CommandResult r = cluster.Cli({"submit", dir + "/p.jsonl", "--teacher",
                                 "sim", "--model", "m", "--json-schema",
                                 dir + "/broken.json"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--json-schema"), std::string::npos) << r.err;
  r = cluster.Cli({"submit", dir + "/p.jsonl", "--teacher", "sim", "--model",
                   "m", "--json-schema", dir + "/missing.json"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace distillery::testing
