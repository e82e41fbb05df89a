// The distillery CLI's commands that talk to a running coordinator over
// gRPC (submit, status, jobs, watch, cancel, resume, retry, health; export
// is in export_command.h, `run`'s embedded cluster in embedded_cluster.h),
// apart from flag parsing: each takes a stub, its options and the streams to
// print to, and returns the process exit code. Errors go to `err` as one
// line starting "error: ". What they draw is in progress.h. The functions
// are stateless; Interrupter is thread-safe.
#ifndef DISTILLERY_SERVICES_CLI_COMMANDS_H_
#define DISTILLERY_SERVICES_CLI_COMMANDS_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include "absl/synchronization/mutex.h"
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
  mutable absl::Mutex mu_;
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Waits (up to `timeout`) until `channel` connects to the coordinator at
// `target`. UNAVAILABLE "cannot reach the coordinator at TARGET (...)" when
// it cannot: a refused connection, an unknown host, a failed TLS handshake.
absl::Status ConnectToCoordinator(grpc::Channel& channel,
                                  const std::string& target, bool tls,
                                  std::chrono::milliseconds timeout);

struct SubmitOptions {
  std::string file;
  // Set: `file` holds dataset rows, each made a prompt line by this template
  // (row_template.h) before it is sent.
  std::string template_file;
  v1::JobSpec spec;
  // A longer line fails the submission locally, read but never held whole.
  size_t max_prompt_bytes = kDefaultMaxPromptBytes;
  // Set: Ctrl-C cancels the submission (the coordinator keeps nothing).
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

// The canonical code and message of a gRPC status (the codes are the same
// numbers in gRPC and Abseil).
absl::Status FromGrpcStatus(const grpc::Status& status);
// Prints `status` as "error: MESSAGE" and returns the exit code for it: 2
// for INVALID_ARGUMENT and NOT_FOUND (bad usage or input, an unknown job),
// 1 for the rest.
int PrintCommandError(std::ostream& err, const absl::Status& status);
int PrintCommandError(std::ostream& err, const grpc::Status& status);

// The job `job_id` as the coordinator has it now (GetJob); its error is the
// call's, NOT_FOUND for an unknown job.
absl::StatusOr<v1::Job> FetchJob(v1::ClientService::StubInterface& stub,
                                 const std::string& job_id);

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
// grpc.health.v1.Health/Check on the coordinator: 0 and "SERVING" when it
// serves, 1 otherwise. Needs no token: container health checks call it.
int Health(grpc::health::v1::Health::StubInterface& stub, std::ostream& out,
           std::ostream& err);

}  // namespace distillery::cli

#endif  // DISTILLERY_SERVICES_CLI_COMMANDS_H_
