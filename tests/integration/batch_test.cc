// The batch path end to end: real coordinator, workers and teacher-sim (its
// OpenAI and Anthropic batch APIs) on loopback.
//   - 2,000 prompts in --mode batch, split by count and by bytes, with 5%
//     per-request errors and shuffled results, while the coordinator and the
//     workers are SIGKILLed at random moments with batches open: every
//     prompt answered once with its own answer, nothing answered twice by
//     the simulator, no batch refused for size, and the cost half the
//     online price of the same tokens.
//   - Batches that expire part way: the finished part kept, the rest sent
//     again until done, nothing paid twice.
//   - An enqueued-token limit: batches refused for it wait and complete.
//   - Anthropic: prompt ids that are no valid custom_id, reasoning kept.
//   - auto with a deadline shorter than the simulator's batch time: done by
//     the deadline plus one poll, the rest online, counts each way.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

// Online prices of the "sim" profile; batch prices default to half.
constexpr char kPricing[] =
    "    pricing:\n      \"*\": {input: 1.0, output: 2.0}\n";

// `n` distinct prompts "Batch prompt <i> about ...", ids "p<i>"; those in
// [padded_from, padded_to) are padded to about 1 KB.
std::string BatchPrompts(int n, int padded_from = 0, int padded_to = 0) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    std::string prompt = "Batch prompt " + std::to_string(i) +
                         " about subject " + std::to_string(i * 7919 % 10007);
    if (i >= padded_from && i < padded_to) {
      for (int w = 0; prompt.size() < 1000; ++w) {
        prompt += " word" + std::to_string((i + w) % 977);
      }
    }
    text += json{{"id", "p" + std::to_string(i)}, {"prompt", prompt}}.dump() +
            "\n";
  }
  return text;
}

bool Ended(const json& status) {
  return !status.is_null() && status.at("state") != "running";
}

int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? 0 : it->get<int64_t>();
}

// The job's records (raw export, duplicates included).
std::vector<json> Export(Cluster& cluster, const std::string& job) {
  const std::string raw = cluster.dir() + "/raw-" + job + ".jsonl";
  CommandResult r =
      cluster.Cli({"export", job, "--format", "raw", "--include-duplicates",
                   "--include-failed", "--finish-reason", "any", "--out", raw});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ReadJsonLines(raw);
}

// Every prompt p0..p<n-1> answered exactly once, by an answer quoting it.
void ExpectEachPromptAnsweredOnce(const std::vector<json>& records, int n) {
  EXPECT_EQ(records.size(), static_cast<size_t>(n));
  std::set<std::string> ids;
  for (const json& r : records) {
    const std::string id = r.at("prompt_id").get<std::string>();
    EXPECT_TRUE(ids.insert(id).second) << "record twice: " << id;
    ASSERT_EQ(r.at("state"), "done") << r.dump();
    // teacher-sim's answer opens by quoting the prompt's first words.
    const std::string quote = "prompt " + id.substr(1) + " about";
    EXPECT_NE(r.at("content").get<std::string>().find(quote),
              std::string::npos)
        << id << " has another prompt's answer: " << r.at("content");
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));
}

// The job's cost equals its tokens at half the online prices (1 and 2 USD
// per million).
void ExpectHalfPrice(const json& status) {
  const double online = (Int(status, "prompt_tokens") * 1.0 +
                         Int(status, "completion_tokens") * 2.0) /
                        1e6;
  ASSERT_GT(online, 0);
  const double cost = status.at("cost_usd").get<double>();
  EXPECT_NEAR(cost, online / 2, online * 1e-6)
      << "cost " << cost << " vs online " << online;
}

// How many records cost half their tokens' online price (by batch) and how
// many the full price (online); every record must be one or the other, and
// together they must make the job's cost.
struct PriceSplit {
  int64_t half = 0;
  int64_t full = 0;
};
PriceSplit SplitByPrice(const std::vector<json>& records, const json& status) {
  PriceSplit split;
  double total = 0;
  for (const json& r : records) {
    const json& usage = r.at("usage");
    const double online = (usage.at("prompt_tokens").get<double>() * 1.0 +
                           usage.at("completion_tokens").get<double>() * 2.0) /
                          1e6;
    const double cost = r.at("cost_usd").get<double>();
    total += cost;
    if (std::abs(cost - online / 2) <= online * 1e-9) {
      ++split.half;
    } else if (std::abs(cost - online) <= online * 1e-9) {
      ++split.full;
    } else {
      ADD_FAILURE() << "record at neither price: " << r.dump();
    }
  }
  const double job_cost = status.at("cost_usd").get<double>();
  EXPECT_NEAR(total, job_cost, job_cost * 1e-6);
  return split;
}

ClusterOptions BatchCluster(std::vector<std::string> sim_args,
                            std::string profile) {
  ClusterOptions options;
  options.sim_args = std::move(sim_args);
  options.teacher_extra = std::move(profile) + kPricing;
  options.coordinator_args = {"--lease-seconds", "3", "--heartbeat-ms", "300"};
  return options;
}

TEST(BatchTest, KilledAtRandomWithBatchesOpenEveryPromptIsAnsweredOnceAtHalfPrice) {
  constexpr int kPrompts = 2000;
  constexpr int kMaxRequests = 250;
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::string dir = MakeTempDir("batch-chaos");
  // Plain lines are ~200 bytes, so 250 of them fit in 60 KB; prompts 1000 to
  // 1499 are ~1.2 KB lines, so their batches are cut by bytes.
  Cluster cluster(
      dir, BatchCluster({"--batch-error-rate", "0.05", "--batch-latency-ms",
                         "1500", "--batch-requests-per-second", "200",
                         "--seed", std::to_string(seed % 100000)},
                        "    batch_max_requests: 250\n"
                        "    batch_max_bytes: 60000\n"
                        "    batch_poll_interval_ms: 200\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, BatchPrompts(kPrompts, 1000, 1500));
  const std::string job =
      cluster.Submit(prompts, {"--mode", "batch", "--max-tokens", "48"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;

  // Two SIGKILLs of the coordinator and two of a worker, in random order,
  // each at a random point of the job while a batch is open.
  std::vector<char> kills = {'c', 'c', 'w', 'w'};
  std::shuffle(kills.begin(), kills.end(), rng);
  std::vector<double> at;
  for (size_t i = 0; i < kills.size(); ++i) {
    at.push_back(std::uniform_real_distribution<double>(0.0, 0.6)(rng));
  }
  std::sort(at.begin(), at.end());
  int kills_with_batches_open = 0;
  for (size_t k = 0; k < kills.size(); ++k) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(300);
    bool open = false;
    while (std::chrono::steady_clock::now() < deadline) {
      const json s = cluster.Status(job);
      if (Ended(s)) break;
      if (!s.is_null() && Int(s, "tasks_done") >= at[k] * kPrompts &&
          Int(s, "tasks_in_batches") > 0) {
        open = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    if (!open) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(0, 400)(rng)));
    ++kills_with_batches_open;
    if (kills[k] == 'c') {
      cluster.StopCoordinator(SIGKILL);
      ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
    } else {
      const int w = std::uniform_int_distribution<int>(0, 1)(rng);
      cluster.StopWorker(w, SIGKILL);
      cluster.StartWorker(w);
    }
  }
  EXPECT_EQ(kills_with_batches_open, 4) << "the job ended before the kills";

  const json status = cluster.WaitFor(job, Ended, 600, 200);
  ASSERT_FALSE(status.is_null()) << "the job did not end";
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  EXPECT_EQ(Int(status, "tasks_done"), kPrompts) << status.dump();
  EXPECT_EQ(Int(status, "batch_answers"), kPrompts);
  EXPECT_EQ(Int(status, "online_answers"), 0);
  const std::vector<json> records = Export(cluster, job);
  ExpectEachPromptAnsweredOnce(records, kPrompts);
  ExpectHalfPrice(status);
  EXPECT_EQ(SplitByPrice(records, status).half, kPrompts);

  // Split by count (full batches) and by bytes (short ones that were not
  // the job's last).
  int full = 0, cut_by_bytes = 0;
  for (const json& b : status.at("batches")) {
    if (Int(b, "tasks") == kMaxRequests) ++full;
    if (Int(b, "tasks") > 0 && Int(b, "tasks") < 80) ++cut_by_bytes;
  }
  EXPECT_GE(full, 2) << status.at("batches").dump();
  EXPECT_GE(cut_by_bytes, 5) << status.at("batches").dump();

  const json stats = cluster.SimStats();
  const json& batches = stats.at("batches");
  std::cout << "batch chaos: seed " << seed << ", "
            << status.at("batches").size() << " batches, sim " << batches.dump()
            << ", completions " << stats.at("chat_completions_total")
            << std::endl;
  EXPECT_EQ(stats.at("chat_completions_repeated"), 0);
  EXPECT_EQ(stats.at("chat_completions_total"), kPrompts);
  EXPECT_GT(Int(batches, "requests_errored"), 0) << "no errors were injected";
  EXPECT_EQ(Int(batches.at("rejected"), "too_large"), 0);
  EXPECT_EQ(Int(batches.at("failed_validation"), "too_many_requests"), 0);
  EXPECT_EQ(Int(batches.at("failed_validation"), "file_too_large"), 0);
  EXPECT_EQ(Int(batches, "open"), 0);
  // Every batch the provider made is one of the job's (none made twice).
  EXPECT_EQ(Int(batches, "created"),
            static_cast<int64_t>(status.at("batches").size()));
}

TEST(BatchTest, ExpiredBatchesKeepWhatFinishedAndSendTheRestAgain) {
  constexpr int kPrompts = 300;
  const std::string dir = MakeTempDir("batch-expiry");
  // 100 requests at 60/s take 1.7 s; batches expire after 1 s.
  Cluster cluster(dir, BatchCluster({"--batch-latency-ms", "0",
                                     "--batch-requests-per-second", "60",
                                     "--batch-expire-ms", "1000"},
                                    "    batch_max_requests: 100\n"
                                    "    batch_poll_interval_ms: 200\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, BatchPrompts(kPrompts));
  const std::string job = cluster.Submit(prompts, {"--mode", "batch"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = cluster.WaitFor(job, Ended, 300, 200);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  ExpectEachPromptAnsweredOnce(Export(cluster, job), kPrompts);
  ExpectHalfPrice(status);
  int64_t not_run = 0;
  for (const json& b : status.at("batches")) not_run += Int(b, "not_run");
  EXPECT_GT(not_run, 0) << status.at("batches").dump();
  const json stats = cluster.SimStats();
  EXPECT_GE(Int(stats.at("batches"), "expired"), 1) << stats.dump();
  EXPECT_GT(Int(stats.at("batches"), "requests_expired"), 0);
  // What ran before an expiry was kept: nothing answered twice.
  EXPECT_EQ(stats.at("chat_completions_total"), kPrompts);
  EXPECT_EQ(stats.at("chat_completions_repeated"), 0);
}

TEST(BatchTest, AnEnqueuedTokenLimitHoldsBatchesBackUntilTheyFit) {
  constexpr int kPrompts = 400;
  const std::string dir = MakeTempDir("batch-tokens");
  // A batch of 100 requests counts ~100 * (180 / 4 + 32) = 7,700 tokens:
  // one fits under the limit, two do not.
  Cluster cluster(dir, BatchCluster({"--batch-latency-ms", "1500",
                                     "--batch-enqueued-token-limit", "11000"},
                                    "    batch_max_requests: 100\n"
                                    "    batch_poll_interval_ms: 200\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  cluster.StartWorker(1);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, BatchPrompts(kPrompts));
  const std::string job =
      cluster.Submit(prompts, {"--mode", "batch", "--max-tokens", "32"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = cluster.WaitFor(job, Ended, 300, 200);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  EXPECT_EQ(Int(status, "tasks_failed"), 0);
  ExpectEachPromptAnsweredOnce(Export(cluster, job), kPrompts);
  const json stats = cluster.SimStats();
  EXPECT_GE(Int(stats.at("batches").at("failed_validation"),
                "token_limit_exceeded"),
            1)
      << stats.dump();
  EXPECT_EQ(stats.at("chat_completions_total"), kPrompts);
  EXPECT_EQ(stats.at("chat_completions_repeated"), 0);
}

TEST(BatchTest, AnthropicBatchWithIdsThatAreNoCustomIdsKeepsReasoning) {
  constexpr int kPrompts = 120;
  const std::string dir = MakeTempDir("batch-anthropic");
  ClusterOptions options =
      BatchCluster({"--batch-latency-ms", "300"}, "");
  options.more_profiles = [](const std::string& sim) {
    return "  - name: claude\n    api: anthropic\n    base_url: http://" + sim +
           "\n    thinking_budget_tokens: 1024\n"
           "    batch_max_requests: 50\n    batch_poll_interval_ms: 200\n";
  };
  Cluster cluster(dir, options);
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  std::string text;
  for (int i = 0; i < kPrompts; ++i) {
    // Slashes, spaces, colons, non-ASCII and 80 characters: none of these
    // ids is a valid custom_id.
    const std::string id = "doc/" + std::to_string(i) + " é:" +
                           std::string(70, i % 2 ? 'x' : '.');
    text += json{{"id", id},
                 {"prompt", "Batch prompt " + std::to_string(i) + " about it"}}
                .dump() +
            "\n";
  }
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, text);
  CommandResult submitted =
      cluster.Cli({"submit", prompts, "--teacher", "claude", "--model",
                   "claude-thinking", "--mode", "batch", "--max-tokens",
                   "2048"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = LastLine(submitted.out);
  const json status = cluster.WaitFor(job, Ended, 300, 200);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  EXPECT_EQ(Int(status, "batch_answers"), kPrompts);
  const std::vector<json> records = Export(cluster, job);
  ASSERT_EQ(records.size(), static_cast<size_t>(kPrompts));
  std::set<std::string> ids;
  for (const json& r : records) {
    ids.insert(r.at("prompt_id").get<std::string>());
    EXPECT_EQ(r.at("state"), "done");
    EXPECT_FALSE(r.at("reasoning").get<std::string>().empty()) << r.dump();
    const std::string id = r.at("prompt_id").get<std::string>();
    const std::string n = id.substr(4, id.find(' ') - 4);
    EXPECT_NE(r.at("content").get<std::string>().find("prompt " + n + " about"),
              std::string::npos)
        << r.dump();
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kPrompts));
  const json stats = cluster.SimStats();
  EXPECT_TRUE(stats.at("batches").at("rejected").empty()) << stats.dump();
  EXPECT_EQ(stats.at("chat_completions_total"), kPrompts);
}

TEST(BatchTest, AutoWithADeadlineSendsWhatBatchCannotDeliverOnline) {
  constexpr int kPrompts = 200;
  constexpr int64_t kPollMs = 500;
  // The last fifth of the window (4 s) is kept for online calls.
  const std::string dir = MakeTempDir("batch-auto");
  // The batch runs 8 requests a second: 25 s for the job, past its 20 s
  // deadline.
  Cluster cluster(dir, BatchCluster({"--batch-latency-ms", "0",
                                     "--batch-requests-per-second", "8",
                                     "--batch-cancel-ms", "100",
                                     "--latency-ms", "20"},
                                    "    batch_poll_interval_ms: " +
                                        std::to_string(kPollMs) + "\n"));
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  const std::string prompts = dir + "/prompts.jsonl";
  WriteFile(prompts, BatchPrompts(kPrompts));
  const std::string job =
      cluster.Submit(prompts, {"--mode", "auto", "--deadline", "20s"});
  ASSERT_EQ(job.rfind("job-", 0), 0u) << job;
  const json status = cluster.WaitFor(job, Ended, 120, 200);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(status.at("state"), "completed") << status.dump();
  const std::vector<json> records = Export(cluster, job);
  ExpectEachPromptAnsweredOnce(records, kPrompts);
  const int64_t by_batch = Int(status, "batch_answers");
  const int64_t online = Int(status, "online_answers");
  std::cout << "auto: " << by_batch << " by batch, " << online
            << " online, finished "
            << Int(status, "finished_ms") - Int(status, "deadline_ms")
            << " ms after the deadline" << std::endl;
  EXPECT_EQ(by_batch + online, kPrompts);
  EXPECT_GT(by_batch, 0) << "the bulk should go by batch";
  EXPECT_GT(online, 0) << "what batch could not deliver should go online";
  EXPECT_LE(Int(status, "finished_ms"), Int(status, "deadline_ms") + kPollMs)
      << status.dump();
  const json stats = cluster.SimStats();
  EXPECT_EQ(stats.at("chat_completions_total"), kPrompts);
  EXPECT_EQ(stats.at("chat_completions_repeated"), 0);
  EXPECT_GE(Int(stats.at("batches"), "cancelled"), 1) << stats.dump();
  // Batch answers at half price, online ones at full.
  const PriceSplit split = SplitByPrice(records, status);
  EXPECT_EQ(split.half, by_batch);
  EXPECT_EQ(split.full, online);
}

}  // namespace
}  // namespace distillery::testing
