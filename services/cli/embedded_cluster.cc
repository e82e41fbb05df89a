#include "services/cli/embedded_cluster.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/app/startup.h"
#include "common/config/teachers.h"
#include "common/dataset/export_format.h"
#include "common/http/curl_http_client.h"
#include "common/job/job_state.h"
#include "common/rpc/grpc_security.h"
#include "services/cli/progress.h"
#include "services/coordinator/coordinator_server.h"
#include "services/worker/teacher_factory.h"
#include "services/worker/worker.h"

namespace distillery::cli {
namespace {

// The embedded workers' way to the coordinator in the same process: its
// methods called directly, as the gRPC service would (grpc_services.cc is
// that thin), with no request or answer serialised and parsed back. The
// worker sends only well-formed UTF-8 (it repairs teachers' text), which
// is all the gRPC parse would have checked.
class DirectCoordinatorClient : public CoordinatorClient {
 public:
  explicit DirectCoordinatorClient(Coordinator& coordinator)
      : coordinator_(coordinator) {}

  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) override {
    return coordinator_.Register(request);
  }
  absl::StatusOr<v1::LeaseResponse> Lease(
      const v1::LeaseRequest& request) override {
    if (waits_ended_.load() && request.wait_ms() > 0) {
      v1::LeaseRequest at_once = request;
      at_once.set_wait_ms(0);
      return coordinator_.Lease(at_once);
    }
    return coordinator_.Lease(request);
  }
  // The run's end stops the workers: an idle one's long poll ends at once
  // instead of at its wait_ms.
  void EndLeaseWaits() override {
    waits_ended_.store(true);
    coordinator_.EndLeaseWaits();
  }
  absl::StatusOr<v1::ReportResponse> Report(
      const v1::ReportRequest& request) override {
    return coordinator_.Report(request);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override {
    return coordinator_.Heartbeat(request);
  }
  absl::StatusOr<v1::LeaseBatchStepResponse> LeaseBatchStep(
      const v1::LeaseBatchStepRequest& request) override {
    return coordinator_.LeaseBatchStep(request);
  }
  absl::StatusOr<v1::BatchStepReportResponse> ReportBatchStep(
      const v1::BatchStepReport& report) override {
    return coordinator_.ReportBatchStep(report);
  }

 private:
  Coordinator& coordinator_;
  std::atomic<bool> waits_ended_{false};
};

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}


// `text` as one shell word.
std::string ShellQuote(const std::string& text) {
  if (!text.empty() &&
      text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
                             "XYZ0123456789-_./=:,+@%") == std::string::npos) {
    return text;
  }
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// The command that goes on with `job_id` as `options` would have.
std::string ResumeCommand(const RunOptions& options, const std::string& job_id) {
  std::string command =
      absl::StrCat("distillery run --resume ", ShellQuote(job_id),
                   " --teachers ", ShellQuote(options.teachers_file),
                   " --data-dir ", ShellQuote(options.data_dir));
  const RunOptions defaults;
  if (options.workers != defaults.workers) {
    absl::StrAppend(&command, " --workers ", options.workers);
  }
  const ExportOptions& e = options.export_options;
  absl::StrAppend(&command, " --out ", ShellQuote(e.out));
  if (e.format != defaults.export_options.format) {
    absl::StrAppend(&command, " --format ", ShellQuote(e.format));
  }
  if (e.reasoning != defaults.export_options.reasoning) {
    absl::StrAppend(&command, " --reasoning ", ShellQuote(e.reasoning));
  }
  return command;
}

}  // namespace

int Run(const RunOptions& options, std::ostream& out, std::ostream& err) {
  const double start = NowSeconds();
  const bool resuming = !options.resume_job.empty();
  {
    // The export's flags are checked before anything is paid for.
    ExportOptions check = options.export_options;
    check.job_ids = {"-"};
    absl::StatusOr<v1::ExportRequest> request = BuildExportRequest(check);
    absl::Status bad = request.status();
    if (!bad.ok()) {
      err << "error: " << bad.message() << "\n";
      return 2;
    }
  }
  absl::StatusOr<std::vector<TeacherProfile>> profiles =
      LoadTeachersFile(options.teachers_file);
  if (!profiles.ok()) {
    err << "error: " << profiles.status().message() << "\n";
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  CoordinatorServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.data_dir = options.data_dir;
  server_options.sync_writes = options.sync_writes;
  server_options.teachers = *profiles;
  server_options.coordinator.lease_duration = std::chrono::seconds(120);
  server_options.coordinator.heartbeat_interval = std::chrono::seconds(2);
  // Only the job of this run is harvested: an earlier run's unfinished job
  // is paid for when the user asks for it (--resume), not behind their back.
  server_options.coordinator.hold_recovered_jobs = true;
  if (resuming) {
    server_options.coordinator.resume_recovered_jobs = {options.resume_job};
  }
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(server_options);
  if (!server.ok()) {
    err << "error: " << server.status().message() << "\n";
    return 1;
  }
  // Plaintext on loopback: MakeChannel cannot fail without files to read.
  auto channel = *MakeChannel((*server)->address(), ClientSecurityOptions{});
  auto stub = v1::ClientService::NewStub(channel);

  std::string teacher = options.submit.spec.teacher();
  v1::JobCounters before;  // of the resumed job, to count this run's part
  if (resuming) {
    absl::StatusOr<v1::Job> job = FetchJob(*stub, options.resume_job);
    if (!job.ok()) {
      err << "error: --resume: " << job.status().message() << " in "
          << options.data_dir << "\n";
      return 2;
    }
    teacher = job->spec().teacher();
    before = job->counters();
  }
  if (absl::StatusOr<TeacherProfile> p = FindTeacher(*profiles, teacher);
      !p.ok()) {
    err << "error: " << p.status().message() << "\n";
    return 2;
  }
  std::vector<std::string> left;  // unfinished jobs this run leaves alone
  for (const v1::Job& job : (*server)->coordinator().ListJobs()) {
    if (job.id() == options.resume_job) continue;
    if (job.state() != v1::JOB_STATE_RUNNING &&
        job.state() != v1::JOB_STATE_PAUSED) {
      continue;
    }
    left.push_back(absl::StrFormat(
        "%s (%s, %s %d/%d)", job.id(), job.spec().source(),
        JobStateName(job.state()), SettledTasks(job), job.counters().tasks_total()));
  }
  if (!left.empty()) {
    err << "note: " << options.data_dir << " holds " << left.size()
        << " unfinished job(s) of earlier runs, left as they are (not "
           "harvested, nothing spent on them): "
        << absl::StrJoin(left, ", ") << "; to finish one: "
        << ResumeCommand(options, "JOB") << "\n";
  }

  // Reset before the workers are destroyed: its destructor completes what
  // is still in flight, and those callbacks reach the workers. Sized as a
  // distillery-worker sizes its own: a connection for each request every
  // embedded worker may have in flight (curl's default of 64 per host
  // queued the rest of them).
  const int in_flight = WorkerOptions().max_in_flight;
  CurlHttpClientOptions http_options;
  http_options.max_connections = std::max(1, options.workers) * in_flight;
  http_options.max_connections_per_host = http_options.max_connections;
  // And the open files they need, as far as the hard limit allows.
  const rlim_t files_needed =
      static_cast<rlim_t>(http_options.max_connections) + 256;
  if (const rlim_t files = RaiseOpenFileLimit(files_needed);
      files != 0 && files < files_needed) {
    err << "warning: the open-file limit " << files << " is below the "
        << files_needed << " that " << std::max(1, options.workers)
        << " embedded workers need; raise it (ulimit -n)\n";
  }
  auto http = std::make_unique<CurlHttpClient>(http_options);
  WorkerTeacherSet teachers = BuildWorkerTeachers(*profiles, *http, teacher);
  if (teachers.teachers.empty()) {
    err << "error: teacher '" << teacher
        << "' has no usable API key (see the warning above)\n";
    return 2;
  }
  std::vector<std::unique_ptr<CoordinatorClient>> clients;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < std::max(1, options.workers); ++i) {
    clients.push_back(
        std::make_unique<DirectCoordinatorClient>((*server)->coordinator()));
    WorkerOptions wo;
    wo.name = absl::StrCat("embedded-", i + 1);
    workers.push_back(std::make_unique<Worker>(
        *clients.back(), teachers.teachers, RealClock::Get(), wo));
    Worker* w = workers.back().get();
    threads.emplace_back([w] { (void)w->Run(); });
  }

  std::string job_id = options.resume_job;
  int rc = 0;
  if (!resuming) {
    SubmitOptions submit = options.submit;
    submit.interrupt = options.interrupt;
    std::stringstream job_id_out;
    rc = Submit(*stub, submit, job_id_out, err);
    std::getline(job_id_out, job_id);
  }
  if (rc == 0) {
    rc = Watch(*stub, job_id, options.progress_tty, err, err,
               options.progress_width, options.interrupt);
  }
  const bool interrupted = rc == kExitInterrupted;
  if (interrupted) {
    err << "\ninterrupted: stopping; answers of requests in flight are "
           "waited for and kept (Ctrl-C again quits at once)\n";
  }
  // The workers stop first, so the job's counters below are final.
  for (auto& w : workers) w->Stop();
  for (auto& t : threads) t.join();
  v1::Job job;
  if (!job_id.empty()) {
    if (absl::StatusOr<v1::Job> got = FetchJob(*stub, job_id); got.ok()) {
      job = std::move(*got);
    }
  }
  int export_rc = 1;
  if (!job_id.empty() && !interrupted) {
    ExportOptions export_options = options.export_options;
    export_options.job_ids = {job_id};
    // Straight from the coordinator in this process: no record is
    // serialised for gRPC and parsed back.
    Coordinator& coordinator = (*server)->coordinator();
    const ExportRecordSource direct =
        [&coordinator](const v1::ExportRequest& request,
                       const std::function<bool(v1::ExportRecord&&)>& emit,
                       v1::ExportSummary* summary) {
          ExportCounts counts;
          int64_t records = 0;
          absl::Status s = coordinator.Export(
              request,
              [&](v1::ExportRecord&& record) {
                ++records;
                return emit(std::move(record));
              },
              &counts);
          summary->set_records(records);
          summary->set_duplicates_left_out(counts.duplicates_left_out);
          summary->set_near_duplicates_left_out(
              counts.near_duplicates_left_out);
          return s;
        };
    export_rc = Export(*stub, direct, export_options, out, err);
  }
  int64_t sent = 0;  // every attempt, retries too: what the teacher saw
  for (const auto& w : workers) sent += w->requests_sent();
  http.reset();
  (*server)->Shutdown();
  if (job_id.empty()) return rc;

  const v1::JobCounters& c = job.counters();
  err << absl::StrFormat(
      "\nsummary: %d prompts, %d answers (%d from cache), %d failed, %d "
      "duplicate answers, %d near-duplicate answers, %d prompt + %d "
      "completion tokens (%d reasoning), %s\n"
      "this run: %d teacher requests sent (retries included), %s, %.1fs\n",
      c.prompts(), c.tasks_done(), c.cache_hits(), c.tasks_failed(),
      c.duplicate_answers(), c.near_duplicate_answers(), c.prompt_tokens(),
      c.completion_tokens(), c.reasoning_tokens(), FormatSpend(c.cost_usd()), sent,
      FormatSpend(c.cost_usd() - before.cost_usd()), NowSeconds() - start);
  if (std::string verify = VerifySummary(job); !verify.empty()) {
    err << "checks: " << verify << "\n";
  }
  if (interrupted) {
    err << "job " << job_id << " is kept in " << options.data_dir << " ("
        << JobStateName(job.state()) << ", " << SettledTasks(job) << "/"
        << c.tasks_total() << " settled); nothing was exported. Resume it "
        << "with:\n  " << ResumeCommand(options, job_id) << "\n";
    return kExitInterrupted;
  }
  return rc != 0 ? rc : export_rc;
}

}  // namespace distillery::cli
