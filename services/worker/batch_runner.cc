#include "services/worker/batch_runner.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "common/job/task_request.h"
#include "common/metrics/metrics.h"
#include "common/rpc/message_limits.h"
#include "common/teacher/logprobs_codec.h"

namespace distillery {
namespace {

std::string Utf8(std::string_view text) { return RepairUtf8(text); }

v1::BatchStepReport ReportOf(const v1::BatchStep& step) {
  v1::BatchStepReport report;
  report.set_lease_id(step.lease_id());
  report.set_batch_id(step.batch_id());
  report.set_kind(step.kind());
  report.set_provider_batch_id(step.provider_batch_id());
  return report;
}

void SetStatus(const absl::Status& status, v1::BatchStepReport* report) {
  report->set_status_code(static_cast<int>(status.code()));
  report->set_error(Utf8(std::string(status.message())));
}

void SetInfo(const BatchInfo& info, v1::BatchStepReport* report) {
  report->set_provider_batch_id(info.id);
  report->set_input_file_id(info.input_file_id);
  report->set_provider_status(Utf8(info.provider_status));
  report->set_succeeded(info.succeeded);
  report->set_errored(info.errored);
  report->set_total(info.total);
  report->set_provider_created_s(info.created_at_s);
  if (info.phase == BatchPhase::kFailed) {
    report->set_provider_failed(true);
    report->set_token_limit(info.token_limit);
    report->set_error(Utf8(info.failure));
  }
}

v1::FailureClass ClassOf(FailureKind kind) {
  switch (kind) {
    case FailureKind::kPermanent:
      return v1::FAILURE_CLASS_PERMANENT;
    case FailureKind::kTeacherDown:
      // One request's key-level error inside a batch: retried (a key that
      // is really bad fails the next create as a whole).
    case FailureKind::kRetryable:
    case FailureKind::kRateLimited:
      return v1::FAILURE_CLASS_RETRYABLE;
  }
  return v1::FAILURE_CLASS_RETRYABLE;
}

}  // namespace

void FillAnswerProto(TeacherAnswer a, int64_t received_ms, int64_t latency_ms,
                     v1::Answer* answer) {
  // Every string from the teacher is repaired to UTF-8 on its way in: one
  // bad byte in a proto3 string makes the whole report unparseable.
  answer->set_content(Utf8(std::move(a.content)));
  answer->set_reasoning(Utf8(std::move(a.reasoning)));
  answer->set_reasoning_blocks(Utf8(std::move(a.reasoning_blocks)));
  answer->set_finish_reason(Utf8(std::move(a.finish_reason)));
  answer->mutable_usage()->set_prompt_tokens(a.usage.prompt_tokens);
  answer->mutable_usage()->set_completion_tokens(a.usage.completion_tokens);
  answer->mutable_usage()->set_reasoning_tokens(a.usage.reasoning_tokens);
  answer->mutable_usage()->set_cached_tokens(a.usage.cached_tokens);
  answer->set_provider_id(Utf8(std::move(a.provider_id)));
  answer->set_raw_body(std::move(a.raw_body));
  answer->set_tool_calls_json(Utf8(std::move(a.tool_calls_json)));
  if (!a.logprobs.empty()) {
    // Token strings may be pieces of a UTF-8 character: the codec keeps
    // them as bytes, in a bytes field.
    answer->set_logprobs(EncodeLogprobs(a.logprobs));
  }
  answer->set_received_ms(received_ms);
  answer->set_latency_ms(latency_ms);
}

BatchRunner::BatchRunner(CoordinatorClient& coordinator,
                         std::map<std::string, BatchApi*> apis,
                         std::map<std::string, TeacherProfile> profiles,
                         Clock& clock, BatchRunnerHost host,
                         BatchRunnerOptions options)
    : coordinator_(coordinator),
      apis_(std::move(apis)),
      profiles_(std::move(profiles)),
      clock_(clock),
      host_(std::move(host)),
      options_(options),
      lease_duration_(options.lease_duration) {}

void BatchRunner::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

bool BatchRunner::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void BatchRunner::set_lease_duration(Duration d) {
  absl::MutexLock lock(&mu_);
  lease_duration_ = d;
}

int64_t BatchRunner::steps_done() const {
  absl::MutexLock lock(&mu_);
  return steps_done_;
}

bool BatchRunner::Wait(Duration d) {
  absl::MutexLock lock(&mu_);
  clock_.AwaitWithDeadline(&mu_, absl::Condition(&stopping_),
                           clock_.Now() + d);
  return !stopping_;
}

void BatchRunner::Run() {
  if (apis_.empty()) return;
  while (!stopping()) {
    const std::string worker_id = host_.worker_id();
    if (worker_id.empty()) {
      Wait(options_.retry_delay);
      continue;
    }
    v1::LeaseBatchStepRequest request;
    request.set_worker_id(worker_id);
    request.set_max_steps(1);
    for (const auto& [name, api] : apis_) request.add_teachers(name);
    absl::StatusOr<v1::LeaseBatchStepResponse> response =
        coordinator_.LeaseBatchStep(request);
    if (!response.ok()) {
      if (response.status().code() == absl::StatusCode::kFailedPrecondition) {
        host_.register_again();
      } else if (response.status().code() != absl::StatusCode::kUnimplemented) {
        spdlog::debug("batch steps: {}",
                      std::string(response.status().message()));
      }
      Wait(options_.retry_delay * 5);
      continue;
    }
    for (const v1::BatchStep& step : response->steps()) {
      host_.hold(step.lease_id());
      Do(worker_id, step);
      host_.release(step.lease_id());
      absl::MutexLock lock(&mu_);
      ++steps_done_;
    }
    if (response->steps_size() == 0) {
      Wait(std::clamp<Duration>(
          std::chrono::milliseconds(response->next_due_ms()),
          std::chrono::milliseconds(10), options_.idle_poll));
    }
  }
}

void BatchRunner::Do(const std::string& worker_id, const v1::BatchStep& step) {
  auto api = apis_.find(step.teacher());
  std::vector<v1::BatchStepReport> reports;
  if (api == apis_.end()) {
    v1::BatchStepReport report = ReportOf(step);
    SetStatus(absl::FailedPreconditionError(absl::StrCat(
                  "this worker has no batch API for teacher ", step.teacher())),
              &report);
    reports.push_back(std::move(report));
  } else {
    Duration lease;
    {
      absl::MutexLock lock(&mu_);
      lease = lease_duration_;
    }
    switch (step.kind()) {
      case v1::BATCH_STEP_CREATE:
        reports = Create(step, *api->second, clock_.Now() + lease);
        break;
      case v1::BATCH_STEP_POLL:
        reports = Poll(step, *api->second);
        break;
      case v1::BATCH_STEP_CANCEL:
        reports.push_back(Cancel(step, *api->second));
        break;
      default:
        return;
    }
  }
  (void)worker_id;
  for (v1::BatchStepReport& report : reports) {
    if (!SendReport(std::move(report))) return;
  }
}

std::vector<v1::BatchStepReport> BatchRunner::Create(const v1::BatchStep& step,
                                                     BatchApi& api,
                                                     TimePoint deadline) {
  v1::BatchStepReport report = ReportOf(step);
  if (step.find_first()) {
    // An earlier create may have reached the provider: never a second batch
    // for the same tasks. If it cannot be looked for now, nothing is sent.
    std::vector<std::string> exclude(step.exclude_provider_ids().begin(),
                                     step.exclude_provider_ids().end());
    const int64_t requests =
        step.find_only() ? step.request_count() : step.tasks_size();
    absl::StatusOr<std::optional<BatchInfo>> found =
        api.Find(step.tag(), step.created_after_s(), requests, exclude);
    if (!found.ok()) {
      SetStatus(found.status(), &report);
      return {report};
    }
    if (*found) {
      spdlog::info("batch {}: found again at the provider as {}",
                   step.batch_id(), (*found)->id);
      SetInfo(**found, &report);
      return {report};
    }
    if (step.find_only()) {
      SetStatus(absl::NotFoundError(absl::StrCat(
                    "no batch tagged ", step.tag(), " at the provider")),
                &report);
      return {report};
    }
  }
  std::vector<std::string> lines;
  lines.reserve(step.tasks_size());
  for (int i = 0; i < step.tasks_size(); ++i) {
    absl::StatusOr<std::string> line =
        api.BuildLine(step.custom_ids(i),
                      ToTeacherRequest(step.tasks(i)));
    if (!line.ok()) {
      SetStatus(absl::InvalidArgumentError(absl::StrCat(
                    "request ", step.custom_ids(i), ": ",
                    line.status().message())),
                &report);
      return {report};
    }
    lines.push_back(*std::move(line));
  }
  // The step may have gone to another worker once its lease lapsed (this
  // worker cut off from the coordinator): creating now could pay twice.
  if (clock_.Now() >= deadline || stopping()) {
    SetStatus(absl::UnavailableError("batch step lease lapsed before create"),
              &report);
    return {report};
  }
  absl::StatusOr<BatchInfo> created = api.Create(lines, step.model(), step.tag());
  if (!created.ok()) {
    SetStatus(created.status(), &report);
    return {report};
  }
  SetInfo(*created, &report);
  return {report};
}

std::vector<v1::BatchStepReport> BatchRunner::Poll(const v1::BatchStep& step,
                                                   BatchApi& api) {
  v1::BatchStepReport report = ReportOf(step);
  absl::StatusOr<BatchInfo> info = api.Get(step.provider_batch_id());
  if (!info.ok()) {
    SetStatus(info.status(), &report);
    return {report};
  }
  SetInfo(*info, &report);
  if (info->phase != BatchPhase::kEnded) return {report};
  absl::StatusOr<std::vector<BatchItemResult>> results = api.Results(*info);
  if (!results.ok()) {
    SetStatus(results.status(), &report);
    report.set_provider_failed(false);
    return {report};
  }
  report.set_ended(true);
  const int64_t now_ms = clock_.WallMillis();
  const int64_t latency_ms =
      info->created_at_s > 0 ? std::max<int64_t>(0, now_ms - info->created_at_s * 1000)
                             : 0;
  std::vector<v1::BatchStepReport> reports;
  v1::BatchStepReport chunk = report;
  size_t bytes = 0;
  for (BatchItemResult& r : *results) {
    v1::BatchItem item;
    item.set_custom_id(Utf8(std::move(r.custom_id)));
    if (r.not_run) {
      item.set_not_run(true);
    } else if (r.result.status.ok()) {
      FillAnswerProto(std::move(r.result.answer), now_ms, latency_ms,
                      item.mutable_answer());
      item.mutable_answer()->set_provider_batch_id(info->id);
    } else {
      item.set_failure(ClassOf(r.result.kind));
      item.set_error(Utf8(std::string(r.result.status.message()).substr(0, 2000)));
    }
    const size_t item_bytes = RepeatedEntryBytes(item.ByteSizeLong());
    if (chunk.items_size() > 0 && bytes + item_bytes > options_.report_bytes) {
      reports.push_back(std::move(chunk));
      chunk = report;
      bytes = 0;
    }
    bytes += item_bytes;
    *chunk.add_items() = std::move(item);
  }
  chunk.set_last(true);
  reports.push_back(std::move(chunk));
  return reports;
}

v1::BatchStepReport BatchRunner::Cancel(const v1::BatchStep& step,
                                        BatchApi& api) {
  v1::BatchStepReport report = ReportOf(step);
  SetStatus(api.Cancel(step.provider_batch_id()), &report);
  return report;
}

bool BatchRunner::SendReport(v1::BatchStepReport report) {
  // Kept trying after Stop for a while: a created batch's id or its paid
  // results are what this report carries.
  TimePoint give_up = TimePoint::max();
  while (true) {
    if (stopping() && give_up == TimePoint::max()) {
      give_up = clock_.Now() + std::chrono::seconds(10);
    }
    if (clock_.Now() >= give_up) {
      spdlog::warn("batch {}: report not delivered before exit; the batch "
                   "is found again by its tag or polled by another worker",
                   report.batch_id());
      return false;
    }
    const std::string worker_id = host_.worker_id();
    if (!worker_id.empty()) {
      report.set_worker_id(worker_id);
      absl::StatusOr<v1::BatchStepReportResponse> response =
          coordinator_.ReportBatchStep(report);
      if (response.ok()) return true;
      if (response.status().code() == absl::StatusCode::kFailedPrecondition) {
        host_.register_again();
        continue;
      }
      spdlog::debug("batch {}: report failed, retrying: {}", report.batch_id(),
                    std::string(response.status().message()));
    }
    static constexpr bool kNever = false;
    absl::MutexLock lock(&mu_);
    clock_.AwaitWithDeadline(&mu_, absl::Condition(&kNever),
                             clock_.Now() + options_.retry_delay);
  }
}

}  // namespace distillery
