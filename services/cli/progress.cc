#include "services/cli/progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job/job_state.h"
#include "common/job/task_request.h"
#include "nlohmann/json.hpp"

namespace distillery::cli {
namespace {

// Why a job that is not finished makes no progress, or "".
std::string Waiting(const v1::Job& job) {
  if (IsSettledForNow(job.state())) return "";
  const v1::TeacherStatus& t = job.teacher_status();
  if (t.paused()) {
    return absl::StrCat("teacher ", t.name(), " paused: ", t.pause_reason());
  }
  if (t.live_workers() == 0 && SettledTasks(job) < job.counters().tasks_total()) {
    return NoLiveWorkerMessage(job.spec().teacher());
  }
  return "";
}

// Failed requests in flight, before any task is dead-lettered: the
// teacher's errors and 429s as the coordinator heard of them (all of its
// jobs since the coordinator started).
std::string TeacherErrors(const v1::Job& job) {
  const v1::TeacherStatus& t = job.teacher_status();
  std::string out;
  if (t.errors_total() > 0) {
    absl::StrAppend(&out, " ", t.errors_total(),
                    t.errors_total() == 1 ? " error" : " errors");
  }
  if (t.rate_limited_total() > 0) {
    absl::StrAppend(&out, " ", t.rate_limited_total(), " 429s");
  }
  return out;
}

// Columns a UTF-8 string takes (every code point one column, which holds
// for the text and block characters drawn here).
int DisplayWidth(const std::string& text) {
  int n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// The first `columns` columns of `text`, never splitting a code point.
std::string Truncate(const std::string& text, int columns) {
  int n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80 && n++ == columns) return text.substr(0, i);
  }
  return text;
}

}  // namespace

int64_t SettledTasks(const v1::Job& job) {
  return job.counters().tasks_done() + job.counters().tasks_failed();
}

std::string FormatSpend(double usd) {
  return usd >= 100 ? absl::StrFormat("$%.2f", usd)
                    : absl::StrFormat("$%.4f", usd);
}

void RateMeter::Add(double now, int64_t settled) {
  samples_.emplace_back(now, settled);
  while (samples_.size() > 2 && now - samples_[1].first >= kWindow) {
    samples_.pop_front();
  }
}

double RateMeter::Rate() const {
  if (samples_.size() < 2) return 0;
  const double span = samples_.back().first - samples_.front().first;
  if (span < 0.5) return 0;
  return (samples_.back().second - samples_.front().second) / span;
}

std::string NoLiveWorkerMessage(const std::string& teacher) {
  return absl::StrCat("no live worker serves teacher ", teacher,
                      " (start a worker whose teachers file has its key)");
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
}


const char* BatchStateName(v1::BatchState state) {
  switch (state) {
    case v1::BATCH_STATE_CREATING:
      return "creating";
    case v1::BATCH_STATE_OPEN:
      return "open";
    case v1::BATCH_STATE_CANCELLING:
      return "cancelling";
    case v1::BATCH_STATE_ENDED:
      return "ended";
    case v1::BATCH_STATE_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

std::string BatchLines(const v1::Job& job, int64_t now_ms) {
  std::string out;
  for (const v1::BatchSummary& b : job.batches()) {
    const int64_t end = b.ended_ms() ? b.ended_ms() : now_ms;
    absl::StrAppend(
        &out,
        absl::StrFormat("  batch %s %-10s %s tasks %d answered %d errored %d "
                        "not-run %d age %s%s\n",
                        b.id(), BatchStateName(b.state()),
                        b.provider_batch_id().empty() ? "-"
                                                      : b.provider_batch_id(),
                        b.tasks(), b.answered(), b.errored(), b.not_run(),
                        FormatDuration(std::max<int64_t>(end - b.created_ms(),
                                                         0) /
                                       1000.0),
                        b.error().empty() ? "" : " error: " + b.error()));
  }
  return out;
}

std::string JobJson(const v1::Job& job, int64_t now_ms) {
  const v1::JobCounters& c = job.counters();
  const int64_t settled = SettledTasks(job);
  const int64_t pending = std::max<int64_t>(c.tasks_total() - settled, 0);
  const int64_t end_ms = job.finished_ms() ? job.finished_ms() : now_ms;
  const double elapsed =
      job.created_ms() ? std::max<int64_t>(end_ms - job.created_ms(), 0) / 1000.0
                       : 0.0;
  const double rate = elapsed > 0 ? settled / elapsed : 0.0;
  nlohmann::ordered_json eta = nullptr;
  if (IsSettledForNow(job.state()) || pending == 0) {
    eta = 0;
  } else if (rate > 0) {
    eta = pending / rate;
  }
  nlohmann::ordered_json j = {
      {"id", job.id()},
      {"state", JobStateName(job.state())},
      {"teacher", job.spec().teacher()},
      {"model", job.spec().model()},
      {"samples", job.spec().samples()},
      {"source", job.spec().source()},
      {"prompts", c.prompts()},
      {"tasks_total", c.tasks_total()},
      {"tasks_done", c.tasks_done()},
      {"tasks_failed", c.tasks_failed()},
      {"settled", settled},
      {"pending", pending},
      {"percent", c.tasks_total() > 0 ? 100.0 * settled / c.tasks_total()
                                      : 100.0},
      {"elapsed_seconds", elapsed},
      {"rate_per_second", rate},
      {"eta_seconds", eta},
      {"cache_hits", c.cache_hits()},
      {"duplicate_answers", c.duplicate_answers()},
      {"near_duplicate_answers", c.near_duplicate_answers()},
      {"teacher_requests", c.teacher_requests()},
      {"prompt_tokens", c.prompt_tokens()},
      {"completion_tokens", c.completion_tokens()},
      {"reasoning_tokens", c.reasoning_tokens()},
      {"cached_tokens", c.cached_tokens()},
      {"cost_usd", c.cost_usd()},
      {"created_ms", job.created_ms()},
      {"finished_ms", job.finished_ms()},
      {"error", job.error()},
      {"mode", JobModeName(job.spec().mode())},
      {"deadline_ms", job.spec().deadline_ms()},
      {"batch_answers", c.batch_answers()},
      {"online_answers", c.teacher_requests() - c.batch_answers()},
      {"tasks_in_batches", c.tasks_in_batches()},
      {"verify", job.spec().verify()},
      {"until_correct", job.spec().until_correct()},
      {"max_samples", job.spec().max_samples()},
      {"verified_answers", c.verified_answers()},
      {"rejected_answers", c.rejected_answers()},
      {"unverifiable_answers", c.unverifiable_answers()},
      {"prompts_passed", c.prompts_passed()},
      {"pass_rate", c.prompts() > 0 ? static_cast<double>(c.prompts_passed()) /
                                          c.prompts()
                                    : 0.0},
      {"samples_per_prompt",
       c.prompts() > 0 ? static_cast<double>(c.tasks_total()) / c.prompts()
                       : 0.0},
      {"logprobs", job.spec().params().top_logprobs()},
      {"json_schema", job.spec().json_schema_name()},
      {"schema_failures", c.schema_failures()},
  };
  nlohmann::ordered_json batches = nlohmann::ordered_json::array();
  for (const v1::BatchSummary& b : job.batches()) {
    const int64_t end = b.ended_ms() ? b.ended_ms() : now_ms;
    batches.push_back({
        {"id", b.id()},
        {"provider_batch_id", b.provider_batch_id()},
        {"state", BatchStateName(b.state())},
        {"provider_status", b.provider_status()},
        {"tasks", b.tasks()},
        {"answered", b.answered()},
        {"errored", b.errored()},
        {"not_run", b.not_run()},
        {"age_seconds", std::max<int64_t>(end - b.created_ms(), 0) / 1000.0},
        {"error", b.error()},
    });
  }
  j["batches"] = std::move(batches);
  const v1::TeacherStatus& t = job.teacher_status();
  j["teacher_status"] = {
      {"name", t.name()},
      {"window_s", t.window_ms() / 1000.0},
      {"effective_rpm", t.effective_rpm()},
      {"effective_tpm", t.effective_tpm()},
      {"configured_rpm", t.configured_rpm()},
      {"configured_tpm", t.configured_tpm()},
      {"max_concurrency", t.max_concurrency()},
      {"learning", t.learning()},
      {"paused", t.paused()},
      {"pause_reason", t.pause_reason()},
      {"rate_limited_total", t.rate_limited_total()},
      {"errors_total", t.errors_total()},
      {"live_workers", t.live_workers()},
  };
  j["waiting"] = Waiting(job);
  return j.dump();
}

std::string VerifySummary(const v1::Job& job) {
  const v1::JobCounters& c = job.counters();
  std::string out;
  if (!job.spec().json_schema().empty()) {
    out = absl::StrFormat("schema %s: %d answers did not match and were "
                          "asked again",
                          job.spec().json_schema_name(), c.schema_failures());
  }
  if (job.spec().verify().empty()) return out;
  if (!out.empty()) out += "; ";
  absl::StrAppend(&out, absl::StrFormat("verified %d rejected %d",
                                        c.verified_answers(),
                                        c.rejected_answers()));
  if (c.unverifiable_answers() > 0) {
    absl::StrAppend(&out, " no-reference ", c.unverifiable_answers());
  }
  if (c.prompts() > 0) {
    absl::StrAppend(
        &out, absl::StrFormat(" pass %.1f%% (%d/%d prompts with >= %d) "
                              "samples/prompt %.2f",
                              100.0 * c.prompts_passed() / c.prompts(),
                              c.prompts_passed(), c.prompts(),
                              PassingAnswers(job.spec()),
                              static_cast<double>(c.tasks_total()) /
                                  c.prompts()));
  }
  return out;
}

std::string ProgressLine(const v1::Job& job, double rate_per_second) {
  const v1::JobCounters& c = job.counters();
  const int64_t settled = SettledTasks(job);
  const double pct =
      c.tasks_total() > 0 ? 100.0 * settled / c.tasks_total() : 100.0;
  std::string line = absl::StrFormat("%s %s %d/%d (%.1f%%)", job.id(),
                                     JobStateName(job.state()), settled,
                                     c.tasks_total(), pct);
  if (rate_per_second > 0) {
    absl::StrAppend(&line, absl::StrFormat(" %.1f/s", rate_per_second));
    if (!IsSettledForNow(job.state())) {
      absl::StrAppend(&line, " eta ",
                      FormatDuration((c.tasks_total() - settled) /
                                     rate_per_second));
    }
  }
  absl::StrAppend(&line, " failed ", c.tasks_failed(), " cached ",
                  c.cache_hits(), " dup ", c.duplicate_answers(),
                  " near-dup ", c.near_duplicate_answers(), " tokens ",
                  c.prompt_tokens() + c.completion_tokens(), " spend ",
                  FormatSpend(c.cost_usd()));
  if (std::string verify = VerifySummary(job); !verify.empty()) {
    absl::StrAppend(&line, " ", verify);
  }
  if (job.spec().mode() != v1::JOB_MODE_ONLINE) {
    absl::StrAppend(&line, " by-batch ", c.batch_answers(), " online ",
                    c.teacher_requests() - c.batch_answers(), " in-batches ",
                    c.tasks_in_batches());
  }
  if (std::string errors = TeacherErrors(job); !errors.empty()) {
    absl::StrAppend(&line, " teacher", errors);
  }
  if (!job.error().empty()) absl::StrAppend(&line, " error: ", job.error());
  if (std::string waiting = Waiting(job); !waiting.empty()) {
    absl::StrAppend(&line, " [", waiting, "]");
  }
  return line;
}

std::string ProgressBar(const v1::Job& job, double rate_per_second,
                        int width) {
  const v1::JobCounters& c = job.counters();
  const int64_t settled = SettledTasks(job);
  const double fraction =
      c.tasks_total() > 0
          ? std::clamp(static_cast<double>(settled) / c.tasks_total(), 0.0, 1.0)
          : 1.0;
  std::string figures =
      absl::StrFormat(" %5.1f%% %d/%d", 100 * fraction, settled, c.tasks_total());
  const std::string waiting = Waiting(job);
  if (IsSettledForNow(job.state())) {
    absl::StrAppend(&figures, " ", JobStateName(job.state()));
  } else if (!waiting.empty()) {
    // No ETA while nothing can move; the reason instead (cut to the width).
  } else if (rate_per_second > 0) {
    absl::StrAppend(&figures, absl::StrFormat(" %.1f/s", rate_per_second),
                    " eta ",
                    FormatDuration((c.tasks_total() - settled) /
                                   rate_per_second));
  } else {
    absl::StrAppend(&figures, " eta ?");
  }
  absl::StrAppend(&figures, " ", FormatSpend(c.cost_usd()), " ", c.tasks_failed(),
                  " failed", TeacherErrors(job));
  if (job.spec().mode() != v1::JOB_MODE_ONLINE) {
    // Batch progress: answers that came by batch, tasks still waiting in
    // open batches.
    absl::StrAppend(&figures, " by-batch ", c.batch_answers(), " in-batches ",
                    c.tasks_in_batches());
  }
  if (!waiting.empty()) absl::StrAppend(&figures, " | ", waiting);
  const std::string prefix = job.id() + " [";
  const int bar_width = std::max(
      10, width - DisplayWidth(prefix) - 1 - DisplayWidth(figures));
  // Eighths of a cell, so slow progress still moves the bar.
  static const char* const kPartial[] = {"",  "▏", "▎", "▍",
                                         "▌", "▋", "▊", "▉"};
  const int eighths = static_cast<int>(fraction * bar_width * 8);
  std::string bar;
  int cells = 0;
  for (; cells < eighths / 8; ++cells) bar += "█";
  if (cells < bar_width && eighths % 8 != 0) {
    bar += kPartial[eighths % 8];
    ++cells;
  }
  bar.append(bar_width - cells, ' ');
  return Truncate(prefix + bar + "]" + figures, std::max(width, 1));
}

std::string TeacherLine(const v1::TeacherStatus& t) {
  // Where a limit in force comes from: none known yet (not enforced),
  // the profile, or the teacher (its headers or its 429s).
  auto limit = [&t](double effective) -> std::string {
    if (effective <= 0) return t.learning() ? "unknown yet" : "no limit";
    return absl::StrFormat("%.0f", effective);
  };
  std::string source;
  if (t.learning()) {
    source = " (no limit known yet: full concurrency until a 429)";
  } else if ((t.effective_rpm() > 0 &&
              t.effective_rpm() != t.configured_rpm()) ||
             (t.effective_tpm() > 0 &&
              t.effective_tpm() != t.configured_tpm())) {
    source = " (learned from the teacher)";
  }
  std::string line = absl::StrFormat(
      "teacher %s: %s rpm, %s tpm per %ds window%s, max concurrency %s, "
      "%d live workers, %d errors, 429s %d",
      t.name(), limit(t.effective_rpm()), limit(t.effective_tpm()),
      static_cast<int>(t.window_ms() / 1000), source,
      t.max_concurrency() > 0 ? std::to_string(t.max_concurrency())
                              : std::string("none"),
      t.live_workers(), t.errors_total(), t.rate_limited_total());
  if (t.paused()) absl::StrAppend(&line, ", PAUSED: ", t.pause_reason());
  return line;
}

}  // namespace distillery::cli
