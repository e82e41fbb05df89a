#include "services/cli/commands.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/dataset/export_filter.h"
#include "common/dataset/export_format.h"
#include "common/dataset/split.h"
#include "common/http/curl_http_client.h"
#include "common/job/job_state.h"
#include "common/rpc/grpc_security.h"
#include "common/rpc/coordinator_address.h"
#include "nlohmann/json.hpp"
#include "services/cli/export_writer.h"
#include "services/coordinator/coordinator_server.h"
#include "services/worker/teacher_factory.h"
#include "services/worker/worker.h"

namespace distillery::cli {
namespace {

constexpr size_t kSubmitChunkBytes = 512 << 10;
constexpr int kSubmitChunkLines = 4096;

void PrintError(std::ostream& err, const grpc::Status& s) {
  err << "error: " << s.error_message() << "\n";
}

int ExitCodeFor(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                 s.error_code() == grpc::StatusCode::NOT_FOUND
             ? 2
             : 1;
}

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Interrupter::Interrupt() {
  std::lock_guard<std::mutex> lock(mu_);
  interrupted_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool Interrupter::interrupted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return interrupted_;
}

void Interrupter::Attach(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = context;
  if (interrupted_) context_->TryCancel();
}

void Interrupter::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
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

const std::vector<std::string>& KnownFinishReasons() {
  // OpenAI and OpenAI-compatible servers (vLLM's "abort"), DeepSeek's
  // "insufficient_system_resource", then Anthropic's stop_reason values.
  static const std::vector<std::string> kReasons = {
      "stop",        "length",        "content_filter",
      "tool_calls",  "function_call", "abort",
      "insufficient_system_resource", "end_turn",      "max_tokens",
      "stop_sequence", "tool_use",    "pause_turn",    "refusal"};
  return kReasons;
}

namespace {

int64_t Settled(const v1::Job& job) {
  return job.counters().tasks_done() + job.counters().tasks_failed();
}

// Why a job that is not finished makes no progress, or "".
std::string Waiting(const v1::Job& job) {
  if (IsSettledForNow(job.state())) return "";
  const v1::TeacherStatus& t = job.teacher_status();
  if (t.paused()) {
    return absl::StrCat("teacher ", t.name(), " paused: ", t.pause_reason());
  }
  if (t.live_workers() == 0 && Settled(job) < job.counters().tasks_total()) {
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

std::string Spend(double usd) {
  return usd >= 100 ? absl::StrFormat("$%.2f", usd)
                    : absl::StrFormat("$%.4f", usd);
}

// Progress per second over the last kWindow seconds of updates, so the ETA
// follows the current pace rather than the average since the start.
class RateMeter {
 public:
  void Add(double now, int64_t settled) {
    samples_.emplace_back(now, settled);
    while (samples_.size() > 2 && now - samples_[1].first >= kWindow) {
      samples_.pop_front();
    }
  }
  double Rate() const {
    if (samples_.size() < 2) return 0;
    const double span = samples_.back().first - samples_.front().first;
    if (span < 0.5) return 0;
    return (samples_.back().second - samples_.front().second) / span;
  }

 private:
  static constexpr double kWindow = 10;
  std::deque<std::pair<double, int64_t>> samples_;
};

}  // namespace

std::string NoLiveWorkerMessage(const std::string& teacher) {
  return absl::StrCat("no live worker serves teacher ", teacher,
                      " (start a worker whose teachers file has its key)");
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

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
}

std::string JobJson(const v1::Job& job, int64_t now_ms) {
  const v1::JobCounters& c = job.counters();
  const int64_t settled = Settled(job);
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
  };
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

std::string ProgressLine(const v1::Job& job, double rate_per_second) {
  const v1::JobCounters& c = job.counters();
  const int64_t settled = Settled(job);
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
                  Spend(c.cost_usd()));
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
  const int64_t settled = Settled(job);
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
  absl::StrAppend(&figures, " ", Spend(c.cost_usd()), " ", c.tasks_failed(),
                  " failed", TeacherErrors(job));
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
    err << "error: "
        << (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                ? options.file + ": "
                : "")
        << status.error_message() << "\n";
    return ExitCodeFor(status);
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

std::string TeacherLine(const v1::TeacherStatus& t) {
  // Where a limit in force comes from: still probing (nothing known yet),
  // the profile, or the teacher (its headers or its 429s).
  auto limit = [&t](double effective) -> std::string {
    if (effective <= 0) return t.learning() ? "unknown yet" : "no limit";
    return absl::StrFormat("%.0f", effective);
  };
  std::string source;
  if (t.learning()) {
    source = " (no limit known yet: probing upward)";
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

int Status(v1::ClientService::StubInterface& stub, const std::string& job_id,
           bool json, std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status s = stub.GetJob(&context, request, &job);
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
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
    const int64_t settled =
        job.counters().tasks_done() + job.counters().tasks_failed();
    const double rate = elapsed > 0.5 ? settled / elapsed : 0.0;
    out << ProgressLine(job, rate) << "\n";
    const v1::TeacherStatus& t = job.teacher_status();
    out << TeacherLine(t) << "\n";
  }
  return 0;
}

int Jobs(v1::ClientService::StubInterface& stub, std::ostream& out,
         std::ostream& err) {
  grpc::ClientContext context;
  v1::ListJobsResponse response;
  grpc::Status s = stub.ListJobs(&context, v1::ListJobsRequest(), &response);
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
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
    PrintError(err, s);
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
      meter.Add(NowSeconds(), Settled(job));
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
      PrintError(err, s);
      return ExitCodeFor(s);
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
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
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
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
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
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
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
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
  out << job.id() << " " << JobStateName(job.state()) << "\n";
  return 0;
}

absl::StatusOr<v1::ExportRequest> BuildExportRequest(
    const ExportOptions& options) {
  ASSIGN_OR_RETURN(ExportFormat format, ParseExportFormat(options.format));
  v1::ExportRequest request;
  std::vector<std::string> seen;
  for (const std::string& id : options.job_ids) {
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    request.add_job_ids(id);
  }
  if (request.job_ids().empty()) {
    return absl::InvalidArgumentError("export: give at least one job");
  }
  for (const std::string& t : options.teachers) request.add_teachers(t);
  for (const std::string& m : options.models) request.add_models(m);
  for (const std::string& m : options.metadata) {
    ASSIGN_OR_RETURN(*request.add_metadata(), ParseMetadataMatch(m));
  }
  if (format == ExportFormat::kErrors) {
    // Dead letters have no answer: answer filters do not apply.
    request.set_failed_only(true);
    return request;
  }
  request.set_include_duplicates(options.include_duplicates);
  request.set_include_failed(options.include_failed);
  const bool any_reason =
      std::find(options.finish_reasons.begin(), options.finish_reasons.end(),
                "any") != options.finish_reasons.end();
  if (!any_reason) {
    const std::vector<std::string>& known = KnownFinishReasons();
    for (const std::string& r : options.finish_reasons) {
      if (std::find(known.begin(), known.end(), r) == known.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--finish-reason: no teacher reports '", r, "'; known: ",
            absl::StrJoin(known, ", "), "; 'any' keeps every answer"));
      }
      request.add_finish_reasons(r);
    }
  }
  request.set_min_chars(options.min_chars);
  request.set_max_chars(options.max_chars);
  request.set_min_tokens(options.min_tokens);
  request.set_max_tokens(options.max_tokens);
  request.set_near_dup_threshold(options.near_dup_threshold);
  return request;
}

int Export(v1::ClientService::StubInterface& stub,
           const ExportOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<ExportFormat> format = ParseExportFormat(options.format);
  absl::StatusOr<ReasoningLayout> layout =
      ParseReasoningLayout(options.reasoning);
  absl::StatusOr<v1::ExportRequest> request = BuildExportRequest(options);
  std::optional<SplitSpec> split;
  absl::Status bad = !format.ok()    ? format.status()
                     : !layout.ok()  ? layout.status()
                     : !request.ok() ? request.status()
                                     : absl::OkStatus();
  if (bad.ok() && !options.split.empty()) {
    absl::StatusOr<SplitSpec> parsed = ParseSplitSpec(options.split);
    if (!parsed.ok()) {
      bad = parsed.status();
    } else if (options.out.empty()) {
      bad = absl::InvalidArgumentError("--split writes files: give --out");
    } else {
      split = std::move(*parsed);
    }
  }
  if (!bad.ok()) {
    err << "error: " << bad.message() << "\n";
    return 2;
  }
  // A job still harvesting exports what it has so far: say so, with counts.
  for (const std::string& id : request->job_ids()) {
    grpc::ClientContext context;
    v1::GetJobRequest get;
    get.set_job_id(id);
    v1::Job job;
    grpc::Status s = stub.GetJob(&context, get, &job);
    if (!s.ok()) {
      PrintError(err, s);
      return ExitCodeFor(s);
    }
    if (job.state() == v1::JOB_STATE_RUNNING ||
        job.state() == v1::JOB_STATE_PAUSED) {
      const v1::JobCounters& c = job.counters();
      err << absl::StrFormat(
          "warning: job %s is %s (%d of %d tasks settled: %d answered, %d "
          "failed); the export holds only what is there so far\n",
          id, JobStateName(job.state()), Settled(job), c.tasks_total(),
          c.tasks_done(), c.tasks_failed());
    }
  }
  // One output per split (or one), each whole or absent.
  std::vector<std::string> paths;
  if (split) {
    for (const SplitSpec::Part& part : split->parts) {
      paths.push_back(SplitPath(options.out, part.name));
    }
  } else if (!options.out.empty()) {
    paths.push_back(options.out);
  }
  // Each file locked against other exports and written beside its
  // destination (export_writer.h); destroying one unrenamed removes it.
  std::vector<std::unique_ptr<ExportFile>> files;
  for (const std::string& path : paths) {
    absl::StatusOr<std::unique_ptr<ExportFile>> file = ExportFile::Open(path);
    if (!file.ok()) {
      err << "error: " << file.status().message() << "\n";
      return 1;
    }
    files.push_back(std::move(*file));
  }
  grpc::ClientContext context;
  auto reader = stub.Export(&context, *request);
  v1::ExportChunk chunk;
  std::vector<int64_t> counts(std::max<size_t>(1, paths.size()), 0);
  std::vector<std::string> buffers(counts.size());
  absl::Status written;
  while (reader->Read(&chunk)) {
    for (std::string& b : buffers) b.clear();
    for (const v1::ExportRecord& record : chunk.records()) {
      const int i =
          split ? AssignSplit(*split, record.prompt().id(), options.seed) : 0;
      AppendRecord(record, *format, *layout, &buffers[i]);
      buffers[i] += '\n';
      ++counts[i];
    }
    for (size_t i = 0; i < buffers.size() && written.ok(); ++i) {
      if (files.empty()) {
        out.write(buffers[i].data(),
                  static_cast<std::streamsize>(buffers[i].size()));
      } else {
        written = files[i]->Write(buffers[i]);
      }
    }
    if (!written.ok()) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (files.empty()) out.flush();
  if (!written.ok()) {
    err << "error: writing the export failed: " << written.message() << "\n";
    return 1;
  }
  if (!s.ok()) {
    PrintError(err, s);
    return ExitCodeFor(s);
  }
  for (const std::unique_ptr<ExportFile>& file : files) {
    if (absl::Status c = file->Commit(); !c.ok()) {
      err << "error: writing the export failed: " << c.message() << "\n";
      return 1;
    }
  }
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  err << "exported " << total << " records";
  if (split) {
    for (size_t i = 0; i < paths.size(); ++i) {
      err << (i ? ", " : ": ") << counts[i] << " to " << paths[i];
    }
  } else if (!options.out.empty()) {
    err << " to " << options.out;
  }
  err << "\n";
  return 0;
}

namespace {

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

absl::StatusOr<v1::Job> FetchJob(v1::ClientService::StubInterface& stub,
                                 const std::string& job_id) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::Status s = stub.GetJob(&context, request, &job);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        s.error_message());
  }
  return job;
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
    if (bad.ok()) bad = ParseReasoningLayout(check.reasoning).status();
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
        JobStateName(job.state()), Settled(job), job.counters().tasks_total()));
  }
  if (!left.empty()) {
    err << "note: " << options.data_dir << " holds " << left.size()
        << " unfinished job(s) of earlier runs, left as they are (not "
           "harvested, nothing spent on them): "
        << absl::StrJoin(left, ", ") << "; to finish one: "
        << ResumeCommand(options, "JOB") << "\n";
  }

  // Reset before the workers are destroyed: its destructor completes what
  // is still in flight, and those callbacks reach the workers.
  auto http = std::make_unique<CurlHttpClient>();
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
    clients.push_back(MakeGrpcCoordinatorClient((*server)->address()));
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
    export_rc = Export(*stub, export_options, out, err);
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
      c.completion_tokens(), c.reasoning_tokens(), Spend(c.cost_usd()), sent,
      Spend(c.cost_usd() - before.cost_usd()), NowSeconds() - start);
  if (interrupted) {
    err << "job " << job_id << " is kept in " << options.data_dir << " ("
        << JobStateName(job.state()) << ", " << Settled(job) << "/"
        << c.tasks_total() << " settled); nothing was exported. Resume it "
        << "with:\n  " << ResumeCommand(options, job_id) << "\n";
    return kExitInterrupted;
  }
  return rc != 0 ? rc : export_rc;
}

}  // namespace distillery::cli
