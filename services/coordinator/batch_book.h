// BatchBook: the in-memory half of the batch path, with no I/O in it. It
// holds each open batch's record as last stored (v1::BatchRecord: its tasks,
// provider ids, state), which task lease answers which custom_id, the step
// a worker is doing for it (create, poll, cancel) held like a lease, and
// per teacher what the provider's queue allows and how long its batches
// take. Ended batches keep only their summaries, for status.
//
// The Coordinator (coordinator_batch.cc) stores every record change before
// it changes the book, and rebuilds the book from the store after a restart.
// Not thread-safe: the Coordinator calls it under its lock.
#ifndef DISTILLERY_SERVICES_COORDINATOR_BATCH_BOOK_H_
#define DISTILLERY_SERVICES_COORDINATOR_BATCH_BOOK_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "distillery/v1/types.pb.h"
#include "distillery/v1/worker_service.pb.h"

namespace distillery {

struct OpenBatch {
  v1::BatchRecord record;
  std::map<std::string, int> index;       // custom_id -> record.tasks index
  std::map<std::string, int64_t> leases;  // custom_id -> its task's lease
  // The step a worker is doing for it; step_lease 0 when none.
  int64_t step_lease = 0;
  std::string step_worker;
  TimePoint step_deadline;
  v1::BatchStepKind step_kind = v1::BATCH_STEP_UNSPECIFIED;
  // No create before this (after a restart, a create asked for before it
  // may still be under way: its worker reports it first).
  TimePoint not_before;
};

class BatchBook {
 public:
  struct TeacherBatches {
    // The provider's queue was full (an enqueued-token limit, or a 429 on
    // create): no new batch before this, unless one of its batches ends.
    TimePoint queue_full_until;
    // Mean wall time from create to end of its batches (seconds), and how
    // many were seen: what `auto` expects a new batch to take.
    double mean_duration_s = 0;
    int64_t observed = 0;
    int64_t requests_by_outcome[4] = {0, 0, 0, 0};  // see Outcome
  };
  enum Outcome { kSucceeded = 0, kErrored = 1, kNotRun = 2, kDead = 3 };

  // The pseudo-holder of a batch's task leases: no worker holds them.
  static std::string Holder(const std::string& batch_id) {
    return "batch:" + batch_id;
  }

  OpenBatch& Add(v1::BatchRecord record);
  OpenBatch* Find(const std::string& batch_id);
  // The batch whose step holds `lease_id`, or null.
  OpenBatch* ByStepLease(int64_t lease_id);
  // Moves a batch out of the open set; its summary stays for status.
  void End(const std::string& batch_id, const std::string& job_id,
           v1::BatchSummary summary, const std::string& teacher = "");
  void AddEnded(const std::string& job_id, v1::BatchSummary summary,
                const std::string& teacher = "");
  std::map<std::string, OpenBatch>& open() { return open_; }
  // The job's batches, ended and open, oldest first.
  std::vector<v1::BatchSummary> SummariesOf(const std::string& job_id) const;
  int64_t OpenTasksOf(const std::string& job_id) const;
  // Every batch, ended and open, by teacher: (teacher, summary).
  std::vector<std::pair<std::string, v1::BatchSummary>> AllByTeacher() const;
  bool AnyOpenFor(const std::string& teacher) const;

  // A step held by `worker_id` lasts until `deadline`; false when it holds
  // none with that lease.
  bool RenewStep(int64_t lease_id, const std::string& worker_id,
                 TimePoint deadline);
  void EndStep(OpenBatch& batch) {
    batch.step_lease = 0;
    batch.step_worker.clear();
    batch.step_kind = v1::BATCH_STEP_UNSPECIFIED;
  }

  TeacherBatches& Teacher(const std::string& teacher) {
    return teachers_[teacher];
  }
  const std::map<std::string, TeacherBatches>& teachers() const {
    return teachers_;
  }
  // A batch of `teacher` ran `seconds` from create to end.
  void ObserveDuration(const std::string& teacher, double seconds);

 private:
  std::map<std::string, OpenBatch> open_;
  std::map<std::string, std::vector<v1::BatchSummary>> ended_;  // by job
  std::map<std::string, std::string> teacher_of_job_;  // of ended batches
  std::map<std::string, TeacherBatches> teachers_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_BATCH_BOOK_H_
