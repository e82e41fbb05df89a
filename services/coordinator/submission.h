// Submission: one prompt set streaming in, from the first line to the job
// that scheduling sees. Owns parsing and checking each line (the prompt-size
// limit, nesting, duplicate ids), the request key of each task
// (common/job/task_request.h) and writing prompts and tasks in bounded
// batches; the Coordinator admits the finished job. ValidateJobSpec is the
// one check of a job's spec.
#ifndef DISTILLERY_SERVICES_COORDINATOR_SUBMISSION_H_
#define DISTILLERY_SERVICES_COORDINATOR_SUBMISSION_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/teachers.h"
#include "common/store/store.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

class Coordinator;

// OK when `spec` names a known teacher and a model and its samples (at most
// `max_samples`), parameters, budget and system prompt (UTF-8, at most
// `max_prompt_bytes`: each task carries it with its line) are valid; else
// INVALID_ARGUMENT naming the field. With ParsePromptLine's check of each
// line, the one check of a prompt's size.
absl::Status ValidateJobSpec(const v1::JobSpec& spec,
                             const std::vector<TeacherProfile>& teachers,
                             int max_samples, size_t max_prompt_bytes);

// The most alternatives per token --logprobs may ask for (OpenAI's limit).
inline constexpr int kMaxTopLogprobs = 20;

// Why `profile` cannot give logprobs for `model` (Anthropic's API; OpenAI's
// and DeepSeek's reasoning models), or nullopt when it can: a job asking
// for them is refused at submit, before anything is paid for.
std::optional<std::string> NoLogprobsReason(const TeacherProfile& profile,
                                            const std::string& model);

// "job-000042" for job number 42.
std::string JobIdFor(int64_t n);

// Deletes the duplicate-id scratch of every submission (a crash left them).
absl::Status DeleteAllSubmissionIds(Store& store);

// One prompt set streaming in. Prompts are written to the store under a job
// in state SUBMITTING, invisible to scheduling and listing, so memory stays
// bounded; Commit makes the job visible in one write, Abort (or a
// coordinator restart) removes every trace of it. Not thread-safe: one per
// client stream.
class Submission {
 public:
  ~Submission();  // aborts unless committed
  // Parses and stores the next lines of the prompt file.
  absl::Status AddLines(const google::protobuf::RepeatedPtrField<std::string>&
                            lines);
  absl::StatusOr<v1::Job> Commit();
  void Abort();
  const std::string& job_id() const { return job_.id(); }

 private:
  friend class Coordinator;
  Submission(Coordinator* coordinator, Store& store,
             const TeacherProfile& teacher, v1::Job job, int64_t job_number)
      : coordinator_(coordinator), store_(store), teacher_(teacher),
        job_(std::move(job)), job_number_(job_number) {}
  absl::Status Flush();
  // DuplicatePromptIdError when an earlier line has `prompt`'s id; else
  // notes the id. Ids seen are in the store's scratch space (flushed with
  // the prompts), so memory holds only those of the batch not yet written.
  absl::Status CheckUniqueId(const v1::Prompt& prompt);
  void DeleteIds();

  Coordinator* coordinator_;  // admits the job on Commit
  Store& store_;
  const TeacherProfile& teacher_;  // the coordinator's, which outlives it
  v1::Job job_;
  const int64_t job_number_;  // the n of job_'s id, given back on Abort
  int64_t line_number_ = 0;
  int64_t next_seq_ = 0;
  StoreBatch pending_;
  int pending_prompts_ = 0;
  std::map<std::string, int64_t> pending_ids_;  // scratch key -> line
  bool finished_ = false;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_SUBMISSION_H_
