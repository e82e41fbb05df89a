#include "services/coordinator/scheduler.h"

#include <algorithm>

namespace distillery {

// ----------------------------------------------------------------- TaskQueue

bool TaskQueue::Enqueue(const v1::Task& task) {
  return queued_.insert({task.prompt_seq(), task.sample()}).second;
}

std::optional<v1::Task> TaskQueue::Pop() {
  while (!empty()) {
    std::deque<v1::Task>& from = returned_.empty() ? ready_ : returned_;
    v1::Task task = std::move(from.front());
    from.pop_front();
    const Key key{task.prompt_seq(), task.sample()};
    queued_.erase(key);
    if (settled_.erase(key) > 0) continue;
    return task;
  }
  return std::nullopt;
}

void TaskQueue::AddScanned(std::vector<v1::Task> pending, Position next,
                           bool end) {
  for (v1::Task& task : pending) {
    if (Enqueue(task)) ready_.push_back(std::move(task));
  }
  cursor_ = next;
  scanned_all_ = end;
}

void TaskQueue::PushBack(v1::Task task) {
  if (Enqueue(task)) returned_.push_back(std::move(task));
}

void TaskQueue::PushFront(v1::Task task) {
  if (Enqueue(task)) returned_.push_front(std::move(task));
}

void TaskQueue::Add(v1::Task task) {
  const Key key{task.prompt_seq(), task.sample()};
  if (!scanned_all_ && key >= Key{cursor_.seq, cursor_.sample}) return;
  PushBack(std::move(task));
}

void TaskQueue::Settled(int64_t seq, int sample) {
  if (queued_.count({seq, sample}) > 0) settled_.insert({seq, sample});
}

void TaskQueue::Rescan() {
  cursor_ = Position{};
  scanned_all_ = false;
  ready_.clear();
  settled_.clear();
  queued_.clear();
  for (const v1::Task& t : returned_) queued_.insert({t.prompt_seq(), t.sample()});
}

void TaskQueue::Clear() { *this = TaskQueue(); }

// ----------------------------------------------------------------- Scheduler

void Scheduler::AddLease(int64_t id, Lease lease) {
  const v1::Task& t = lease.task;
  holders_.Note(TaskId{t.job_id(), t.prompt_seq(), t.sample()},
                lease.worker_id);
  inflight_[t.request_key()] = id;
  leases_[id] = std::move(lease);
}

Scheduler::Lease* Scheduler::FindLease(int64_t id) {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : &it->second;
}

std::optional<Scheduler::Lease> Scheduler::EndLease(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  Lease lease = std::move(it->second);
  leases_.erase(it);
  if (auto key = inflight_.find(lease.task.request_key());
      key != inflight_.end() && key->second == id) {
    inflight_.erase(key);
  }
  return lease;
}

bool Scheduler::Renew(int64_t id, const std::string& worker_id,
                      TimePoint deadline) {
  Lease* lease = FindLease(id);
  if (lease == nullptr || lease->worker_id != worker_id) return false;
  lease->deadline = deadline;
  return true;
}

void Scheduler::Reassign(int64_t id, const std::string& worker_id,
                         TimePoint deadline) {
  Lease* lease = FindLease(id);
  if (lease == nullptr) return;
  const v1::Task& t = lease->task;
  holders_.Note(TaskId{t.job_id(), t.prompt_seq(), t.sample()}, worker_id);
  lease->worker_id = worker_id;
  lease->deadline = deadline;
}

std::vector<int64_t> Scheduler::ExpiredBy(TimePoint now) const {
  std::vector<int64_t> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline <= now) expired.push_back(id);
  }
  return expired;
}

std::vector<int64_t> Scheduler::LeasesOfJob(const std::string& job_id) const {
  std::vector<int64_t> ids;
  for (const auto& [id, lease] : leases_) {
    if (lease.task.job_id() == job_id) ids.push_back(id);
  }
  return ids;
}

void Scheduler::CommitWritten(const std::string& request_key) {
  auto it = committing_.find(request_key);
  if (it != committing_.end() && --it->second <= 0) committing_.erase(it);
}

const Scheduler::Lease* Scheduler::LeaseForKey(
    const std::string& request_key) const {
  auto key = inflight_.find(request_key);
  if (key == inflight_.end()) return nullptr;
  auto it = leases_.find(key->second);
  return it == leases_.end() ? nullptr : &it->second;
}

void Scheduler::Wait(v1::Task task) {
  const std::string key = task.request_key();
  waiters_[key].push_back(std::move(task));
}

void Scheduler::Settled(const v1::Task& task) {
  if (auto q = queues_.find(task.job_id()); q != queues_.end()) {
    q->second.Settled(task.prompt_seq(), task.sample());
  }
  if (auto w = waiters_.find(task.request_key()); w != waiters_.end()) {
    std::vector<v1::Task>& tasks = w->second;
    tasks.erase(std::remove_if(tasks.begin(), tasks.end(),
                               [&](const v1::Task& t) {
                                 return t.job_id() == task.job_id() &&
                                        t.prompt_seq() == task.prompt_seq() &&
                                        t.sample() == task.sample();
                               }),
                tasks.end());
    if (tasks.empty()) waiters_.erase(w);
  }
}

std::vector<v1::Task> Scheduler::TakeWaiters(const std::string& request_key) {
  auto it = waiters_.find(request_key);
  if (it == waiters_.end()) return {};
  std::vector<v1::Task> waiters = std::move(it->second);
  waiters_.erase(it);
  return waiters;
}

bool Scheduler::HeldBy(const TaskId& task, int64_t lease_id,
                       const std::string& request_key,
                       const std::string& worker_id) const {
  auto holds = [&](const Lease& lease) {
    return lease.worker_id == worker_id &&
           lease.task.job_id() == std::get<0>(task) &&
           lease.task.prompt_seq() == std::get<1>(task) &&
           lease.task.sample() == std::get<2>(task);
  };
  if (auto it = leases_.find(lease_id); it != leases_.end() && holds(it->second)) {
    return true;
  }
  if (const Lease* by_key = LeaseForKey(request_key);
      by_key != nullptr && holds(*by_key)) {
    return true;
  }
  return holders_.Held(task, worker_id);
}

}  // namespace distillery
