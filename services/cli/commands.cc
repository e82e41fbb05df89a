#include "services/cli/commands.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/dataset/row_template.h"
#include "common/job/job_state.h"
#include "common/rpc/coordinator_address.h"
#include "common/rpc/message_limits.h"
#include "services/cli/progress.h"

namespace distillery::cli {
namespace {

// A template file is text; 1 MiB is far more than any prompt needs.
constexpr std::uintmax_t kMaxTemplateBytes = std::uintmax_t{1} << 20;

absl::StatusOr<RowTemplate> LoadTemplate(const std::string& path) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec || std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read template file '", path, "'"));
  }
  if (size > kMaxTemplateBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("template file '", path, "' is ", size,
                     " bytes, over the limit of ", kMaxTemplateBytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read template file '", path, "'"));
  }
  absl::StatusOr<RowTemplate> parsed = RowTemplate::Parse(text.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

// Whitespace only: the prompt parser skips such lines, so they are sent as
// they are, keeping the line numbers of the rows.
bool IsBlankLine(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

constexpr size_t kSubmitChunkBytes = 512 << 10;
constexpr int kSubmitChunkLines = 4096;

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  // The canonical codes are the same numbers in gRPC and Abseil.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

int PrintCommandError(std::ostream& err, const absl::Status& status) {
  err << "error: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ||
                 status.code() == absl::StatusCode::kNotFound
             ? 2
             : 1;
}

int PrintCommandError(std::ostream& err, const grpc::Status& status) {
  return PrintCommandError(err, FromGrpcStatus(status));
}

absl::StatusOr<v1::Job> FetchJob(v1::ClientService::StubInterface& stub,
                                 const std::string& job_id) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status s = stub.GetJob(&context, request, &job);
  if (!s.ok()) return FromGrpcStatus(s);
  return job;
}

void Interrupter::Interrupt() {
  absl::MutexLock lock(&mu_);
  interrupted_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool Interrupter::interrupted() const {
  absl::MutexLock lock(&mu_);
  return interrupted_;
}

void Interrupter::Attach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  context_ = context;
  if (interrupted_) context_->TryCancel();
}

void Interrupter::Detach() {
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
}

absl::Status ConnectToCoordinator(grpc::Channel& channel,
                                  const std::string& target, bool tls,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::system_clock::now() + timeout;
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  // A refused connection or an unknown host shows as TRANSIENT_FAILURE at
  // once; waiting out gRPC's reconnect backoff would only delay the error.
  while (state != GRPC_CHANNEL_READY &&
         state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
         state != GRPC_CHANNEL_SHUTDOWN &&
         channel.WaitForStateChange(state, deadline)) {
    state = channel.GetState(/*try_to_connect=*/true);
  }
  if (state == GRPC_CHANNEL_READY) return absl::OkStatus();
  std::string message = CannotReachCoordinator(target);
  if (tls) {
    message.pop_back();
    absl::StrAppend(&message, "; with TLS, also check --tls-ca and "
                              "--tls-server-name)");
  }
  return absl::UnavailableError(message);
}

int WatchExitCode(const v1::Job& job) {
  switch (job.state()) {
    case v1::JOB_STATE_COMPLETED:
      return job.counters().tasks_failed() > 0 ? kExitDeadLetters : 0;
    case v1::JOB_STATE_PAUSED:
      return kExitPaused;
    case v1::JOB_STATE_FAILED:
      return kExitFailed;
    case v1::JOB_STATE_CANCELLED:
      return kExitCancelled;
    default:
      return 1;
  }
}


int Submit(v1::ClientService::StubInterface& stub, const SubmitOptions& options,
           std::ostream& out, std::ostream& err) {
  std::error_code ec;
  if (std::filesystem::is_directory(options.file, ec)) {
    err << "error: '" << options.file
        << "' is a directory; give a JSONL prompt file\n";
    return 2;
  }
  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    err << "error: cannot open prompt file '" << options.file << "'\n";
    return 2;
  }
  std::optional<RowTemplate> row_template;
  if (!options.template_file.empty()) {
    absl::StatusOr<RowTemplate> parsed = LoadTemplate(options.template_file);
    if (!parsed.ok()) {
      err << "error: " << parsed.status().message() << "\n";
      return 2;
    }
    row_template = std::move(*parsed);
  }
  grpc::ClientContext context;
  if (options.interrupt != nullptr) options.interrupt->Attach(&context);
  struct DetachOnReturn {
    Interrupter* interrupt;
    ~DetachOnReturn() {
      if (interrupt != nullptr) interrupt->Detach();
    }
  } detach{options.interrupt};
  v1::SubmitResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<v1::SubmitRequest>> writer =
      stub.Submit(&context, &response);
  v1::SubmitRequest request;
  *request.mutable_spec() = options.spec;
  if (request.spec().source().empty()) {
    request.mutable_spec()->set_source(
        std::filesystem::path(options.file).filename().string());
  }
  size_t bytes = 0;
  std::string line;
  size_t length = 0;
  int64_t line_number = 0;
  bool stream_ok = true;
  // The file's read errors (EIO, say) surface as exceptions from its
  // buffer: end the submission, which then stores nothing.
  auto read_line = [&]() -> bool {
    try {
      return ReadBoundedLine(in, options.max_prompt_bytes, &line, &length);
    } catch (const std::exception&) {
      in.setstate(std::ios::badbit);
      return false;
    }
  };
  while (stream_ok && read_line()) {
    ++line_number;
    if (length > options.max_prompt_bytes) {
      // Refused here, before a byte of it is sent; cancelling the stream
      // makes the coordinator drop what it has stored of the submission.
      context.TryCancel();
      (void)writer->Finish();
      err << "error: " << options.file << ": "
          << PromptTooLargeError(line_number, length, options.max_prompt_bytes)
                 .message()
          << "\n";
      return 2;
    }
    if (row_template && !IsBlankLine(line)) {
      absl::StatusOr<std::string> rendered =
          row_template->Render(line, line_number);
      if (rendered.ok() && rendered->size() > options.max_prompt_bytes) {
        rendered = PromptTooLargeError(line_number, rendered->size(),
                                       options.max_prompt_bytes);
      }
      if (!rendered.ok()) {
        context.TryCancel();
        (void)writer->Finish();
        err << "error: " << options.file << ": " << rendered.status().message()
            << "\n";
        return 2;
      }
      line = std::move(*rendered);
    }
    // A chunk goes out before a line would take it past kSubmitChunkBytes,
    // so it fits the smallest --max-message-mb (1 MiB) with its one line.
    if (request.lines_size() > 0 &&
        (bytes + line.size() > kSubmitChunkBytes ||
         request.lines_size() >= kSubmitChunkLines)) {
      stream_ok = writer->Write(request);
      request.Clear();
      bytes = 0;
      if (!stream_ok) break;
    }
    bytes += RepeatedEntryBytes(line.size());
    request.add_lines(std::move(line));
  }
  if (in.bad()) {
    // Cancelled before WritesDone: the coordinator drops the submission.
    context.TryCancel();
    (void)writer->Finish();
    err << "error: reading '" << options.file << "' failed\n";
    return 1;
  }
  if (stream_ok && (request.lines_size() > 0 || request.has_spec())) {
    stream_ok = writer->Write(request);
  }
  if (stream_ok) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok() && options.interrupt != nullptr &&
      options.interrupt->interrupted()) {
    err << "interrupted: nothing of '" << options.file << "' was submitted\n";
    return kExitInterrupted;
  }
  if (!status.ok()) {
    // Only the file's own faults (a bad line, a bad spec) name the file.
    absl::Status failed = FromGrpcStatus(status);
    if (failed.code() == absl::StatusCode::kInvalidArgument) {
      failed = absl::InvalidArgumentError(
          absl::StrCat(options.file, ": ", failed.message()));
    }
    return PrintCommandError(err, failed);
  }
  err << "submitted " << response.job().counters().prompts() << " prompts ("
      << response.job().counters().tasks_total() << " tasks) as job "
      << response.job().id() << "\n";
  if (response.job().teacher_status().live_workers() == 0) {
    err << "warning: " << NoLiveWorkerMessage(response.job().spec().teacher())
        << "; the job waits until one registers\n";
  }
  out << response.job().id() << std::endl;
  return 0;
}

int Status(v1::ClientService::StubInterface& stub, const std::string& job_id,
           bool json, std::ostream& out, std::ostream& err) {
  absl::StatusOr<v1::Job> fetched = FetchJob(stub, job_id);
  if (!fetched.ok()) return PrintCommandError(err, fetched.status());
  const v1::Job& job = *fetched;
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  if (json) {
    out << JobJson(job, now_ms) << "\n";
  } else {
    const double elapsed =
        ((job.finished_ms() ? job.finished_ms() : now_ms) - job.created_ms()) /
        1000.0;
    const int64_t settled = SettledTasks(job);
    const double rate = elapsed > 0.5 ? settled / elapsed : 0.0;
    out << ProgressLine(job, rate) << "\n";
    const v1::TeacherStatus& t = job.teacher_status();
    out << TeacherLine(t) << "\n";
    out << BatchLines(job, now_ms);
  }
  return 0;
}

int Jobs(v1::ClientService::StubInterface& stub, std::ostream& out,
         std::ostream& err) {
  grpc::ClientContext context;
  v1::ListJobsResponse response;
  grpc::Status s = stub.ListJobs(&context, v1::ListJobsRequest(), &response);
  if (!s.ok()) return PrintCommandError(err, s);
  out << absl::StrFormat("%-12s %-10s %-12s %-20s %10s %10s\n", "JOB", "STATE",
                         "TEACHER", "MODEL", "DONE", "TOTAL");
  for (const v1::Job& job : response.jobs()) {
    out << absl::StrFormat("%-12s %-10s %-12s %-20s %10d %10d\n", job.id(),
                           JobStateName(job.state()), job.spec().teacher(),
                           job.spec().model(), job.counters().tasks_done(),
                           job.counters().tasks_total());
  }
  return 0;
}

int Health(grpc::health::v1::Health::StubInterface& stub, std::ostream& out,
           std::ostream& err) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(3));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = stub.Check(&context, grpc::health::v1::HealthCheckRequest(),
                              &response);
  if (!s.ok()) {
    (void)PrintCommandError(err, s);  // always 1: not serving
    return 1;
  }
  out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
             response.status())
      << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? 0
             : 1;
}

int Watch(v1::ClientService::StubInterface& stub, const std::string& job_id,
          bool tty, std::ostream& out, std::ostream& err, int width,
          Interrupter* interrupt) {
  auto interrupted = [interrupt] {
    return interrupt != nullptr && interrupt->interrupted();
  };
  RateMeter meter;
  double last_plain = 0;
  v1::Job job;
  int reconnects = 0;
  // On a terminal the bar is redrawn in place: carriage return, then erase
  // the line. Anything else printed first ends the bar's line.
  bool bar_drawn = false;
  auto end_bar = [&] {
    if (bar_drawn) out << "\n" << std::flush;
    bar_drawn = false;
  };
  while (true) {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    if (interrupt != nullptr) interrupt->Attach(&context);
    auto reader = stub.WatchJob(&context, request);
    v1::Job update;
    while (reader->Read(&update)) {
      reconnects = 0;
      job = update;
      meter.Add(NowSeconds(), SettledTasks(job));
      if (tty) {
        out << "\r\033[K" << ProgressBar(job, meter.Rate(), width)
            << std::flush;
        bar_drawn = true;
      } else if (IsSettledForNow(job.state()) ||
                 NowSeconds() - last_plain >= 1.0) {
        out << ProgressLine(job, meter.Rate()) << "\n" << std::flush;
        last_plain = NowSeconds();
      }
    }
    grpc::Status s = reader->Finish();
    if (interrupt != nullptr) interrupt->Detach();
    if (interrupted()) {
      end_bar();
      return kExitInterrupted;
    }
    if (IsSettledForNow(job.state())) break;
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE) {
      end_bar();
      return PrintCommandError(err, s);
    }
    // The coordinator went away (a restart, say): follow it when it is back.
    if (++reconnects == 1) {
      end_bar();
      err << "coordinator unavailable; reconnecting\n";
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  end_bar();
  if (tty) {
    // The bar cannot hold everything: the final figures, once, in full.
    out << ProgressLine(job, meter.Rate()) << "\n" << std::flush;
  }
  const int code = WatchExitCode(job);
  if (job.state() == v1::JOB_STATE_PAUSED) {
    err << "job " << job_id << " paused: " << job.error() << "\n";
  } else if (job.state() == v1::JOB_STATE_FAILED) {
    err << "job " << job_id << " failed: " << job.error() << "\n";
  } else if (code == kExitDeadLetters) {
    err << "job " << job_id << " completed with " << job.counters().tasks_failed()
        << " dead letters (see `distillery export " << job_id
        << " --format errors`, `distillery retry " << job_id << "`)\n";
  }
  return code;
}

int Cancel(v1::ClientService::StubInterface& stub, const std::string& job_id,
           std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status s = stub.CancelJob(&context, request, &job);
  if (!s.ok()) return PrintCommandError(err, s);
  out << job.id() << " " << JobStateName(job.state()) << "\n";
  return 0;
}

int ResumeJob(v1::ClientService::StubInterface& stub, const std::string& job_id,
              double budget_usd, std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  v1::ResumeJobRequest request;
  request.set_job_id(job_id);
  request.set_budget_usd(budget_usd);
  v1::Job job;
  grpc::Status s = stub.ResumeJob(&context, request, &job);
  if (!s.ok()) return PrintCommandError(err, s);
  out << absl::StrFormat("%s %s with a budget of $%.4f\n", job.id(),
                         JobStateName(job.state()), job.spec().budget_usd());
  return 0;
}

int ResumeTeacher(v1::ClientService::StubInterface& stub,
                  const std::string& teacher, std::ostream& out,
                  std::ostream& err) {
  grpc::ClientContext context;
  v1::ResumeTeacherRequest request;
  request.set_teacher(teacher);
  v1::ResumeTeacherResponse response;
  grpc::Status s = stub.ResumeTeacher(&context, request, &response);
  if (!s.ok()) return PrintCommandError(err, s);
  out << "teacher " << teacher << " resumed\n";
  return 0;
}

int Retry(v1::ClientService::StubInterface& stub, const std::string& job_id,
          std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  v1::RetryJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status s = stub.RetryJob(&context, request, &job);
  if (!s.ok()) return PrintCommandError(err, s);
  out << job.id() << " " << JobStateName(job.state()) << "\n";
  return 0;
}

}  // namespace distillery::cli
