// LeaseHolders: which workers held each task's lease recently. A result is
// used only from a worker that holds or recently held its task (the worker
// token is shared by all workers, and would otherwise let any holder write
// answers into any pending task), so a late result, after the lease expired
// or went to another worker, is still taken from the worker that paid for
// it. Memory is bounded: at most kPerTask workers per task and
// `max_tasks` tasks, the oldest forgotten first (about 100 bytes each).
// Not thread-safe: the Coordinator calls it under its lock.
#ifndef DISTILLERY_SERVICES_COORDINATOR_LEASE_HOLDERS_H_
#define DISTILLERY_SERVICES_COORDINATOR_LEASE_HOLDERS_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace distillery {

// A task's identity: job id, prompt sequence, sample.
using TaskId = std::tuple<std::string, int64_t, int>;

class LeaseHolders {
 public:
  static constexpr size_t kPerTask = 4;

  explicit LeaseHolders(size_t max_tasks) : max_tasks_(max_tasks) {}

  // Remembers `worker_id` as the task's newest holder.
  void Note(const TaskId& task, const std::string& worker_id);
  // True when `worker_id` is among the task's remembered holders.
  bool Held(const TaskId& task, const std::string& worker_id) const;
  // Forgets a settled task's holders.
  void Forget(const TaskId& task) { holders_.erase(task); }

 private:
  // An entry's generation tells whether a queued order entry is still its
  // own (a forgotten and re-added task is queued again under a new one).
  struct Holders {
    std::vector<std::string> workers;  // newest last
    uint64_t generation = 0;
  };

  const size_t max_tasks_;
  std::map<TaskId, Holders> holders_;
  // The order tasks entered, to forget the oldest beyond max_tasks_.
  std::deque<std::pair<TaskId, uint64_t>> order_;
  uint64_t next_generation_ = 1;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_LEASE_HOLDERS_H_
