#include "tests/integration/cluster.h"

#include <chrono>
#include <sstream>
#include <thread>

namespace distillery::testing {

using nlohmann::json;

Cluster::Cluster(std::string dir, ClusterOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
  args.insert(args.end(), options_.sim_args.begin(), options_.sim_args.end());
  sim_ = std::make_unique<Process>("teacher-sim", args, dir_);
  sim_address_ = sim_->WaitForAddress();
  teachers_ = dir_ + "/teachers.yaml";
  WriteFile(teachers_, "teachers:\n  - name: sim\n    api: openai\n"
                       "    base_url: http://" + sim_address_ +
                           "/v1\n    max_tokens_field: max_tokens\n"
                           "    max_concurrency: " +
                           std::to_string(options_.max_concurrency) + "\n" +
                           options_.teacher_extra);
  coordinator_address_ = "127.0.0.1:" + std::to_string(PickFreePort());
}

Cluster::~Cluster() {
  workers_.clear();
  coordinator_.reset();
  sim_.reset();
}

bool Cluster::StartCoordinator() {
  std::vector<std::string> args = {"--listen", coordinator_address_,
                                   "--data-dir", dir_ + "/data", "--teachers",
                                   teachers_};
  args.insert(args.end(), options_.coordinator_args.begin(),
              options_.coordinator_args.end());
  for (int attempt = 0; attempt < 50; ++attempt) {
    coordinator_ =
        std::make_unique<Process>("distillery-coordinator", args, dir_);
    if (coordinator_->WaitForAddress() == coordinator_address_) return true;
    coordinator_->Wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

void Cluster::StartWorker(int i, std::vector<std::string> extra_args) {
  if (workers_.size() <= static_cast<size_t>(i)) workers_.resize(i + 1);
  std::vector<std::string> args = {"--coordinator", coordinator_address_,
                                   "--teachers", teachers_, "--name",
                                   "w" + std::to_string(i)};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  workers_[i] = std::make_unique<Process>("distillery-worker", args, dir_);
}

CommandResult Cluster::Cli(std::vector<std::string> args,
                           int timeout_seconds) {
  args.insert(args.begin(), {"--coordinator", coordinator_address_});
  return RunCommand("distillery", args, dir_, timeout_seconds);
}

std::string Cluster::Submit(const std::string& file,
                            std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"submit", file, "--teacher", "sim",
                                   "--model", "sim-small"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  CommandResult r = Cli(args);
  std::string last;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  return r.exit_code == 0 ? last : "";
}

json Cluster::Status(const std::string& job) {
  CommandResult r = Cli({"status", job, "--json"}, 30);
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out);
}

json Cluster::WaitFor(const std::string& job,
                      const std::function<bool(const json&)>& done,
                      int timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::seconds(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    json s = Status(job);
    if (!s.is_null() && done(s)) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return nullptr;
}

json Cluster::SimStats() { return json::parse(HttpGet(sim_address_, "/stats")); }

std::string DistinctPrompts(int n, const std::string& tag) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    json row;
    row["prompt"] = tag + " prompt " + std::to_string(i);
    text += row.dump() + "\n";
  }
  return text;
}

}  // namespace distillery::testing
