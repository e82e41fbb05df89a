// The Coordinator's verification and adaptive sampling, a step of the commit
// path (CommitResultLocked, CompleteFromCacheLocked): each answer of a job
// with --verify is checked against its prompt's reference in the same store
// batch that settles its task, and with --until-correct a wrong answer adds
// the prompt's next sample to that batch. Nothing here is kept in memory
// between commits: a prompt's progress is read from its tasks (at most
// max_samples of them, adjacent in the store), so a restart resumes each
// prompt exactly where its stored tasks left it.
//
// How many samples: a prompt starts with until_correct tasks (K). Each wrong
// answer asks for K - verified - pending more, up to max_samples (N) in all,
// so at most K requests of a prompt are in flight and none is sent once it
// has K right answers: a prompt answered right at once costs K requests.
// Sample k is an ordinary task (seed + k, its own request key), leased,
// cached and committed like any other. A prompt without a reference stops
// at its first samples (nothing could verify more), and a dead letter adds
// no sample (a request the teacher refused max_attempts times is not
// likely to pass with another seed).
#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/job/task_request.h"
#include "common/metrics/metrics.h"
#include "services/coordinator/coordinator.h"

namespace distillery {
namespace {

// The most of an extracted answer kept with its task: it is for humans and
// exports, and an "answer is" phrase of a hostile answer can run for
// megabytes. Cut at a UTF-8 boundary.
constexpr size_t kMaxExtractedBytes = 4096;

std::string Bounded(std::string text) {
  if (text.size() <= kMaxExtractedBytes) return text;
  size_t end = kMaxExtractedBytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  text.resize(end);
  return text;
}

}  // namespace

absl::StatusOr<std::vector<v1::Task>> Coordinator::PromptTasksLocked(
    const std::string& job_id, int64_t seq, const ReportCommit& commit) {
  std::map<int, v1::Task> by_sample;
  RETURN_IF_ERROR(store_.ScanTasks(job_id, seq, 0, [&](const v1::Task& t) {
    if (t.prompt_seq() != seq) return false;
    by_sample[t.sample()] = t;
    return true;
  }));
  for (auto it = commit.tasks.lower_bound(TaskId{job_id, seq, 0});
       it != commit.tasks.end() && std::get<0>(it->first) == job_id &&
       std::get<1>(it->first) == seq;
       ++it) {
    by_sample[std::get<2>(it->first)] = commit.batch.tasks[it->second];
  }
  std::vector<v1::Task> tasks;
  tasks.reserve(by_sample.size());
  for (auto& [sample, task] : by_sample) tasks.push_back(std::move(task));
  return tasks;
}

absl::StatusOr<std::string> Coordinator::AnswerTextLocked(
    const std::string& request_key, const PendingAnswers& pending) {
  std::string key = request_key;
  // A duplicate points at the first answer with its text, which is never a
  // duplicate itself; the bound only guards against a corrupt store.
  for (int hop = 0; hop < 2; ++hop) {
    std::optional<v1::Answer> answer;
    if (auto it = pending.answers.find(key); it != pending.answers.end()) {
      answer = pending.batch->answers[it->second];
    } else {
      ASSIGN_OR_RETURN(answer, store_.GetAnswer(key));
    }
    if (!answer) {
      return absl::NotFoundError(
          absl::StrCat("the answer to check is not stored (request key ",
                       absl::BytesToHexString(key), ")"));
    }
    if (answer->duplicate_of().empty()) return answer->content();
    key = answer->duplicate_of();
  }
  return absl::DataLossError("an answer's duplicate_of chain does not end");
}

absl::Status Coordinator::CheckAnswerLocked(JobRuntime& rt, v1::Job& job,
                                            size_t index,
                                            std::string_view content,
                                            ReportCommit* commit) {
  const v1::JobSpec& spec = job.spec();
  if (spec.verify().empty()) return absl::OkStatus();
  if (rt.checker == nullptr) {
    // Validated at submission; a failure here means the spec was changed
    // in the store.
    ASSIGN_OR_RETURN(AnswerChecker checker, AnswerChecker::Create(spec.verify()));
    rt.checker = std::make_shared<const AnswerChecker>(std::move(checker));
  }
  v1::Task& task = commit->batch.tasks[index];
  std::optional<std::string> reference;
  if (task.has_reference()) reference = task.reference();
  CheckOutcome outcome = rt.checker->Check(content, reference);
  task.set_extracted_answer(Bounded(std::move(outcome.extracted)));
  v1::JobCounters* c = job.mutable_counters();
  const char* result;
  if (!outcome.verified.has_value()) {
    task.set_verify_state(v1::VERIFY_STATE_NO_REFERENCE);
    c->set_unverifiable_answers(c->unverifiable_answers() + 1);
    result = "no_reference";
  } else if (*outcome.verified) {
    task.set_verify_state(v1::VERIFY_STATE_VERIFIED);
    c->set_verified_answers(c->verified_answers() + 1);
    result = "verified";
  } else {
    task.set_verify_state(v1::VERIFY_STATE_REJECTED);
    c->set_rejected_answers(c->rejected_answers() + 1);
    result = "rejected";
  }
  commit->checked.emplace_back(job.id(), result);
  const v1::VerifyState state = task.verify_state();
  // Copies: adding tasks below moves the batch's tasks.
  const int64_t seq = task.prompt_seq();
  const v1::SamplingParams prompt_params = task.prompt_params();
  if (state == v1::VERIFY_STATE_NO_REFERENCE) return absl::OkStatus();

  ASSIGN_OR_RETURN(std::vector<v1::Task> tasks,
                   PromptTasksLocked(job.id(), seq, *commit));
  int verified = 0;
  int pending = 0;
  int last_sample = -1;
  for (const v1::Task& t : tasks) {
    if (t.state() == v1::TASK_STATE_DONE &&
        t.verify_state() == v1::VERIFY_STATE_VERIFIED) {
      ++verified;
    }
    if (t.state() == v1::TASK_STATE_PENDING) ++pending;
    last_sample = std::max(last_sample, t.sample());
  }
  const int needed = PassingAnswers(spec);
  if (state == v1::VERIFY_STATE_VERIFIED && verified == needed) {
    c->set_prompts_passed(c->prompts_passed() + 1);
  }
  if (spec.until_correct() == 0 || state != v1::VERIFY_STATE_REJECTED) {
    return absl::OkStatus();
  }
  const int more =
      std::min(needed - verified - pending,
               spec.max_samples() - static_cast<int>(tasks.size()));
  if (more <= 0) return absl::OkStatus();

  const TeacherProfile* profile = ProfileFor(spec.teacher());
  if (profile == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job.id(), ": teacher '", spec.teacher(),
        "' is no longer configured; its next samples cannot be keyed"));
  }
  ASSIGN_OR_RETURN(std::optional<v1::Prompt> prompt,
                   store_.GetPrompt(job.id(), seq));
  if (!prompt) {
    return absl::DataLossError(absl::StrCat("job ", job.id(), ": prompt ", seq,
                                            " has tasks but is not stored"));
  }
  for (int i = 1; i <= more; ++i) {
    v1::Task next;
    next.set_job_id(job.id());
    next.set_prompt_seq(seq);
    next.set_sample(last_sample + i);
    next.set_state(v1::TASK_STATE_PENDING);
    next.set_request_key(TaskRequestKey(*profile, spec, *prompt, next.sample()));
    if (prompt->has_params()) *next.mutable_prompt_params() = prompt_params;
    if (reference) next.set_reference(*reference);
    commit->tasks[TaskId{job.id(), seq, next.sample()}] =
        commit->batch.tasks.size();
    commit->spawned.push_back(commit->batch.tasks.size());
    commit->batch.tasks.push_back(std::move(next));
  }
  c->set_tasks_total(c->tasks_total() + more);
  return absl::OkStatus();
}

}  // namespace distillery
