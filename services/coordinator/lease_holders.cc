#include "services/coordinator/lease_holders.h"

#include <algorithm>

namespace distillery {

void LeaseHolders::Note(const TaskId& task, const std::string& worker_id) {
  auto [it, added] = holders_.try_emplace(task);
  if (added) {
    it->second.generation = next_generation_++;
    order_.emplace_back(task, it->second.generation);
  }
  std::vector<std::string>& workers = it->second.workers;
  workers.erase(std::remove(workers.begin(), workers.end(), worker_id),
                workers.end());
  workers.push_back(worker_id);
  if (workers.size() > kPerTask) workers.erase(workers.begin());
  // Order entries of settled tasks linger until they reach the front, so
  // the queue, not the map, is what the bound holds to.
  while (order_.size() > max_tasks_) {
    const auto& [oldest, generation] = order_.front();
    if (auto o = holders_.find(oldest);
        o != holders_.end() && o->second.generation == generation) {
      holders_.erase(o);
    }
    order_.pop_front();
  }
}

bool LeaseHolders::Held(const TaskId& task,
                        const std::string& worker_id) const {
  auto it = holders_.find(task);
  if (it == holders_.end()) return false;
  const std::vector<std::string>& workers = it->second.workers;
  return std::find(workers.begin(), workers.end(), worker_id) != workers.end();
}

}  // namespace distillery
