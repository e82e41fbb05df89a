// Store: the coordinator's durable state: jobs, prompts, tasks, answers and
// the answer-content index, and batch records. Every state change is one StoreBatch applied
// atomically, so a crash never leaves an answer without its task update or
// counters that disagree with the tasks.
//
// Keys: tasks are ordered by (job, prompt sequence, sample), which is the
// submission order exports follow; answers are keyed by request key, which
// makes the answer store also the pay-once cache. An answer committed for a
// task is also kept under that task's key, as exports write it (without its
// raw body or signature), so that an export reads answers in key order
// instead of at random (ScanTaskRecords).
#ifndef DISTILLERY_COMMON_STORE_STORE_H_
#define DISTILLERY_COMMON_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "distillery/v1/types.pb.h"

namespace distillery {

// An answer of a StoreBatch, also stored under the key of the task it was
// committed for.
struct TaskAnswerRef {
  std::string job_id;
  int64_t prompt_seq = 0;
  int32_t sample = 0;
  size_t answer = 0;  // index in StoreBatch::answers
};

// A set of writes applied all together or not at all.
struct StoreBatch {
  std::vector<v1::Job> jobs;
  std::vector<v1::Prompt> prompts;  // keyed by (job_id, seq)
  std::vector<std::pair<std::string, int64_t>> prompt_keys;
  std::vector<v1::Task> tasks;
  std::vector<v1::Answer> answers;  // keyed by answer.request_key()
  std::vector<TaskAnswerRef> task_answers;
  // (content hash, request key of the first answer with that content)
  std::vector<std::pair<std::string, std::string>> content;
  // (LSH band key, request key of the first answer in that bucket)
  std::vector<std::pair<std::string, std::string>> lsh;
  // Scratch entries (key, value): working state of one operation, such as
  // an export's near-duplicate index, deleted when it ends.
  std::vector<std::pair<std::string, std::string>> scratch;
  // Batch records, keyed by their summary's id (the batch path).
  std::vector<v1::BatchRecord> batches;

  void AddPrompt(const std::string& job_id, int64_t seq, v1::Prompt prompt) {
    prompt_keys.emplace_back(job_id, seq);
    prompts.push_back(std::move(prompt));
  }
  bool empty() const {
    return jobs.empty() && prompts.empty() && tasks.empty() &&
           answers.empty() && task_answers.empty() && content.empty() &&
           lsh.empty() &&
           scratch.empty() && batches.empty();
  }
};

// A task as ScanTaskRecords gives it: parsed, and as stored, with the stored
// bytes of its prompt and of its answer's copy. The views are valid during
// the call only.
struct StoredTask {
  const v1::Task& task;
  std::string_view task_bytes;             // a serialised v1::Task
  std::optional<std::string_view> prompt;  // a serialised v1::Prompt
  std::optional<std::string_view> answer;  // a serialised v1::Answer
};

// A few figures about the storage engine, for metrics. -1: unknown.
struct StoreStats {
  int64_t sst_bytes = -1;               // on-disk table files, all families
  int64_t live_data_bytes = -1;         // estimate of the live data
  int64_t memtable_bytes = -1;          // in-memory write buffers
  int64_t block_cache_bytes = -1;       // the block cache's use (one cache)
  int64_t table_readers_bytes = -1;     // open tables' memory outside it
  int64_t pending_compaction_bytes = -1;
  int64_t delayed_write_rate = -1;      // bytes/s while writes are slowed, else 0
  int64_t write_stopped = -1;           // 1 while writes are stopped
  int64_t estimated_keys = -1;
};

// Thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  virtual absl::Status Apply(const StoreBatch& batch) = 0;

  virtual absl::StatusOr<std::optional<v1::Job>> GetJob(
      const std::string& job_id) = 0;
  // Every job, in id order.
  virtual absl::StatusOr<std::vector<v1::Job>> ListJobs() = 0;
  // Removes a job with all its prompts and tasks, and its tasks' copies of
  // their answers (the answers stay: other jobs may share them).
  virtual absl::Status DeleteJob(const std::string& job_id) = 0;

  virtual absl::StatusOr<std::optional<v1::Prompt>> GetPrompt(
      const std::string& job_id, int64_t seq) = 0;
  virtual absl::StatusOr<std::optional<v1::Task>> GetTask(
      const std::string& job_id, int64_t seq, int sample) = 0;
  // Calls `fn` on the job's tasks in order, starting at (seq, sample), until
  // `fn` returns false or the tasks end.
  virtual absl::Status ScanTasks(
      const std::string& job_id, int64_t from_seq, int from_sample,
      const std::function<bool(const v1::Task&)>& fn) = 0;

  virtual absl::StatusOr<std::optional<v1::Answer>> GetAnswer(
      const std::string& request_key) = 0;
  // Several answers (and prompts of one job) in one call, in the order
  // asked; a missing one is nullopt. One RocksDB MultiGet: cheaper than a
  // Get each when the keys are spread over the store, as an export's are.
  // The answers come without raw_body: bulk reads are an export's, and no
  // export writes the teacher's raw response (GetAnswer has it), which is
  // often the largest field.
  virtual absl::StatusOr<std::vector<std::optional<v1::Answer>>> GetAnswers(
      const std::vector<std::string>& request_keys) = 0;
  // Calls `fn` on the job's tasks in order, each with the stored bytes of
  // its prompt and of the answer committed for it (the copy kept under the
  // task's key, as exports write it: no raw_body, no minhash), until `fn`
  // returns false or the tasks end. One pass over the three families in key
  // order: what an export reads, each block once, nothing parsed but the
  // task. A task whose answer was not committed for it (a cache hit, or
  // data written before the copies existed) has no answer bytes: read it by
  // request key.
  virtual absl::Status ScanTaskRecords(
      const std::string& job_id,
      const std::function<bool(const StoredTask&)>& fn) = 0;
  virtual absl::StatusOr<std::vector<std::optional<v1::Prompt>>> GetPrompts(
      const std::string& job_id, const std::vector<int64_t>& seqs) = 0;
  virtual absl::StatusOr<bool> HasAnswer(const std::string& request_key) = 0;
  // The request key of the first answer with this content hash, if any.
  virtual absl::StatusOr<std::optional<std::string>> FindContent(
      const std::string& content_hash) = 0;

  // The request key of the first answer in this LSH bucket (a band key from
  // dedup/minhash.h), if any.
  virtual absl::StatusOr<std::optional<std::string>> FindLsh(
      const std::string& band_key) = 0;

  // Scratch space, for state too large for memory that outlives no
  // operation. Keys are chosen by the caller (prefix them with an id).
  virtual absl::StatusOr<std::optional<std::string>> FindScratch(
      const std::string& key) = 0;
  // Deletes scratch keys in [begin, end).
  virtual absl::Status DeleteScratch(const std::string& begin,
                                     const std::string& end) = 0;

  // Every batch record, in id order.
  virtual absl::StatusOr<std::vector<v1::BatchRecord>> ListBatches() = 0;

  // A durable counter (e.g. for job ids): returns the next value, from 1.
  virtual absl::StatusOr<int64_t> NextSequence(const std::string& name) = 0;

  // Engine figures for monitoring; cheap enough to call on every scrape.
  virtual StoreStats Stats() { return StoreStats(); }
};

struct StoreOptions {
  // Apply returns only once the batch is in the write-ahead log on disk
  // (fsync): an acknowledged commit survives a power loss, not only a
  // process crash. Off, the log is in the OS page cache at return: a crash
  // of the process loses nothing, a power loss may lose the last writes
  // (never half a batch). Costs one fsync per commit (README "Failure
  // behaviour" has the figure).
  bool sync_writes = false;
};

// Opens (creating if needed) the RocksDB store in `dir`.
absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const std::string& dir, const StoreOptions& options = {});

}  // namespace distillery

#endif  // DISTILLERY_COMMON_STORE_STORE_H_
