// Verification and adaptive sampling with real processes on loopback:
// teacher-sim answering "What is A + B?" right for a known share of
// requests, a coordinator on RocksDB, workers, and the CLI. Every exported
// verified answer is checked here again, by recomputing the sum from the
// prompt, not by trusting the record's own flag.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>

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

// Prompt i: "What is A + B?" with its sum as metadata.answer; the first
// `without_reference` prompts have no answer.
std::string MathPrompts(int n, int without_reference = 0) {
  return JsonLines(n, [&](int i) {
    const int a = 1000 + i * 37;
    const int b = 17 + i * 11;
    json row = {{"id", "m" + std::to_string(i)},
                {"prompt", "What is " + std::to_string(a) + " + " +
                               std::to_string(b) + "? Show the result."}};
    if (i >= without_reference) {
      row["metadata"] = {{"answer", std::to_string(a + b)}};
    }
    return row;
  });
}

// The sum a math prompt asks for, recomputed from its text.
int64_t SumAsked(const std::string& prompt) {
  std::smatch m;
  static const std::regex kAsk(R"(What is (\d+) \+ (\d+)\?)");
  EXPECT_TRUE(std::regex_search(prompt, m, kAsk)) << prompt;
  return std::stoll(m[1]) + std::stoll(m[2]);
}

// The last \boxed{N} of an answer; -1 when none.
int64_t Boxed(const std::string& content) {
  static const std::regex kBoxed(R"(\\boxed\{(-?\d+)\})");
  int64_t last = -1;
  for (auto it = std::sregex_iterator(content.begin(), content.end(), kBoxed);
       it != std::sregex_iterator(); ++it) {
    last = std::stoll((*it)[1]);
  }
  return last;
}

ClusterOptions MathCluster(double accuracy, std::string profile = "") {
  ClusterOptions options;
  options.sim_args = {"--latency-ms", "2", "--math-accuracy",
                      std::to_string(accuracy)};
  options.teacher_extra = std::move(profile);
  options.coordinator_args = {"--lease-seconds", "3", "--heartbeat-ms", "300"};
  return options;
}

std::vector<json> ExportRaw(Cluster& cluster, const std::string& job,
                            std::vector<std::string> extra = {}) {
  const std::string out = cluster.dir() + "/export-" +
                          std::to_string(std::rand()) + ".jsonl";
  std::vector<std::string> args = {"export", job, "--format", "raw", "--out",
                                   out};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = cluster.Cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ReadJsonLines(out);
}

// The Done-when figures: every verified answer right, >= 75% of prompts
// with one, < 2.6 requests per prompt where a fixed 4 samples cost 4.
// `paid_twice`: requests the teacher may have answered twice (in flight at
// a coordinator's SIGKILL).
// `batch`: the job ran by batch, so the sim's online count is 0 and the
// job's batch_answers counts the teacher's answers.
void CheckAdaptiveHarvest(Cluster& cluster, const std::string& job,
                          int prompts, int64_t paid_twice = 0,
                          bool batch = false) {
  const json status = cluster.WaitFor(job, Ended, 600, 100);
  ASSERT_FALSE(status.is_null()) << "the job did not end";
  ASSERT_EQ(status.at("state"), "completed") << status.dump();

  const std::vector<json> verified =
      ExportRaw(cluster, job, {"--verified-only"});
  std::set<std::string> passed;
  for (const json& r : verified) {
    ASSERT_EQ(r.at("verified"), true) << r.dump();
    const std::string prompt = r.at("messages").back().at("content");
    const int64_t sum = SumAsked(prompt);
    EXPECT_EQ(Boxed(r.at("content")), sum) << r.dump();
    EXPECT_EQ(r.at("extracted_answer"), std::to_string(sum)) << r.dump();
    EXPECT_TRUE(passed.insert(r.at("prompt_id")).second)
        << "two verified answers of one prompt with --until-correct 1: "
        << r.dump();
  }
  EXPECT_GE(passed.size(), prompts * 3 / 4);
  EXPECT_EQ(Int(status, "prompts_passed"), static_cast<int64_t>(passed.size()));
  EXPECT_EQ(Int(status, "verified_answers"),
            static_cast<int64_t>(passed.size()));

  // Every sample the teacher was asked for is a record; none follows a
  // verified one, and no prompt took more than --max-samples.
  const std::vector<json> all = ExportRaw(
      cluster, job, {"--include-duplicates", "--finish-reason", "any"});
  std::map<std::string, std::vector<json>> by_prompt;
  for (const json& r : all) by_prompt[r.at("prompt_id")].push_back(r);
  EXPECT_EQ(by_prompt.size(), static_cast<size_t>(prompts));
  int64_t samples = 0;
  for (const auto& [id, records] : by_prompt) {
    EXPECT_LE(records.size(), 4u) << id;
    samples += static_cast<int64_t>(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      EXPECT_EQ(records[i].at("sample"), static_cast<int>(i)) << id;
      const bool right = records[i].at("verified") == true;
      if (right) EXPECT_EQ(i + 1, records.size()) << "sampled past a pass: " << id;
      if (!right && i + 1 == records.size()) {
        EXPECT_EQ(records.size(), 4u) << "stopped before --max-samples: " << id;
      }
    }
  }
  EXPECT_EQ(Int(status, "tasks_total"), samples);
  EXPECT_EQ(Int(status, "verified_answers") + Int(status, "rejected_answers"),
            samples);
  const int64_t requests =
      batch ? Int(status, "batch_answers")
            : cluster.SimStats().at("chat_completions_total").get<int64_t>();
  if (batch) EXPECT_EQ(Int(status, "online_answers"), 0);
  EXPECT_GE(requests, samples);
  EXPECT_LE(requests, samples + paid_twice) << "samples paid for twice";
  const double per_prompt = static_cast<double>(samples) / prompts;
  EXPECT_LT(per_prompt, 2.6) << requests << " requests";
  EXPECT_NEAR(status.at("samples_per_prompt").get<double>(), per_prompt, 1e-9);
  EXPECT_LT(static_cast<double>(requests) / prompts, 2.6);
  std::cerr << "adaptive: " << passed.size() << "/" << prompts
            << " prompts verified, " << per_prompt << " samples and "
            << static_cast<double>(requests) / prompts
            << " teacher requests per prompt\n";
}

TEST(VerifyTest, AdaptiveSamplingStopsAtTheFirstRightAnswer) {
  constexpr int kPrompts = 500;
  const std::string dir = MakeTempDir("verify-adaptive");
  Cluster cluster(dir, MathCluster(1.0 / 3));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  const std::string prompts = dir + "/math.jsonl";
  WriteFile(prompts, MathPrompts(kPrompts));
  const std::string job =
      cluster.Submit(prompts, {"--verify", "math", "--until-correct", "1",
                               "--max-samples", "4", "--temperature", "1"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  CheckAdaptiveHarvest(cluster, job, kPrompts);
}

TEST(VerifyTest, AdaptiveSamplingSurvivesCoordinatorKills) {
  constexpr int kPrompts = 300;
  const std::string dir = MakeTempDir("verify-kills");
  Cluster cluster(dir, MathCluster(1.0 / 3));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/math.jsonl";
  WriteFile(prompts, MathPrompts(kPrompts));
  const std::string job = cluster.Submit(
      prompts, {"--verify", "math", "--until-correct", "1", "--max-samples",
                "4"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  // SIGKILL the coordinator twice while later samples are being created.
  for (int64_t at : {150, 400}) {
    const json s = cluster.WaitFor(
        job,
        [&](const json& j) {
          return Ended(j) || Int(j, "tasks_done") >= at;
        },
        300, 20);
    ASSERT_FALSE(s.is_null());
    if (Ended(s)) break;
    cluster.StopCoordinator(SIGKILL);
    ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  }
  // At most the profile's concurrency was in flight at each kill.
  CheckAdaptiveHarvest(cluster, job, kPrompts, 2 * 16);
}

TEST(VerifyTest, AdaptiveSamplingByBatchSendsEachRoundInTheNextBatch) {
  constexpr int kPrompts = 200;
  const std::string dir = MakeTempDir("verify-batch");
  ClusterOptions options = MathCluster(1.0 / 3,
                                       "    batch_poll_interval_ms: 100\n");
  options.sim_args.insert(options.sim_args.end(),
                          {"--batch-latency-ms", "0"});
  Cluster cluster(dir, options);
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/math.jsonl";
  WriteFile(prompts, MathPrompts(kPrompts));
  const std::string job = cluster.Submit(
      prompts, {"--mode", "batch", "--verify", "math", "--until-correct", "1",
                "--max-samples", "4"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  CheckAdaptiveHarvest(cluster, job, kPrompts, 0, /*batch=*/true);
  const json status = cluster.Status(job);
  EXPECT_GE(status.at("batches").size(), 2u) << "rounds need batches";
}

TEST(VerifyTest, FixedSamplesCountPassRateAndFilterByIt) {
  constexpr int kPrompts = 60;
  const std::string dir = MakeTempDir("verify-passrate");
  Cluster cluster(dir, MathCluster(0.5));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/math.jsonl";
  // The first 5 prompts have no reference: their answers are not checked.
  WriteFile(prompts, MathPrompts(kPrompts, 5));
  const std::string job =
      cluster.Submit(prompts, {"--verify", "math", "--samples", "4"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = cluster.WaitFor(job, Ended, 300, 100);
  ASSERT_FALSE(status.is_null());
  ASSERT_EQ(status.at("state"), "completed") << status.dump();
  EXPECT_EQ(Int(status, "tasks_total"), kPrompts * 4);
  EXPECT_EQ(Int(status, "unverifiable_answers"), 5 * 4);

  const std::vector<json> all = ExportRaw(
      cluster, job, {"--include-duplicates", "--finish-reason", "any"});
  ASSERT_EQ(all.size(), static_cast<size_t>(kPrompts * 4));
  std::map<std::string, int> right;
  std::set<std::string> referenced;
  int64_t verified = 0, rejected = 0;
  for (const json& r : all) {
    const std::string id = r.at("prompt_id");
    right.try_emplace(id, 0);
    if (r.at("verified").is_null()) {
      EXPECT_EQ(r.at("metadata"), nullptr) << r.dump();
      continue;
    }
    referenced.insert(id);
    const bool ok =
        Boxed(r.at("content")) == SumAsked(r.at("messages").back().at("content"));
    EXPECT_EQ(r.at("verified").get<bool>(), ok) << r.dump();
    if (ok) {
      ++right[id];
      ++verified;
    } else {
      ++rejected;
    }
  }
  EXPECT_EQ(Int(status, "verified_answers"), verified);
  EXPECT_EQ(Int(status, "rejected_answers"), rejected);
  int64_t passed = 0;
  for (const auto& [id, n] : right) passed += n > 0;
  EXPECT_EQ(Int(status, "prompts_passed"), passed);

  // --max-pass-rate 0.5 keeps exactly the referenced prompts with at most
  // 2 of 4 right, all their samples; --min-pass-rate 0.75 those with 3+.
  auto ids_of = [](const std::vector<json>& records) {
    std::map<std::string, int> n;
    for (const json& r : records) ++n[r.at("prompt_id")];
    return n;
  };
  const auto hard = ids_of(ExportRaw(
      cluster, job,
      {"--include-duplicates", "--finish-reason", "any", "--max-pass-rate",
       "0.5"}));
  const auto easy = ids_of(ExportRaw(
      cluster, job,
      {"--include-duplicates", "--finish-reason", "any", "--min-pass-rate",
       "0.75"}));
  for (const auto& [id, n] : right) {
    const bool has_reference = referenced.count(id) > 0;
    EXPECT_EQ(hard.count(id) > 0, has_reference ? n <= 2 : true) << id;
    EXPECT_EQ(easy.count(id) > 0, has_reference && n >= 3) << id;
    if (hard.count(id)) {
      EXPECT_EQ(hard.at(id), 4) << id;
    }
  }
  EXPECT_FALSE(hard.empty());
  EXPECT_FALSE(easy.empty());
}

TEST(VerifyTest, ExactAndRegexChecks) {
  const std::string dir = MakeTempDir("verify-modes");
  Cluster cluster(dir, MathCluster(1.0));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/math.jsonl";
  WriteFile(prompts, MathPrompts(20));
  // Every answer is right, but none is exactly the bare number.
  const std::string exact = cluster.Submit(prompts, {"--verify", "exact"});
  ASSERT_EQ(exact.rfind("job-", 0), 0u) << exact;
  json s = cluster.WaitFor(exact, Ended, 300, 50);
  ASSERT_FALSE(s.is_null());
  EXPECT_EQ(Int(s, "rejected_answers"), 20) << s.dump();
  EXPECT_EQ(Int(s, "prompts_passed"), 0);
  // A regex needs no reference; its group is the extracted answer. The
  // same requests again: answered from the cache, and checked all the same.
  const std::string regex =
      cluster.Submit(prompts, {"--verify", R"(regex:boxed\{(\d+)\})"});
  ASSERT_EQ(regex.rfind("job-", 0), 0u) << regex;
  s = cluster.WaitFor(regex, Ended, 300, 50);
  ASSERT_FALSE(s.is_null());
  EXPECT_EQ(Int(s, "verified_answers"), 20) << s.dump();
  EXPECT_EQ(Int(s, "prompts_passed"), 20);
  EXPECT_EQ(Int(s, "cache_hits"), 20);
  for (const json& r : ExportRaw(cluster, regex, {"--verified-only"})) {
    EXPECT_EQ(r.at("extracted_answer"),
              std::to_string(SumAsked(r.at("messages").back().at("content"))));
  }
}

TEST(VerifyTest, DecontaminationDropsExactlyThePlantedOverlaps) {
  const std::string dir = MakeTempDir("verify-decontaminate");
  Cluster cluster(dir, MathCluster(0.5));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  // A benchmark of 50 questions, JSONL with "problem"; prompts 7, 19 and 33
  // quote 13+ words of questions 4, 11 and 40, in other case and
  // punctuation; prompt 25 shares only 12 words of question 20.
  auto question = [](int q) {
    std::string text;
    for (int w = 0; w < 25; ++w) {
      text += (w ? " " : "") + std::string("bench") + std::to_string(q) +
              "word" + std::to_string(w);
    }
    return text;
  };
  auto words = [](int q, int from, int to) {
    std::string text;
    for (int w = from; w < to; ++w) {
      text += " BENCH" + std::to_string(q) + "Word" + std::to_string(w) + ",";
    }
    return text;
  };
  const std::string bench = dir + "/bench.jsonl";
  WriteFile(bench, JsonLines(50, [&](int q) {
              return json{{"problem", question(q)}, {"solution", "x"}};
            }));
  const std::map<int, int> planted = {{7, 4}, {19, 11}, {33, 40}};
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, JsonLines(40, [&](int i) {
              std::string text = "Prompt " + std::to_string(i) + " asks:";
              if (planted.count(i)) text += words(planted.at(i), 5, 18);
              if (i == 25) text += words(20, 0, 12);
              return json{{"id", "p" + std::to_string(i)}, {"prompt", text}};
            }));
  const std::string job = cluster.Submit(prompts);
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  ASSERT_FALSE(cluster.WaitFor(job, Ended, 300, 50).is_null());

  const std::string out = dir + "/clean.jsonl";
  CommandResult r = cluster.Cli({"export", job, "--format", "chat", "--out", out,
                                 "--decontaminate", bench});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> kept;
  for (const json& line : ReadJsonLines(out)) {
    kept.insert(line.at("messages").back().at("content"));
  }
  EXPECT_EQ(kept.size(), 37u);
  EXPECT_NE(r.err.find("decontamination: 3 prompts (3 records) left out for "
                       "sharing an n-gram with 3 benchmark questions (lines "
                       "5, 12, 41)"),
            std::string::npos)
      << r.err;

  std::map<std::string, int64_t> marked;
  for (const json& rec : ExportRaw(cluster, job,
                                   {"--decontaminate", bench,
                                    "--include-contaminated"})) {
    if (rec.contains("contamination")) {
      marked[rec.at("prompt_id")] =
          rec.at("contamination").at("benchmark_line").get<int64_t>();
    }
  }
  EXPECT_EQ(marked, (std::map<std::string, int64_t>{
                        {"p7", 5}, {"p19", 12}, {"p33", 41}}));
  // A smaller n-gram finds the 12-word overlap too.
  r = cluster.Cli({"export", job, "--format", "chat", "--out",
                   dir + "/clean8.jsonl", "--decontaminate", bench,
                   "--decontaminate-ngram", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadJsonLines(dir + "/clean8.jsonl").size(), 36u);
  // Bad benchmark files and flag combinations name what is wrong.
  WriteFile(dir + "/bad.jsonl", "{\"problem\": \"" + question(1) +
                                    "\"}\n{\"q\": 1}\n");
  r = cluster.Cli({"export", job, "--decontaminate", dir + "/bad.jsonl"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.jsonl: line 2: no \"question\""),
            std::string::npos)
      << r.err;
  r = cluster.Cli({"export", job, "--decontaminate", bench,
                   "--include-contaminated"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--format raw only"), std::string::npos) << r.err;
}

TEST(VerifyTest, BadVerifyOptionsAreRefusedAndStoreNothing) {
  const std::string dir = MakeTempDir("verify-bad");
  Cluster cluster(dir, MathCluster(0.5));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  const std::string prompts = dir + "/math.jsonl";
  WriteFile(prompts, MathPrompts(3));
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"--verify", "fuzzy"}, "unknown check"},
      {{"--verify", "regex:("}, "regex"},
      {{"--until-correct", "1", "--max-samples", "3"}, "needs --verify"},
      {{"--verify", "math", "--until-correct", "2"}, "needs --max-samples"},
      {{"--verify", "math", "--until-correct", "3", "--max-samples", "2"},
       "--max-samples must be between"},
      {{"--verify", "math", "--until-correct", "1", "--max-samples", "3",
        "--samples", "2"},
       "not --samples"},
      {{"--answer-field", "solution"}, "needs --verify"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"submit", prompts, "--teacher", "sim",
                                     "--model", "sim-small"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandResult r = cluster.Cli(args);
    EXPECT_NE(r.exit_code, 0) << c.error;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << r.err;
  }
  // A reference that is an object names its line.
  const std::string odd = dir + "/odd.jsonl";
  WriteFile(odd, MathPrompts(2) +
                     R"({"prompt": "What is 1 + 1?", "metadata": {"answer": {"x": 2}}})"
                     "\n");
  CommandResult r = cluster.Cli({"submit", odd, "--teacher", "sim", "--model",
                                 "sim-small", "--verify", "math"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("line 3: metadata.answer must be a string or a number"),
            std::string::npos)
      << r.err;
  r = cluster.Cli({"jobs"});
  EXPECT_EQ(r.out.find("job-"), std::string::npos) << "a job was stored: " << r.out;
  // Export filters out of range.
  r = cluster.Cli({"export", "job-000001", "--min-pass-rate", "0.8",
                   "--max-pass-rate", "0.2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--min-pass-rate is above --max-pass-rate"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace distillery::testing
