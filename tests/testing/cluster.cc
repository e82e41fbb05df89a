#include "tests/testing/cluster.h"

#include <chrono>
#include <sstream>
#include <thread>

namespace distillery::testing {

using nlohmann::json;

std::unique_ptr<Process> SpawnTeacherSim(const std::string& dir,
                                         std::vector<std::string> args,
                                         std::string* address) {
  args.insert(args.begin(), {"--listen", "127.0.0.1:0"});
  auto sim = std::make_unique<Process>("teacher-sim", std::move(args), dir);
  *address = sim->WaitForAddress();
  return sim;
}

std::string SimTeacherProfile(const std::string& sim_address,
                              const std::string& name,
                              const std::string& extra) {
  return "  - name: " + name + "\n    api: openai\n    base_url: http://" +
         sim_address + "/v1\n    max_tokens_field: max_tokens\n" + extra;
}

std::unique_ptr<Process> SpawnCoordinator(const std::string& dir,
                                          const std::string& listen,
                                          const std::string& data_dir,
                                          const std::string& teachers,
                                          std::vector<std::string> extra) {
  std::vector<std::string> args = {"--listen", listen,       "--data-dir",
                                   data_dir,   "--teachers", teachers};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>("distillery-coordinator", std::move(args),
                                   dir);
}

std::unique_ptr<Process> SpawnWorker(const std::string& dir,
                                     const std::string& coordinator,
                                     const std::string& teachers,
                                     std::vector<std::string> extra) {
  std::vector<std::string> args = {"--coordinator", coordinator, "--teachers",
                                   teachers};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Process>("distillery-worker", std::move(args), dir);
}

CommandResult RunCli(const std::string& coordinator,
                     std::vector<std::string> args, const std::string& dir,
                     int timeout_seconds) {
  args.insert(args.begin(), {"--coordinator", coordinator});
  return RunCommand("distillery", args, dir, timeout_seconds);
}

std::string LastLine(const std::string& text) {
  std::string last;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  return last;
}

Cluster::Cluster(std::string dir, ClusterOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  sim_ = SpawnTeacherSim(dir_, options_.sim_args, &sim_address_);
  teachers_ = dir_ + "/teachers.yaml";
  WriteFile(teachers_,
            "teachers:\n" +
                SimTeacherProfile(sim_address_, "sim",
                                  "    max_concurrency: " +
                                      std::to_string(options_.max_concurrency) +
                                      "\n" + options_.teacher_extra) +
                (options_.more_profiles ? options_.more_profiles(sim_address_)
                                        : std::string()));
  coordinator_address_ = "127.0.0.1:" + std::to_string(PickFreePort());
}

Cluster::~Cluster() {
  workers_.clear();
  coordinator_.reset();
  sim_.reset();
}

bool Cluster::StartCoordinator() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    coordinator_ = SpawnCoordinator(dir_, coordinator_address_, dir_ + "/data",
                                    teachers_, options_.coordinator_args);
    if (coordinator_->WaitForAddress() == coordinator_address_) return true;
    coordinator_->Wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

void Cluster::StartWorker(int i, std::vector<std::string> extra_args) {
  if (workers_.size() <= static_cast<size_t>(i)) workers_.resize(i + 1);
  extra_args.insert(extra_args.begin(), {"--name", "w" + std::to_string(i)});
  workers_[i] =
      SpawnWorker(dir_, coordinator_address_, teachers_, std::move(extra_args));
}

int Cluster::StopCoordinator(int sig) {
  coordinator_->Signal(sig);
  return coordinator_->Wait();
}

int Cluster::StopWorker(int i, int sig) {
  workers_.at(i)->Signal(sig);
  return workers_.at(i)->Wait();
}

std::vector<int> Cluster::Terminate() {
  std::vector<int> codes;
  for (auto& w : workers_) {
    if (w) w->Signal(SIGTERM);
  }
  for (auto& w : workers_) {
    if (w) codes.push_back(w->Wait());
  }
  coordinator_->Signal(SIGTERM);
  codes.push_back(coordinator_->Wait());
  return codes;
}

CommandResult Cluster::Cli(std::vector<std::string> args, int timeout_seconds) {
  return RunCli(coordinator_address_, std::move(args), dir_, timeout_seconds);
}

std::string Cluster::Submit(const std::string& file,
                            std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"submit", file,      "--teacher",
                                   "sim",    "--model", "sim-small"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  CommandResult r = Cli(args);
  return r.exit_code == 0 ? LastLine(r.out) : "";
}

json Cluster::Status(const std::string& job) {
  CommandResult r = Cli({"status", job, "--json"}, 30);
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out);
}

json Cluster::WaitFor(const std::string& job,
                      const std::function<bool(const json&)>& done,
                      int timeout_seconds, int poll_ms) {
  json last;
  if (WaitUntil(
          [&] {
            last = Status(job);
            return !last.is_null() && done(last);
          },
          timeout_seconds, poll_ms)) {
    return last;
  }
  return nullptr;
}

json Cluster::SimStats() {
  return json::parse(HttpGet(sim_address_, "/stats"));
}

}  // namespace distillery::testing
