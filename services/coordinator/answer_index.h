// AnswerIndex: which answers repeat earlier ones. Exact duplicates by
// content hash (whitespace-normalised text -> the first answer's request
// key): a duplicate is stored once, keeping its provenance but not its
// text. Near-duplicates by MinHash LSH buckets (band key -> the first
// answer in the bucket), when CoordinatorOptions::near_duplicates_at_commit
// is on: a new answer whose estimated Jaccard similarity with an earlier
// one in a shared bucket reaches kDefaultNearDuplicateThreshold gets
// near_duplicate_of. The index lives in the store; a commit in progress is
// overlaid (PendingAnswers), so the results of one report see each other
// as if stored.
// Not thread-safe: the Coordinator calls it under its lock.
#ifndef DISTILLERY_SERVICES_COORDINATOR_ANSWER_INDEX_H_
#define DISTILLERY_SERVICES_COORDINATOR_ANSWER_INDEX_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/store/store.h"

namespace distillery {

// The answers one commit adds, readable before the batch is stored.
struct PendingAnswers {
  explicit PendingAnswers(StoreBatch* b) : batch(b) {}
  StoreBatch* batch;
  std::map<std::string, size_t> answers;       // request key -> batch index
  std::map<std::string, std::string> content;  // hash -> request key
  std::map<std::string, std::string> lsh;      // band -> request key
};

class AnswerIndex {
 public:
  AnswerIndex(Store& store, bool near_duplicates)
      : store_(store), near_duplicates_(near_duplicates) {}

  // True when an answer to `request_key` is stored or pending.
  absl::StatusOr<bool> Answered(const std::string& request_key,
                                const PendingAnswers& pending);

  enum class Kind {
    kNew,
    kDuplicate,      // the same text as an earlier answer: duplicate_of is
                     // set and the text is not stored again
    kNearDuplicate,  // near_duplicate_of is set; stored in full
  };
  // Adds the new `answer` (its request_key set) to `pending`, marked as it
  // relates to earlier answers, and also under the key of `task`, the task
  // it answers (where exports read it, in task order).
  absl::StatusOr<Kind> Add(v1::Answer answer, const v1::Task& task,
                           PendingAnswers* pending);

 private:
  // Signs `answer`, marks it near_duplicate_of an earlier answer it shares a
  // bucket with (when similar enough), and claims the buckets still empty.
  absl::Status IndexNearDuplicates(v1::Answer* answer,
                                   PendingAnswers* pending);

  Store& store_;
  const bool near_duplicates_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_ANSWER_INDEX_H_
