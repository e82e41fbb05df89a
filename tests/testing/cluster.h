// Test support for integration tests: a teacher-sim, a coordinator and
// workers on loopback, each a real process, with the CLI to drive them.
// The Spawn* functions start one process the way every test does; Cluster
// puts the three together, its coordinator's address picked once so that a
// restarted coordinator listens where the workers and the CLI already look.
// Not thread-safe.
#ifndef DISTILLERY_TESTS_TESTING_CLUSTER_H_
#define DISTILLERY_TESTS_TESTING_CLUSTER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/testing/process.h"

namespace distillery::testing {

// teacher-sim on 127.0.0.1:0 with `args` beyond --listen, its logs in `dir`;
// `*address` is where it listens, "" when it did not come up.
std::unique_ptr<Process> SpawnTeacherSim(const std::string& dir,
                                         std::vector<std::string> args,
                                         std::string* address);
// The teachers.yaml entry of an OpenAI-API profile `name` served by the
// teacher-sim at `sim_address`; `extra` are more YAML lines of the profile
// (indented four spaces). Prefix "teachers:\n" to make a whole file.
std::string SimTeacherProfile(const std::string& sim_address,
                              const std::string& name = "sim",
                              const std::string& extra = "");
// distillery-coordinator on `listen` with its data in `data_dir` and
// `extra` flags, its logs in `dir`. WaitForAddress() on it says where.
std::unique_ptr<Process> SpawnCoordinator(const std::string& dir,
                                          const std::string& listen,
                                          const std::string& data_dir,
                                          const std::string& teachers,
                                          std::vector<std::string> extra = {});
// distillery-worker of the coordinator at `coordinator` with `extra` flags
// (--name among them, say), its logs in `dir`.
std::unique_ptr<Process> SpawnWorker(const std::string& dir,
                                     const std::string& coordinator,
                                     const std::string& teachers,
                                     std::vector<std::string> extra = {});
// `distillery --coordinator COORDINATOR args...` to completion.
CommandResult RunCli(const std::string& coordinator,
                     std::vector<std::string> args, const std::string& dir,
                     int timeout_seconds = 300);
// The last non-empty line of `text` (submit prints the job id last).
std::string LastLine(const std::string& text);

struct ClusterOptions {
  std::vector<std::string> sim_args;  // beyond --listen
  std::string teacher_extra;          // YAML lines for the "sim" profile
  int max_concurrency = 16;           // the profile's, cluster-wide
  std::vector<std::string> coordinator_args;  // beyond listen, data, teachers
  // More teachers.yaml profiles after "sim" (each starting "  - name: "),
  // given teacher-sim's address.
  std::function<std::string(const std::string& sim_address)> more_profiles;
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
  // Sends `sig` (SIGKILL, or SIGTERM for a graceful stop) and waits; returns
  // the exit code.
  int StopCoordinator(int sig);
  int StopWorker(int i, int sig);
  // SIGTERM to the workers, then the coordinator, each waited for; returns
  // their exit codes, workers first.
  std::vector<int> Terminate();
  const std::string& dir() const { return dir_; }
  Process& sim() { return *sim_; }
  Process& coordinator() { return *coordinator_; }
  Process& worker(int i) { return *workers_.at(i); }

  CommandResult Cli(std::vector<std::string> args, int timeout_seconds = 300);
  // Submits `file` to teacher "sim", model sim-small; returns the job id.
  std::string Submit(const std::string& file,
                     std::vector<std::string> extra_args = {});
  // The job's status, or null while the coordinator is down.
  nlohmann::json Status(const std::string& job);
  // Polls the job every `poll_ms` until `done(status)` holds; returns that
  // status, or null when `timeout_seconds` pass first.
  nlohmann::json WaitFor(const std::string& job,
                         const std::function<bool(const nlohmann::json&)>& done,
                         int timeout_seconds, int poll_ms = 50);
  // teacher-sim's GET /stats.
  nlohmann::json SimStats();

 private:
  std::string dir_, teachers_, sim_address_, coordinator_address_;
  ClusterOptions options_;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_CLUSTER_H_
