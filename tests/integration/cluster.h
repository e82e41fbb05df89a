// Test support for integration tests: a teacher-sim, a coordinator and
// workers on loopback, each a real process, with the CLI to drive them.
// The coordinator's address is picked once, so a restarted coordinator
// listens where the workers and the CLI already look.
#ifndef DISTILLERY_TESTS_INTEGRATION_CLUSTER_H_
#define DISTILLERY_TESTS_INTEGRATION_CLUSTER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace distillery::testing {

struct ClusterOptions {
  std::vector<std::string> sim_args;      // beyond --listen
  std::string teacher_extra;              // YAML lines for the "sim" profile
  int max_concurrency = 16;               // the profile's, cluster-wide
  std::vector<std::string> coordinator_args;  // beyond listen, data, teachers
};

class Cluster {
 public:
  Cluster(std::string dir, ClusterOptions options);
  ~Cluster();  // SIGKILLs what still runs

  // Starts (or restarts, on the same data dir and address) the coordinator;
  // false when it does not come up there, retrying while the port is held
  // by a process just killed.
  bool StartCoordinator();
  void StartWorker(int i, std::vector<std::string> extra_args = {});
  Process& coordinator() { return *coordinator_; }
  Process& worker(int i) { return *workers_.at(i); }

  CommandResult Cli(std::vector<std::string> args, int timeout_seconds = 300);
  // Submits `file` to teacher "sim", model sim-small; returns the job id.
  std::string Submit(const std::string& file,
                     std::vector<std::string> extra_args = {});
  // The job's status, or null while the coordinator is down.
  nlohmann::json Status(const std::string& job);
  // Polls the job until `done(status)` holds; returns that status, or null
  // when `timeout_seconds` pass first.
  nlohmann::json WaitFor(const std::string& job,
                         const std::function<bool(const nlohmann::json&)>& done,
                         int timeout_seconds);
  // teacher-sim's GET /stats.
  nlohmann::json SimStats();

 private:
  std::string dir_, teachers_, sim_address_, coordinator_address_;
  ClusterOptions options_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

// `n` distinct prompts, so that each answer is paid for once.
std::string DistinctPrompts(int n, const std::string& tag);

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_INTEGRATION_CLUSTER_H_
