// The distillery CLI's commands, apart from flag parsing: each takes its
// options and the streams to print to, and returns the process exit code.
// Errors go to `err` as one line starting "error: ".
#ifndef DISTILLERY_SERVICES_CLI_COMMANDS_H_
#define DISTILLERY_SERVICES_CLI_COMMANDS_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/dataset/prompt_parser.h"
#include "distillery/v1/client_service.grpc.pb.h"
#include "health.grpc.pb.h"  // grpc.health.v1 from grpc-proto

namespace distillery::cli {

// The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells
// report it).
inline constexpr int kExitInterrupted = 130;

// Lets another thread (the one waiting for SIGINT) stop a long command: the
// call it is blocked in is cancelled, and the command returns
// kExitInterrupted. Thread-safe.
class Interrupter {
 public:
  void Interrupt();
  bool interrupted() const;
  // Until Detach, Interrupt() cancels `context` (at once when it already
  // happened). One context at a time.
  void Attach(grpc::ClientContext* context);
  void Detach();

 private:
  mutable std::mutex mu_;
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Waits (up to `timeout`) until `channel` connects to the coordinator at
// `target`. UNAVAILABLE "cannot reach the coordinator at TARGET (...)" when
// it cannot: a refused connection, an unknown host, a failed TLS handshake.
absl::Status ConnectToCoordinator(grpc::Channel& channel,
                                  const std::string& target, bool tls,
                                  std::chrono::milliseconds timeout);

// The finish reasons teachers report (OpenAI-compatible servers, Anthropic,
// DeepSeek), for `--finish-reason`.
const std::vector<std::string>& KnownFinishReasons();

struct SubmitOptions {
  std::string file;
  v1::JobSpec spec;
  // A longer line fails the submission locally, read but never held whole.
  size_t max_prompt_bytes = kDefaultMaxPromptBytes;
  // Set: Ctrl-C cancels the submission (the coordinator keeps nothing).
  Interrupter* interrupt = nullptr;
};

struct ExportOptions {
  std::vector<std::string> job_ids;  // exported in this order, once each
  std::string format = "openai";     // openai, sharegpt, raw, errors
  std::string reasoning = "field";   // field, think-tags, drop
  std::string out;  // empty: stdout
  bool include_duplicates = false;
  bool include_failed = false;
  // Answers kept by finish reason; "any" anywhere in the list keeps all.
  std::vector<std::string> finish_reasons = {"stop", "end_turn"};
  std::vector<std::string> teachers;
  std::vector<std::string> models;
  int64_t min_chars = 0, max_chars = 0, min_tokens = 0, max_tokens = 0;
  std::vector<std::string> metadata;  // KEY=VALUE, all must match
  double near_dup_threshold = 0;      // 0: keep near-duplicates
  std::string split;                  // "train=0.95,test=0.05"; needs `out`
  uint64_t seed = 0;                  // of the split assignment
};

// The server-side part of `options` (the format's and filters' request).
// INVALID_ARGUMENT for a bad --metadata or a finish reason no teacher
// reports (a typo would export nothing).
absl::StatusOr<v1::ExportRequest> BuildExportRequest(
    const ExportOptions& options);

struct RunOptions {
  SubmitOptions submit;  // its file is empty when resuming
  std::string teachers_file;
  int workers = 2;
  std::string data_dir = ".distillery";
  bool sync_writes = false;  // see the coordinator's --sync-writes
  ExportOptions export_options;
  // The progress display, as `watch` draws it: a bar redrawn in place on a
  // terminal `progress_width` columns wide, else plain lines.
  bool progress_tty = false;
  int progress_width = 80;
  // Set: harvest (and export) this job of the data dir, left unfinished by
  // an interrupted run, instead of submitting a file.
  std::string resume_job;
  // Set: Ctrl-C stops the run (see Run).
  Interrupter* interrupt = nullptr;
};

// `watch`'s exit codes (README "Watching a job"). 1 and 2 are the codes of
// every command: the command failed; bad usage or an unknown job.
inline constexpr int kExitPaused = 3;       // paused at its budget
inline constexpr int kExitDeadLetters = 4;  // completed, some tasks failed
inline constexpr int kExitFailed = 5;       // every task failed
inline constexpr int kExitCancelled = 6;
// The code `watch` exits with when it sees `job` last: 0 when it completed
// with every task answered, else one of the above (1 for a state watch does
// not stop in).
int WatchExitCode(const v1::Job& job);

// Exit codes: 0 ok, 1 the operation failed, 2 bad usage or input.
int Submit(v1::ClientService::StubInterface& stub, const SubmitOptions& options,
           std::ostream& out, std::ostream& err);
int Status(v1::ClientService::StubInterface& stub, const std::string& job_id,
           bool json, std::ostream& out, std::ostream& err);
int Jobs(v1::ClientService::StubInterface& stub, std::ostream& out,
         std::ostream& err);
// Follows the job until it ends or pauses. When `tty`, one progress bar
// `width` columns wide, redrawn in place; otherwise a plain ProgressLine at
// most once a second and at the end. Returns WatchExitCode of the last state
// seen, kExitInterrupted when `interrupt` fired, or 1 or 2 when the watch
// itself failed.
int Watch(v1::ClientService::StubInterface& stub, const std::string& job_id,
          bool tty, std::ostream& out, std::ostream& err, int width = 80,
          Interrupter* interrupt = nullptr);
int Cancel(v1::ClientService::StubInterface& stub, const std::string& job_id,
           std::ostream& out, std::ostream& err);
// Resumes a job paused at its budget; `budget_usd` > 0 raises the budget.
int ResumeJob(v1::ClientService::StubInterface& stub, const std::string& job_id,
              double budget_usd, std::ostream& out, std::ostream& err);
int ResumeTeacher(v1::ClientService::StubInterface& stub,
                  const std::string& teacher, std::ostream& out,
                  std::ostream& err);
// Sends the job's dead-lettered tasks back to be harvested again.
int Retry(v1::ClientService::StubInterface& stub, const std::string& job_id,
          std::ostream& out, std::ostream& err);
int Export(v1::ClientService::StubInterface& stub,
           const ExportOptions& options, std::ostream& out, std::ostream& err);
// grpc.health.v1.Health/Check on the coordinator: 0 and "SERVING" when it
// serves, 1 otherwise. Needs no token: container health checks call it.
int Health(grpc::health::v1::Health::StubInterface& stub, std::ostream& out,
           std::ostream& err);
// A whole cluster in this process: coordinator on an embedded RocksDB,
// workers, submit, watch, export, and a summary of what it cost. Only the
// job it submits (or `resume_job`) is harvested: unfinished jobs of earlier
// runs in the data dir are named and left as they are. On `interrupt` the
// workers stop (requests in flight finish and are stored), the job is kept,
// nothing is exported, the summary and the command that resumes the job are
// printed, and it returns kExitInterrupted.
int Run(const RunOptions& options, std::ostream& out, std::ostream& err);

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
// "no live worker serves teacher X (...)": shown by submit, status, watch.
std::string NoLiveWorkerMessage(const std::string& teacher);
// `status`'s teacher line: its limits in force and where they come from,
// live workers, errors and 429s, and any pause with its reason.
std::string TeacherLine(const v1::TeacherStatus& teacher);
// Every counter of the job, plus what scripts want to compute less:
// settled, pending, percent, elapsed_seconds, rate_per_second (over the
// job's life), eta_seconds (null when unknown), cost_usd. `now_ms` is wall
// time, for the elapsed time of a running job.
std::string JobJson(const v1::Job& job, int64_t now_ms);

}  // namespace distillery::cli

#endif  // DISTILLERY_SERVICES_CLI_COMMANDS_H_
