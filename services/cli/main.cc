// distillery: the user's CLI. Parses flags and calls services/cli/commands.
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "common/base/logging.h"
#include "common/base/signals.h"
#include "common/rpc/coordinator_address.h"
#include "common/rpc/grpc_security.h"
#include "services/cli/commands.h"

namespace {

// Adds the job-spec flags shared by `submit` and `run`.
void AddSpecFlags(CLI::App* cmd, distillery::v1::JobSpec* spec,
                  std::optional<double>* temperature,
                  std::optional<double>* top_p, std::optional<int64_t>* seed) {
  cmd->add_option("--teacher", *spec->mutable_teacher(),
                  "teacher profile name")
      ->required();
  cmd->add_option("--model", *spec->mutable_model(), "teacher model")
      ->required();
  spec->set_samples(1);
  cmd->add_option_function<int>(
         "--samples", [spec](int n) { spec->set_samples(n); },
         "answers per prompt (default 1)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option_function<int64_t>(
         "--max-tokens",
         [spec](int64_t n) { spec->mutable_params()->set_max_tokens(n); },
         "completion token limit")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}));
  cmd->add_option("--temperature", *temperature, "sampling temperature")
      ->check(CLI::Range(0.0, 2.0));
  cmd->add_option("--top-p", *top_p, "nucleus sampling")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", *seed, "sampling seed");
  cmd->add_option_function<double>(
         "--budget-usd", [spec](double usd) { spec->set_budget_usd(usd); },
         "stop spending at this many US dollars (needs pricing)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--system", *spec->mutable_system_prompt(),
                  "system prompt for prompts without one");
}

void ApplyOptionalParams(distillery::v1::JobSpec* spec,
                         const std::optional<double>& temperature,
                         const std::optional<double>& top_p,
                         const std::optional<int64_t>& seed) {
  if (temperature) spec->mutable_params()->set_temperature(*temperature);
  if (top_p) spec->mutable_params()->set_top_p(*top_p);
  if (seed) spec->mutable_params()->set_seed(*seed);
}

// Export flags shared by `export` and `run` (whose job-spec flags already
// use --teacher, --model, --max-tokens and --seed).
void AddExportFlags(CLI::App* cmd, distillery::cli::ExportOptions* options) {
  cmd->add_option("--format", options->format,
                  "openai, sharegpt, raw or errors (dead letters)")
      ->capture_default_str();
  cmd->add_option("--reasoning", options->reasoning,
                  "reasoning trace: field (on the assistant message), "
                  "think-tags (inline <think>...</think>) or drop")
      ->capture_default_str();
  cmd->add_flag("--include-duplicates", options->include_duplicates,
                "also export answers identical to an earlier one");
  cmd->add_flag("--include-failed", options->include_failed,
                "also export dead-lettered tasks (raw format)");
  cmd->add_option("--finish-reason", options->finish_reasons,
                  "keep answers with these finish reasons (repeat or comma "
                  "list; 'any' keeps all)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--min-chars", options->min_chars, "shortest answer kept")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-chars", options->max_chars, "longest answer kept")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--metadata", options->metadata,
                  "keep prompts whose metadata has KEY=VALUE (repeatable)");
  cmd->add_option("--near-dup-threshold", options->near_dup_threshold,
                  "keep only the first answer of each cluster with estimated "
                  "Jaccard similarity >= J (0.85 is a good start)")
      ->check(CLI::Range(0.0, 1.0));
}

// Ctrl-C (or SIGTERM) stops `run` through `interrupt`; a second one quits
// at once, without waiting for requests in flight.
void InterruptOnSignal(distillery::cli::Interrupter* interrupt) {
  std::thread([interrupt] {
    distillery::WaitForTerminationSignal();
    interrupt->Interrupt();
    distillery::WaitForTerminationSignal();
    std::cerr << "\ninterrupted again: quitting now\n";
    std::_Exit(distillery::cli::kExitInterrupted);
  }).detach();
}

// Columns of the terminal on stdout; 80 when it does not say.
int TerminalWidth() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
    return size.ws_col;
  }
  return 80;
}

}  // namespace

int Main(int argc, char** argv) {
  distillery::InitLogging("distillery", "warn");
  CLI::App app{"distillery: harvest teacher-model answers for distillation"};
  app.require_subcommand(1);
  const char* env_coordinator = std::getenv("DISTILLERY_COORDINATOR");
  std::string coordinator = env_coordinator ? env_coordinator : "127.0.0.1:7070";
  app.add_option("--coordinator", coordinator,
                 "coordinator HOST[:PORT] (port 7070 when left out; "
                 "http://HOST:PORT also works) (env DISTILLERY_COORDINATOR)")
      ->capture_default_str();

  distillery::ClientSecurityOptions security;
  std::string token_file;
  app.add_option("--tls-ca", security.tls_ca_file,
                 "PEM CA of the coordinator's certificate: connect with TLS");
  app.add_option("--tls-cert", security.tls_cert_file,
                 "PEM client certificate, for a coordinator requiring mTLS");
  app.add_option("--tls-key", security.tls_key_file,
                 "PEM private key of --tls-cert");
  app.add_option("--tls-server-name", security.tls_server_name,
                 "name to check the coordinator's certificate against");
  app.add_option("--token-file", token_file,
                 "file with the bearer token (else env DISTILLERY_TOKEN)");
  CLI::App* health_cmd = app.add_subcommand(
      "health", "check that the coordinator serves (gRPC health service)");

  std::optional<double> temperature, top_p;
  std::optional<int64_t> seed;
  distillery::cli::SubmitOptions submit;
  CLI::App* submit_cmd = app.add_subcommand("submit", "submit a prompt file");
  submit_cmd->add_option("FILE", submit.file, "JSONL prompt file")->required();
  AddSpecFlags(submit_cmd, &submit.spec, &temperature, &top_p, &seed);
  submit_cmd
      ->add_option("--max-prompt-bytes", submit.max_prompt_bytes,
                   "longest prompt-file line accepted")
      ->capture_default_str();

  std::string job_id;
  bool json = false;
  CLI::App* status_cmd = app.add_subcommand("status", "show a job");
  status_cmd->add_option("JOB", job_id)->required();
  status_cmd->add_flag("--json", json, "machine-readable output");

  CLI::App* jobs_cmd = app.add_subcommand("jobs", "list jobs");

  CLI::App* watch_cmd =
      app.add_subcommand("watch", "follow a job until it ends");
  watch_cmd->add_option("JOB", job_id)->required();

  CLI::App* cancel_cmd = app.add_subcommand("cancel", "cancel a job");
  cancel_cmd->add_option("JOB", job_id)->required();

  double resume_budget = 0;
  CLI::App* resume_cmd = app.add_subcommand(
      "resume", "resume a job paused at its budget");
  resume_cmd->add_option("JOB", job_id)->required();
  resume_cmd->add_option("--budget-usd", resume_budget, "the new budget")
      ->check(CLI::PositiveNumber);

  std::string teacher_name;
  CLI::App* resume_teacher_cmd = app.add_subcommand(
      "resume-teacher", "lift a teacher's pause once its key or quota is fixed");
  resume_teacher_cmd->add_option("TEACHER", teacher_name)->required();

  CLI::App* retry_cmd = app.add_subcommand(
      "retry", "harvest a job's dead-lettered (failed) tasks again");
  retry_cmd->add_option("JOB", job_id)->required();

  distillery::cli::ExportOptions export_options;
  CLI::App* export_cmd = app.add_subcommand("export", "export a dataset");
  std::vector<std::string> more_jobs;
  export_cmd->add_option("JOB", export_options.job_ids, "job ids");
  export_cmd->add_option("--job", more_jobs, "another job (repeatable)");
  export_cmd->add_option("--out", export_options.out, "output file");
  AddExportFlags(export_cmd, &export_options);
  export_cmd->add_option("--teacher", export_options.teachers,
                         "keep answers from these teacher profiles");
  export_cmd->add_option("--model", export_options.models,
                         "keep answers from these models");
  export_cmd
      ->add_option("--min-tokens", export_options.min_tokens,
                   "fewest answer tokens kept")
      ->check(CLI::NonNegativeNumber);
  export_cmd
      ->add_option("--max-tokens", export_options.max_tokens,
                   "most answer tokens kept")
      ->check(CLI::NonNegativeNumber);
  export_cmd->add_option("--split", export_options.split,
                         "NAME=FRACTION,... one file per split, e.g. "
                         "train=0.95,test=0.05 (--out data.jsonl writes "
                         "data.train.jsonl, data.test.jsonl)");
  export_cmd->add_option("--seed", export_options.seed,
                         "seed of the split assignment");

  distillery::cli::RunOptions run;
  run.export_options.out = "out/dataset.jsonl";
  CLI::App* run_cmd = app.add_subcommand(
      "run", "harvest a prompt file with an embedded single-machine cluster");
  CLI::Option* run_file =
      run_cmd->add_option("FILE", run.submit.file, "JSONL prompt file");
  run_cmd->add_option("--teachers", run.teachers_file, "teacher profiles")
      ->required();
  AddSpecFlags(run_cmd, &run.submit.spec, &temperature, &top_p, &seed);
  // A resumed job has its file, teacher and model already: they are
  // needed only for a new one.
  for (const char* name : {"--teacher", "--model"}) {
    run_cmd->get_option(name)->required(false);
  }
  CLI::Option* run_resume = run_cmd->add_option(
      "--resume", run.resume_job,
      "harvest and export JOB, left unfinished in --data-dir by an "
      "interrupted run, instead of a new FILE");
  run_resume->excludes(run_file);
  run_cmd->add_option("--workers", run.workers, "embedded workers")
      ->check(CLI::Range(1, 64));
  run_cmd->add_option("--data-dir", run.data_dir, "RocksDB directory")
      ->capture_default_str();
  run_cmd->add_option("--out", run.export_options.out, "dataset file")
      ->capture_default_str();
  AddExportFlags(run_cmd, &run.export_options);

  CLI11_PARSE(app, argc, argv);

  if (run_cmd->parsed()) {
    if (run.resume_job.empty() &&
        (run.submit.file.empty() || run.submit.spec.teacher().empty() ||
         run.submit.spec.model().empty())) {
      std::cerr << "error: run: give FILE with --teacher and --model, or "
                   "--resume JOB\n";
      return 2;
    }
    ApplyOptionalParams(&run.submit.spec, temperature, top_p, seed);
    // Before any thread starts, so that only the waiting thread gets them.
    distillery::BlockTerminationSignals();
    // Static: the detached signal thread may outlive this scope.
    static distillery::cli::Interrupter interrupt;
    run.interrupt = &interrupt;
    InterruptOnSignal(&interrupt);
    return distillery::cli::Run(run, std::cout, std::cerr);
  }
  absl::StatusOr<std::string> target =
      distillery::NormalizeCoordinatorAddress(coordinator);
  if (!target.ok()) {
    std::cerr << "error: " << target.status().message() << "\n";
    return 2;
  }
  auto token = distillery::ResolveToken(token_file, "DISTILLERY_TOKEN");
  if (!token.ok()) {
    std::cerr << "error: " << token.status().message() << "\n";
    return 2;
  }
  security.token = *token;
  auto made = distillery::MakeChannel(*target, security);
  if (!made.ok()) {
    std::cerr << "error: " << made.status().message() << "\n";
    return 2;
  }
  std::shared_ptr<grpc::Channel> channel = *made;
  // Said once, in our words, rather than in gRPC's by the first call.
  if (absl::Status reached = distillery::cli::ConnectToCoordinator(
          *channel, *target, !security.tls_ca_file.empty(),
          std::chrono::seconds(20));
      !reached.ok()) {
    std::cerr << "error: " << reached.message() << "\n";
    return 1;
  }
  if (health_cmd->parsed()) {
    auto health = grpc::health::v1::Health::NewStub(channel);
    return distillery::cli::Health(*health, std::cout, std::cerr);
  }
  auto stub = distillery::v1::ClientService::NewStub(channel);
  if (submit_cmd->parsed()) {
    ApplyOptionalParams(&submit.spec, temperature, top_p, seed);
    return distillery::cli::Submit(*stub, submit, std::cout, std::cerr);
  }
  if (status_cmd->parsed()) {
    return distillery::cli::Status(*stub, job_id, json, std::cout, std::cerr);
  }
  if (jobs_cmd->parsed()) return distillery::cli::Jobs(*stub, std::cout, std::cerr);
  if (watch_cmd->parsed()) {
    const bool tty = isatty(STDOUT_FILENO) != 0;
    return distillery::cli::Watch(*stub, job_id, tty, std::cout, std::cerr,
                                  tty ? TerminalWidth() : 80);
  }
  if (cancel_cmd->parsed()) {
    return distillery::cli::Cancel(*stub, job_id, std::cout, std::cerr);
  }
  if (resume_cmd->parsed()) {
    return distillery::cli::ResumeJob(*stub, job_id, resume_budget, std::cout,
                                      std::cerr);
  }
  if (resume_teacher_cmd->parsed()) {
    return distillery::cli::ResumeTeacher(*stub, teacher_name, std::cout,
                                          std::cerr);
  }
  if (retry_cmd->parsed()) {
    return distillery::cli::Retry(*stub, job_id, std::cout, std::cerr);
  }
  if (export_cmd->parsed()) {
    export_options.job_ids.insert(export_options.job_ids.end(),
                                  more_jobs.begin(), more_jobs.end());
    return distillery::cli::Export(*stub, export_options, std::cout, std::cerr);
  }
  return 2;
}

int main(int argc, char** argv) {
  // The last resort: whatever a command failed to handle is a one-line
  // error, never an abort with a core dump.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "error: unexpected failure\n";
  }
  return 1;
}
