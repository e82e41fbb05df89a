#include "services/coordinator/submission.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "common/base/status_macros.h"
#include "common/dataset/prompt_parser.h"
#include "common/job/task_request.h"
#include "common/metrics/metrics.h"
#include "common/verify/answer_check.h"
#include "common/verify/json_schema.h"
#include "services/coordinator/coordinator.h"
#include "services/coordinator/job_transitions.h"

namespace distillery {
namespace {

// A submission's prompt ids, in the scratch family: "\x81" job id "\0" id
// -> line number. Above the be64 export ids (below "\x80").
constexpr char kSubmissionIds = '\x81';

std::string SubmissionIdKey(const std::string& job_id, const std::string& id) {
  std::string key(1, kSubmissionIds);
  absl::StrAppend(&key, job_id);
  key.push_back('\0');
  key += id;
  return key;
}

// The [begin, end) of the ids of `job_id`'s submission; of every
// submission's when `job_id` is empty.
std::pair<std::string, std::string> SubmissionIdRange(
    const std::string& job_id) {
  if (job_id.empty()) {
    return {std::string(1, kSubmissionIds),
            std::string(1, static_cast<char>(kSubmissionIds + 1))};
  }
  std::string begin = SubmissionIdKey(job_id, "");
  std::string end = begin;
  end.back() = '\1';
  return {std::move(begin), std::move(end)};
}

}  // namespace

std::string JobIdFor(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "job-%06lld", static_cast<long long>(n));
  return buf;
}

absl::Status ValidateJobSpec(const v1::JobSpec& spec,
                             const std::vector<TeacherProfile>& teachers,
                             int max_samples, size_t max_prompt_bytes) {
  if (spec.system_prompt().size() > max_prompt_bytes) {
    metrics::RejectedCall("client", "prompt_too_long");
    return absl::InvalidArgumentError(
        absl::StrCat("spec: system prompt is ", spec.system_prompt().size(),
                     " bytes, over the limit of ", max_prompt_bytes));
  }
  if (spec.teacher().empty()) {
    return absl::InvalidArgumentError("spec: teacher is required");
  }
  if (absl::StatusOr<TeacherProfile> p = FindTeacher(teachers, spec.teacher());
      !p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", p.status().message()));
  }
  if (spec.model().empty()) {
    return absl::InvalidArgumentError("spec: model is required");
  }
  if (spec.samples() < 1 || spec.samples() > max_samples) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec: samples must be between 1 and ", max_samples, ", got ",
        spec.samples()));
  }
  const v1::SamplingParams& p = spec.params();
  if (p.max_tokens() < 0) {
    return absl::InvalidArgumentError("spec: max_tokens must not be negative");
  }
  if (p.has_temperature() && (p.temperature() < 0 || p.temperature() > 2)) {
    return absl::InvalidArgumentError("spec: temperature must be in [0, 2]");
  }
  if (p.has_top_p() && (p.top_p() <= 0 || p.top_p() > 1)) {
    return absl::InvalidArgumentError("spec: top_p must be in (0, 1]");
  }
  if (p.top_logprobs() < 0 || p.top_logprobs() > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec: --logprobs must be between 1 and ", kMaxTopLogprobs, ", got ",
        p.top_logprobs()));
  }
  if (p.top_logprobs() > 0) {
    const TeacherProfile* profile = FindTeacherOrNull(teachers, spec.teacher());
    if (profile != nullptr) {
      if (std::optional<std::string> why = NoLogprobsReason(*profile, spec.model())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec: --logprobs: ", *why,
            "; nothing was sent (a logit-distillation set needs a teacher "
            "that returns them: an OpenAI-compatible, non-reasoning model)"));
      }
    }
  }
  if (!spec.json_schema().empty()) {
    absl::StatusOr<std::unique_ptr<JsonSchemaValidator>> schema =
        JsonSchemaValidator::Create(spec.json_schema());
    if (!schema.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec: --json-schema: ", schema.status().message()));
    }
  }
  if (spec.budget_usd() < 0) {
    return absl::InvalidArgumentError("spec: budget_usd must not be negative");
  }
  if (!v1::JobMode_IsValid(spec.mode())) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: unknown mode ", static_cast<int>(spec.mode())));
  }
  if (spec.mode() != v1::JOB_MODE_ONLINE) {
    const TeacherProfile* profile = FindTeacherOrNull(teachers, spec.teacher());
    if (profile != nullptr && !HasBatchApi(*profile)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec: teacher '", spec.teacher(), "' (api ", profile->api,
          profile->api == "openai" ? absl::StrCat(", variant ", profile->variant)
                                   : std::string(),
          ") has no batch API; use --mode online"));
    }
  }
  if (spec.deadline_ms() < 0) {
    return absl::InvalidArgumentError("spec: deadline must not be negative");
  }
  if (spec.deadline_ms() > 0 && spec.mode() != v1::JOB_MODE_AUTO) {
    return absl::InvalidArgumentError(
        "spec: a deadline needs --mode auto (batch waits for its batches; "
        "online has nothing to trade)");
  }
  if (spec.budget_usd() > 0) {
    absl::StatusOr<TeacherProfile> profile = FindTeacher(teachers, spec.teacher());
    if (profile.ok() && !PriceFor(*profile, spec.model())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec: a budget needs a price: teacher '", spec.teacher(),
          "' has no pricing for model '", spec.model(),
          "' (add it under pricing: in the teachers file)"));
    }
  }
  if (!spec.verify().empty()) {
    absl::StatusOr<AnswerChecker> checker = AnswerChecker::Create(spec.verify());
    if (!checker.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec: ", checker.status().message()));
    }
  } else if (!spec.answer_field().empty()) {
    return absl::InvalidArgumentError(
        "spec: --answer-field needs --verify (it names what is checked)");
  }
  if (spec.until_correct() < 0 || spec.max_samples() < 0) {
    return absl::InvalidArgumentError(
        "spec: until_correct and max_samples must not be negative");
  }
  if (spec.until_correct() > 0) {
    if (spec.verify().empty()) {
      return absl::InvalidArgumentError(
          "spec: --until-correct needs --verify (it counts verified answers)");
    }
    if (spec.samples() != 1) {
      return absl::InvalidArgumentError(
          "spec: --until-correct samples adaptively; use --max-samples, not "
          "--samples");
    }
    if (spec.max_samples() == 0) {
      return absl::InvalidArgumentError(
          "spec: --until-correct needs --max-samples N, the most samples one "
          "prompt may take");
    }
    if (spec.max_samples() < spec.until_correct() ||
        spec.max_samples() > max_samples) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec: --max-samples must be between --until-correct (",
          spec.until_correct(), ") and ", max_samples, ", got ",
          spec.max_samples()));
    }
  } else if (spec.max_samples() > 0) {
    return absl::InvalidArgumentError(
        "spec: --max-samples needs --until-correct (a fixed number of samples "
        "is --samples)");
  }
  if (!IsValidUtf8(spec.system_prompt())) {
    return absl::InvalidArgumentError("spec: system prompt is not UTF-8");
  }
  return absl::OkStatus();
}

std::optional<std::string> NoLogprobsReason(const TeacherProfile& profile,
                                            const std::string& model) {
  if (profile.api == "anthropic") {
    return absl::StrCat("teacher '", profile.name,
                        "' uses Anthropic's API, which gives no logprobs");
  }
  auto starts = [&](const char* prefix) { return model.rfind(prefix, 0) == 0; };
  if (profile.variant == "openai" &&
      (starts("o1") || starts("o3") || starts("o4") || starts("gpt-5"))) {
    return absl::StrCat("model '", model,
                        "' is an OpenAI reasoning model, which gives no "
                        "logprobs");
  }
  if (profile.variant == "deepseek" && model == "deepseek-reasoner") {
    return std::string("deepseek-reasoner gives no logprobs");
  }
  return std::nullopt;
}

absl::Status DeleteAllSubmissionIds(Store& store) {
  const auto [begin, end] = SubmissionIdRange("");
  return store.DeleteScratch(begin, end);
}

Submission::~Submission() {
  if (!finished_) Abort();
}

namespace {

using ParsedLine = absl::StatusOr<std::optional<v1::Prompt>>;

// ParsePromptLine of every line, the first numbered `first_line`. Parsing is
// most of a submission's cost and each line parses on its own, so a large
// chunk is split across threads (one per core, at most kMaxParseThreads);
// the caller takes the results in order, so errors and ids are checked as
// if the lines were parsed one by one.
std::vector<ParsedLine> ParseLines(
    const google::protobuf::RepeatedPtrField<std::string>& lines,
    int64_t first_line, const std::string& system_prompt, size_t max_bytes) {
  constexpr int kMaxParseThreads = 4;
  constexpr int kLinesPerThread = 256;  // below this a thread costs more
  const int n = lines.size();
  std::vector<ParsedLine> parsed(n);
  auto parse = [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      parsed[i] = ParsePromptLine(lines[i], first_line + i, system_prompt,
                                  max_bytes);
    }
  };
  const int threads = std::clamp<int>(
      std::min<int>(static_cast<int>(std::thread::hardware_concurrency()),
                    n / kLinesPerThread),
      1, kMaxParseThreads);
  std::vector<std::thread> helpers;
  for (int k = 1; k < threads; ++k) {
    helpers.emplace_back(parse, static_cast<int>(int64_t{n} * k / threads),
                         static_cast<int>(int64_t{n} * (k + 1) / threads));
  }
  parse(0, n / threads);
  for (std::thread& t : helpers) t.join();
  return parsed;
}

}  // namespace

absl::Status Submission::AddLines(
    const google::protobuf::RepeatedPtrField<std::string>& lines) {
  if (finished_) return absl::FailedPreconditionError("submission finished");
  const v1::JobSpec& spec = job_.spec();
  const CoordinatorOptions& options = coordinator_->options();
  std::vector<ParsedLine> all_parsed =
      ParseLines(lines, line_number_ + 1, spec.system_prompt(),
                 options.max_prompt_bytes);
  for (int i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    ++line_number_;
    ParsedLine& parsed = all_parsed[i];
    if (!parsed.ok()) {
      if (line.size() > options.max_prompt_bytes) {
        metrics::RejectedCall("client", "prompt_too_long");
      }
      Abort();  // one bad line rejects the whole submission
      return parsed.status();
    }
    std::optional<v1::Prompt>& prompt = *parsed;
    if (!prompt) continue;
    if (absl::Status s = CheckUniqueId(*prompt); !s.ok()) {
      Abort();
      return s;
    }
    std::optional<std::string> reference;
    if (!spec.verify().empty()) {
      absl::StatusOr<std::optional<std::string>> found = ReferenceAnswer(
          prompt->metadata_json(),
          spec.answer_field().empty() ? "answer" : spec.answer_field());
      if (!found.ok()) {
        Abort();
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number_, ": ", found.status().message()));
      }
      reference = std::move(*found);
    }
    const int64_t seq = next_seq_++;
    for (int s = 0; s < InitialSamples(spec); ++s) {
      v1::Task task;
      task.set_job_id(job_.id());
      task.set_prompt_seq(seq);
      task.set_sample(s);
      task.set_state(v1::TASK_STATE_PENDING);
      task.set_request_key(TaskRequestKey(teacher_, spec, *prompt, s));
      if (prompt->has_params()) *task.mutable_prompt_params() = prompt->params();
      if (reference) task.set_reference(*reference);
      pending_.tasks.push_back(std::move(task));
    }
    pending_.AddPrompt(job_.id(), seq, std::move(*prompt));
    if (++pending_prompts_ >= options.submit_flush_prompts) {
      if (absl::Status s = Flush(); !s.ok()) {
        Abort();
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Submission::Flush() {
  if (pending_.empty()) return absl::OkStatus();
  absl::Status s = store_.Apply(pending_);
  pending_ = StoreBatch();
  pending_prompts_ = 0;
  pending_ids_.clear();
  return s;
}

absl::Status Submission::CheckUniqueId(const v1::Prompt& prompt) {
  std::string key = SubmissionIdKey(job_.id(), prompt.id());
  int64_t first = 0;
  if (auto it = pending_ids_.find(key); it != pending_ids_.end()) {
    first = it->second;
  } else {
    ASSIGN_OR_RETURN(std::optional<std::string> stored,
                     store_.FindScratch(key));
    if (stored && !absl::SimpleAtoi(*stored, &first)) first = -1;
  }
  if (first != 0) {
    return DuplicatePromptIdError(prompt.line(), prompt.id(), first);
  }
  pending_.scratch.emplace_back(key, absl::StrCat(prompt.line()));
  pending_ids_.emplace(std::move(key), prompt.line());
  return absl::OkStatus();
}

void Submission::DeleteIds() {
  // Best effort: what is left, Recover deletes.
  const auto [begin, end] = SubmissionIdRange(job_.id());
  (void)store_.DeleteScratch(begin, end);
}

absl::StatusOr<v1::Job> Submission::Commit() {
  if (finished_) return absl::FailedPreconditionError("submission finished");
  if (next_seq_ == 0) {
    Abort();
    return absl::InvalidArgumentError("the prompt file has no prompts");
  }
  if (absl::Status s = Flush(); !s.ok()) {
    Abort();
    return s;
  }
  Admitted(job_, next_seq_);
  if (absl::Status s = coordinator_->CommitSubmission(this); !s.ok()) {
    Abort();
    return s;
  }
  finished_ = true;
  DeleteIds();
  // As clients see it, with its teacher's status (live workers included).
  absl::StatusOr<v1::Job> view = coordinator_->GetJob(job_.id());
  return view.ok() ? *view : job_;
}

void Submission::Abort() {
  if (finished_) return;
  finished_ = true;
  pending_ = StoreBatch();
  pending_ids_.clear();
  // Best effort: a failure here leaves a SUBMITTING job that Recover removes
  // (and its id stays used).
  if (store_.DeleteJob(job_.id()).ok()) {
    coordinator_->ReleaseJobNumber(job_number_);
  }
  DeleteIds();
}

}  // namespace distillery
