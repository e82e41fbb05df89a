// Scheduler: the in-memory half of leasing, with no I/O in it. It owns
//  - each running job's TaskQueue: a cursor into the job's stored tasks,
//    the pending tasks read from the store and not yet leased, and the
//    tasks to hand out again (expired, abandoned, put back);
//  - the lease table: who holds which task until when, and the cost it
//    reserves;
//  - the request keys being answered now, and the tasks waiting for those
//    answers (a key is never sent twice at once);
//  - the recent holders of each task (LeaseHolders).
// The Coordinator reads the store (tasks to queue, answers, prompts) and
// hands the results in; this is where a lease starts, is renewed, expires
// and ends. Not thread-safe: the Coordinator calls it under its lock.
#ifndef DISTILLERY_SERVICES_COORDINATOR_SCHEDULER_H_
#define DISTILLERY_SERVICES_COORDINATOR_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/base/clock.h"
#include "services/coordinator/lease_holders.h"
#include "distillery/v1/types.pb.h"

namespace distillery {

// One job's tasks waiting to be leased. Tasks come from store scans (in
// submission order, from a cursor) and from leases that ended without a
// result; returned tasks go first. A task settled while queued (a late
// result, the cache) is skipped when reached, so leasing never reads a
// task again to see whether it is still pending; a task queued twice (a
// rescan after retry) is handed out once.
class TaskQueue {
 public:
  struct Position {
    int64_t seq = 0;
    int sample = 0;
  };

  // The next task to lease, or nullopt when none is queued (then
  // NeedsScan() says whether the store has more).
  std::optional<v1::Task> Pop();
  // True when nothing is queued and the store may hold more tasks.
  bool NeedsScan() const { return empty() && !scanned_all_; }
  Position cursor() const { return cursor_; }
  // The pending tasks a scan from cursor() found; `next` is where the next
  // scan starts, `end` that the scan reached the job's last task.
  void AddScanned(std::vector<v1::Task> pending, Position next, bool end);
  // A task to hand out again: after the others returned (PushBack), or
  // before everything (PushFront: a candidate put back untouched).
  void PushBack(v1::Task task);
  void PushFront(v1::Task task);
  // A task created after submission (adaptive sampling's next sample):
  // queued now, unless a scan still to come reads it from the store.
  void Add(v1::Task task);
  // The task settled: if it is queued, it is skipped.
  void Settled(int64_t seq, int sample);
  // Reads the job again from its first task (after a retry turned failed
  // tasks pending): what was read goes, what was returned stays, and no
  // queued task is skipped any more (a failed one is pending again; a done
  // one is found answered when leased).
  void Rescan();
  void Clear();

 private:
  using Key = std::pair<int64_t, int>;
  bool empty() const { return ready_.empty() && returned_.empty(); }
  bool Enqueue(const v1::Task& task);

  Position cursor_;
  bool scanned_all_ = false;
  std::deque<v1::Task> ready_;     // read from the store, not yet leased
  std::deque<v1::Task> returned_;  // to hand out again, first
  std::set<Key> queued_;           // what ready_ and returned_ hold
  std::set<Key> settled_;          // queued, but settled since
};

class Scheduler {
 public:
  struct Lease {
    std::string worker_id;
    v1::Task task;
    TimePoint deadline;
    bool reserves = false;          // counted in the job's spend reservations
    int64_t reserved_nano_usd = 0;  // the task's most cost
  };

  explicit Scheduler(size_t remembered_holders)
      : holders_(remembered_holders) {}

  // --- Queues ---
  TaskQueue& Queue(const std::string& job_id) { return queues_[job_id]; }
  void DropQueue(const std::string& job_id) { queues_.erase(job_id); }

  // --- Leases ---
  int64_t NextLeaseId() { return next_lease_id_++; }
  // Lease ids from before a restart must never be handed out again.
  void LeaseIdsFrom(int64_t first) {
    next_lease_id_ = std::max(next_lease_id_, first);
  }
  // Records lease `id`: its holder, deadline, and its key in flight.
  void AddLease(int64_t id, Lease lease);
  Lease* FindLease(int64_t id);
  // Removes lease `id` and its key in flight; nullopt when unknown.
  std::optional<Lease> EndLease(int64_t id);
  // Moves a lease's deadline; false when `worker_id` does not hold it.
  bool Renew(int64_t id, const std::string& worker_id, TimePoint deadline);
  // Changes a lease's holder (a worker registered again under a new id).
  void Reassign(int64_t id, const std::string& worker_id, TimePoint deadline);
  std::vector<int64_t> ExpiredBy(TimePoint now) const;
  std::vector<int64_t> LeasesOfJob(const std::string& job_id) const;
  const std::map<int64_t, Lease>& leases() const { return leases_; }

  // --- Keys in flight ---
  // True while a lease answers `request_key`, or while a commit storing
  // its answer is being written (Committing).
  bool InFlight(const std::string& request_key) const {
    return inflight_.count(request_key) > 0 || committing_.count(request_key) > 0;
  }
  // A commit that settles `request_key` is being written outside the
  // coordinator's lock: the key stays in flight until CommitWritten, so
  // that no task with the same key is sent meanwhile (it waits).
  void Committing(const std::string& request_key) { ++committing_[request_key]; }
  void CommitWritten(const std::string& request_key);
  // The lease answering `request_key`, if any.
  const Lease* LeaseForKey(const std::string& request_key) const;
  // `task` waits for the answer to its key, which is in flight.
  void Wait(v1::Task task);
  // The task settled (a result committed): a queued or waiting copy of it
  // is never handed out.
  void Settled(const v1::Task& task);
  std::vector<v1::Task> TakeWaiters(const std::string& request_key);

  // --- Holders ---
  // True when `worker_id` holds the task now (by `lease_id` or by the
  // task's key) or held it recently.
  bool HeldBy(const TaskId& task, int64_t lease_id,
              const std::string& request_key,
              const std::string& worker_id) const;
  LeaseHolders& holders() { return holders_; }

 private:
  std::map<std::string, TaskQueue> queues_;
  std::map<int64_t, Lease> leases_;
  int64_t next_lease_id_ = 1;
  std::map<std::string, int64_t> inflight_;  // request key -> lease id
  std::map<std::string, int> committing_;     // request key -> commits
  std::map<std::string, std::vector<v1::Task>> waiters_;
  LeaseHolders holders_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_SCHEDULER_H_
