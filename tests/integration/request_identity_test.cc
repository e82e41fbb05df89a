// One request, one key, one payment: a task's key is made from the request
// it sends (common/job/task_request.h), so two jobs that send the same
// request (sample 1 of `--seed 5 --samples 2` and `--seed 6`) pay for it
// once. Real processes on loopback; teacher-sim's /stats counts what it was
// sent and how often an identical request came again.
#include <gtest/gtest.h>

#include <filesystem>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"
#include "tests/testing/temp_dir.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

bool Ended(const json& s) { return s.at("state") != "running"; }

TEST(RequestIdentityTest, TheSameSeedSentIsPaidForOnceAcrossJobs) {
  constexpr int kPrompts = 20;
  const std::string dir = MakeTempDir("request-identity");
  Cluster cluster(dir, ClusterOptions{});
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.coordinator().Stderr();
  cluster.StartWorker(0);
  WriteFile(dir + "/p.jsonl", DistinctPrompts(kPrompts, "identity"));

  const std::string first =
      cluster.Submit(dir + "/p.jsonl", {"--seed", "5", "--samples", "2"});
  ASSERT_FALSE(first.empty());
  const json one = cluster.WaitFor(first, Ended, 120);
  ASSERT_FALSE(one.is_null());
  EXPECT_EQ(one.at("state"), "completed") << one.dump();
  EXPECT_EQ(one.at("teacher_requests"), 2 * kPrompts);

  const std::string second =
      cluster.Submit(dir + "/p.jsonl", {"--seed", "6", "--samples", "1"});
  ASSERT_FALSE(second.empty());
  const json two = cluster.WaitFor(second, Ended, 120);
  ASSERT_FALSE(two.is_null());
  EXPECT_EQ(two.at("state"), "completed") << two.dump();
  // Every task of the second job is the first job's sample 1.
  EXPECT_EQ(two.at("cache_hits"), kPrompts) << two.dump();
  EXPECT_EQ(two.at("teacher_requests"), 0);

  const json stats = cluster.SimStats();
  EXPECT_EQ(stats.at("chat_requests_total"), 2 * kPrompts) << stats.dump();
  EXPECT_EQ(stats.at("chat_completions_repeated"), 0) << stats.dump();
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace distillery::testing
