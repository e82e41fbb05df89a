// The CLI's rendering of a job for people and scripts: the progress line and
// bar that `watch` and `run` draw, `status`'s teacher line and `--json`
// object, and the small formatting pieces they share. Pure functions of a
// v1::Job (no RPC, no terminal I/O); RateMeter is not thread-safe, the rest
// is stateless.
#ifndef DISTILLERY_SERVICES_CLI_PROGRESS_H_
#define DISTILLERY_SERVICES_CLI_PROGRESS_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "distillery/v1/client_service.pb.h"

namespace distillery::cli {

// Tasks answered or dead-lettered.
int64_t SettledTasks(const v1::Job& job);

// A --verify job's check results: "verified 80 rejected 20 pass 80.0%
// (80/100 prompts with >= 1) samples/prompt 1.25"; "" for other jobs.
std::string VerifySummary(const v1::Job& job);

// One progress line: "job-000001 running 1200/2000 (60.0%) 350.0/s eta 2s
// failed 0 cached 0 dup 3 tokens 81234 spend $0.0123". A rate <= 0 is left
// out, and so is the ETA of a finished job.
std::string ProgressLine(const v1::Job& job, double rate_per_second);
// The same figures as a bar for a terminal `width` columns wide:
// "job-000001 [█████▌      ] 60.0% 1200/2000 350.0/s eta 2s $0.0123 0 failed
// 7 errors 3 429s" (the teacher's errors and 429s when there were any; in
// place of the ETA, why nothing moves: a paused teacher, no live worker).
// Never wider than `width` (the bar shrinks, then the figures are cut).
std::string ProgressBar(const v1::Job& job, double rate_per_second, int width);
// "42s", "3m05s", "2h04m": for ETAs.
std::string FormatDuration(double seconds);
// "$0.0123", or "$123.45" from $100 up.
std::string FormatSpend(double usd);
// "no live worker serves teacher X (...)": shown by submit, status, watch.
std::string NoLiveWorkerMessage(const std::string& teacher);
// `status`'s teacher line: its limits in force and where they come from,
// live workers, errors and 429s, and any pause with its reason.
std::string TeacherLine(const v1::TeacherStatus& teacher);
// Every counter of the job, plus what scripts want to compute less:
// settled, pending, percent, elapsed_seconds, rate_per_second (over the
// job's life), eta_seconds (null when unknown), cost_usd. `now_ms` is wall
// time, for the elapsed time of a running job.
// "creating", "open", ... (JobModeName is in common/job/job_state.h).
const char* BatchStateName(v1::BatchState state);
// One line per batch of the job ("  batch ID STATE PROVIDER-ID tasks ..."),
// oldest first; "" for a job without batches.
std::string BatchLines(const v1::Job& job, int64_t now_ms);
std::string JobJson(const v1::Job& job, int64_t now_ms);

// Progress per second over the last kWindow seconds of updates, so the ETA
// follows the current pace rather than the average since the start. Not
// thread-safe.
class RateMeter {
 public:
  // `now` in seconds on any steady clock; `settled` tasks at that moment.
  void Add(double now, int64_t settled);
  // 0 until updates span half a second.
  double Rate() const;

 private:
  static constexpr double kWindow = 10;
  std::deque<std::pair<double, int64_t>> samples_;
};

}  // namespace distillery::cli

#endif  // DISTILLERY_SERVICES_CLI_PROGRESS_H_
