// distillery: the user's CLI. Parses flags and calls services/cli/commands.
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <thread>

#include "common/app/startup.h"
#include "common/base/logging.h"
#include "common/base/signals.h"
#include "common/rpc/coordinator_address.h"
#include "common/rpc/grpc_security.h"
#include "common/verify/json_schema.h"
#include "absl/time/time.h"
#include "services/cli/commands.h"
#include "services/cli/embedded_cluster.h"
#include "services/cli/export_command.h"

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
         "answers per prompt")
      ->check(CLI::Range(1, 1000))
      ->default_str("1");
  cmd->add_option_function<int64_t>(
         "--max-tokens",
         [spec](int64_t n) { spec->mutable_params()->set_max_tokens(n); },
         "completion token limit")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}))
      ->default_str("the profile's default_max_tokens");
  cmd->add_option("--temperature", *temperature, "sampling temperature")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("the teacher's");
  cmd->add_option("--top-p", *top_p, "nucleus sampling")
      ->check(CLI::Range(0.0, 1.0))
      ->default_str("the teacher's");
  cmd->add_option("--seed", *seed, "sampling seed")->default_str("none");
  cmd->add_option_function<double>(
         "--budget-usd", [spec](double usd) { spec->set_budget_usd(usd); },
         "stop spending at this many US dollars (needs pricing); the job "
         "pauses there, `distillery resume JOB --budget-usd MORE` goes on")
      ->check(CLI::PositiveNumber)
      ->default_str("no limit");
  cmd->add_option("--system", *spec->mutable_system_prompt(),
                  "system prompt for prompts without one")
      ->default_str("none");
  cmd->add_option_function<std::string>(
         "--mode",
         [spec](const std::string& mode) {
           spec->set_mode(mode == "batch"  ? distillery::v1::JOB_MODE_BATCH
                          : mode == "auto" ? distillery::v1::JOB_MODE_AUTO
                                           : distillery::v1::JOB_MODE_ONLINE);
         },
         "online: one call per task; batch: the teacher's batch API at half "
         "the price (results within 24 h); auto: batch, with online calls "
         "for retries and for what batches cannot deliver by --deadline")
      ->check(CLI::IsMember({"online", "batch", "auto"}))
      ->default_str("online");
  cmd->add_option_function<std::string>(
         "--deadline",
         [spec](const std::string& text) {
           absl::Duration d;
           if (!absl::ParseDuration(text, &d) || d <= absl::ZeroDuration()) {
             throw CLI::ValidationError(
                 "--deadline", "'" + text +
                                   "' is not a positive duration (e.g. 6h, "
                                   "90m)");
           }
           spec->set_deadline_ms(absl::ToUnixMillis(absl::Now() + d));
         },
         "with --mode auto: have the job done within this time (e.g. 6h)")
      ->default_str("none");
  cmd->add_option("--verify", *spec->mutable_verify(),
                  "check each answer as it is committed: math (the last "
                  "\\boxed{} or \"answer is\" against the reference, "
                  "normalised), exact (the trimmed answer equals it) or "
                  "regex:PATTERN (the answer matches)")
      ->default_str("none");
  cmd->add_option("--answer-field", *spec->mutable_answer_field(),
                  "the metadata field holding each prompt's reference")
      ->default_str("answer");
  cmd->add_option_function<int>(
         "--until-correct",
         [spec](int k) { spec->set_until_correct(k); },
         "with --verify: sample each prompt until it has this many verified "
         "answers (or --max-samples), instead of a fixed --samples")
      ->check(CLI::Range(1, 1000))
      ->default_str("none");
  cmd->add_option_function<int>(
         "--max-samples", [spec](int n) { spec->set_max_samples(n); },
         "with --until-correct: the most samples one prompt may take")
      ->check(CLI::Range(1, 1000))
      ->default_str("none");
  cmd->add_option_function<int>(
         "--logprobs",
         [spec](int k) { spec->mutable_params()->set_top_logprobs(k); },
         "keep each output token's logprob and its top K alternatives "
         "(OpenAI-compatible, non-reasoning teachers; export --format "
         "logprobs)")
      ->check(CLI::Range(1, 20))
      ->default_str("none");
  cmd->add_option_function<std::string>(
         "--json-schema",
         [spec](const std::string& path) {
           std::ifstream in(path, std::ios::binary);
           if (!in) {
             throw CLI::ValidationError("--json-schema",
                                        "cannot read '" + path + "'");
           }
           std::string text((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
           if (text.size() > (size_t{1} << 20)) {
             throw CLI::ValidationError("--json-schema",
                                        "'" + path + "' is over 1 MiB");
           }
           spec->set_json_schema(std::move(text));
           spec->set_json_schema_name(distillery::SchemaNameOf(path));
         },
         "every answer must be JSON matching this JSON Schema file: sent as "
         "response_format (OpenAI) or a forced tool (Anthropic); an answer "
         "that does not match is asked again, up to max_attempts")
      ->default_str("none");
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
                  "openai (OpenAI's fine-tuning upload), chat (Hugging Face "
                  "/ TRL / axolotl messages with metadata), sharegpt, raw, "
                  "logprobs (tokens and top logprobs, for logit "
                  "distillation) or errors (dead letters)")
      ->capture_default_str();
  cmd->add_option("--reasoning", options->reasoning,
                  "reasoning trace: field (on the assistant message; not "
                  "openai), think-tags (inline <think>...</think>) or drop")
      ->default_str("drop for openai, field for the others");
  cmd->add_option("--reasoning-key", options->reasoning_key,
                  "chat: the assistant message's key for the trace "
                  "(reasoning_content for Qwen3, DeepSeek and vLLM; thinking "
                  "for gpt-oss)")
      ->default_str("reasoning_content");
  cmd->add_flag("--card", options->card,
                "also write README.md, a Hugging Face dataset card, beside "
                "--out");
  cmd->add_option("--license", options->license,
                  "the card's license (a Hugging Face id, e.g. apache-2.0)")
      ->default_str("other");
  cmd->add_option("--language", options->languages,
                  "the card's languages (ISO 639-1, repeatable)")
      ->default_str("none");
  cmd->add_option("--pretty-name", options->pretty_name,
                  "the card's title")
      ->default_str("Distilled dataset");
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
                  "keep prompts whose metadata has KEY=VALUE (repeatable)")
      ->default_str("any");
  cmd->add_option("--near-dup-threshold", options->near_dup_threshold,
                  "keep only the first answer of each cluster with estimated "
                  "Jaccard similarity >= J (0.85 is a good start; 0: keep "
                  "near-duplicates)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--verified-only", options->verified_only,
                "keep only answers a job's --verify found right");
  cmd->add_option("--min-pass-rate", options->min_pass_rate,
                  "keep prompts whose share of verified samples is at least "
                  "this (a difficulty filter)")
      ->check(CLI::Range(0.0, 1.0))
      ->default_str("none");
  cmd->add_option("--max-pass-rate", options->max_pass_rate,
                  "keep prompts whose share of verified samples is at most "
                  "this")
      ->check(CLI::Range(0.0, 1.0))
      ->default_str("none");
  cmd->add_option("--decontaminate", options->decontaminate,
                  "leave out prompts sharing an n-gram with a question of "
                  "this benchmark file (JSONL with question, problem, prompt "
                  "or text; or one question a line)")
      ->default_str("none");
  cmd->add_option("--decontaminate-ngram", options->decontaminate_ngram,
                  "words in a shared n-gram")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_flag("--include-contaminated", options->include_contaminated,
                "with --decontaminate and --format raw: keep those records, "
                "marked with the benchmark line they match");
  cmd->add_option("--split", options->split,
                  "NAME=FRACTION,... one file per split, e.g. "
                  "train=0.95,test=0.05 (--out data.jsonl writes "
                  "data.train.jsonl, data.test.jsonl)")
      ->default_str("none: one file");
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

// Columns of the terminal on `fd`; 80 when it does not say.
int TerminalWidth(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
    return size.ws_col;
  }
  return 80;
}

}  // namespace

int Main(int argc, char** argv) {
  distillery::InitLogging("distillery", "warn");
  CLI::App app{"distillery: harvest teacher-model answers for distillation"};
  app.require_subcommand(1);
  // Every option's help shows its default (subcommands inherit this).
  app.option_defaults()->always_capture_default();
  app.footer(
      "Example:\n  distillery run prompts.jsonl --teachers teachers.yaml "
      "--teacher openai --model gpt-4o-mini");
  const char* env_coordinator = std::getenv("DISTILLERY_COORDINATOR");
  std::string coordinator = env_coordinator ? env_coordinator : "127.0.0.1:7070";
  app.add_option("--coordinator", coordinator,
                 "coordinator HOST[:PORT] (port 7070 when left out; "
                 "http://HOST:PORT also works) (env DISTILLERY_COORDINATOR)")
      ->capture_default_str();

  distillery::ClientSecurityOptions security;
  std::string token_file;
  app.add_option("--tls-ca", security.tls_ca_file,
                 "PEM CA of the coordinator's certificate: connect with TLS")
      ->default_str("none: plaintext");
  app.add_option("--tls-cert", security.tls_cert_file,
                 "PEM client certificate, for a coordinator requiring mTLS")
      ->default_str("none");
  app.add_option("--tls-key", security.tls_key_file,
                 "PEM private key of --tls-cert")
      ->default_str("none");
  app.add_option("--tls-server-name", security.tls_server_name,
                 "name to check the coordinator's certificate against")
      ->default_str("the host of --coordinator");
  app.add_option("--token-file", token_file,
                 "file with the bearer token (else env DISTILLERY_TOKEN)")
      ->default_str("none");
  CLI::App* health_cmd = app.add_subcommand(
      "health", "check that the coordinator serves (gRPC health service)");
  health_cmd->footer("Example:\n  distillery health  # prints SERVING, exit 0");

  std::optional<double> temperature, top_p;
  std::optional<int64_t> seed;
  distillery::cli::SubmitOptions submit;
  CLI::App* submit_cmd = app.add_subcommand("submit", "submit a prompt file");
  submit_cmd->footer(
      "Example:\n  distillery submit prompts.jsonl --teacher openai --model "
      "gpt-4o-mini --samples 2\n"
      "  distillery submit --input rows.jsonl --template solve.txt --teacher "
      "openai --model gpt-4o-mini");
  CLI::Option* submit_file =
      submit_cmd->add_option("FILE", submit.file, "JSONL prompt file");
  CLI::Option* submit_input = submit_cmd->add_option(
      "--input", submit.file,
      "JSONL dataset rows (one JSON object a line), with --template");
  submit_input->excludes(submit_file)->default_str("none");
  submit_cmd
      ->add_option("--template", submit.template_file,
                   "prompt template file: {{field}} is the row's field; the "
                   "row's id, system, max_tokens and temperature apply to its "
                   "prompt, its other fields go to metadata")
      ->default_str("none: FILE holds prompt lines");
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
  status_cmd->footer("Example:\n  distillery status job-000001 --json");

  CLI::App* jobs_cmd = app.add_subcommand("jobs", "list jobs");
  jobs_cmd->footer("Example:\n  distillery jobs");

  CLI::App* watch_cmd =
      app.add_subcommand("watch", "follow a job until it ends or pauses");
  watch_cmd->add_option("JOB", job_id)->required();
  watch_cmd->footer(
      "Exit codes: 0 completed, 1 error, 2 bad usage or unknown job, 3 "
      "paused, 4 completed with dead letters, 5 failed, 6 cancelled.\n"
      "Ctrl-C stops watching; the job goes on.\n"
      "Example:\n  distillery watch job-000001");

  CLI::App* cancel_cmd = app.add_subcommand("cancel", "cancel a job");
  cancel_cmd->add_option("JOB", job_id)->required();
  cancel_cmd->footer("Example:\n  distillery cancel job-000001");

  double resume_budget = 0;
  CLI::App* resume_cmd = app.add_subcommand(
      "resume", "resume a job paused at its budget");
  resume_cmd->add_option("JOB", job_id)->required();
  resume_cmd
      ->add_option("--budget-usd", resume_budget,
                   "the new budget, above what was spent")
      ->check(CLI::PositiveNumber)
      ->default_str("the old budget");
  resume_cmd->footer(
      "Example:\n  distillery resume job-000001 --budget-usd 20");

  std::string teacher_name;
  CLI::App* resume_teacher_cmd = app.add_subcommand(
      "resume-teacher",
      "lift a teacher's pause once its key, quota, base_url or model is "
      "fixed, or it is reachable again");
  resume_teacher_cmd->add_option("TEACHER", teacher_name)->required();
  resume_teacher_cmd->footer("Example:\n  distillery resume-teacher openai");

  CLI::App* retry_cmd = app.add_subcommand(
      "retry", "harvest a job's dead-lettered (failed) tasks again");
  retry_cmd->add_option("JOB", job_id)->required();
  retry_cmd->footer("Example:\n  distillery retry job-000001");

  distillery::cli::ExportOptions export_options;
  CLI::App* export_cmd = app.add_subcommand("export", "export a dataset");
  std::vector<std::string> more_jobs;
  export_cmd->add_option("JOB", export_options.job_ids, "job ids");
  export_cmd->add_option("--job", more_jobs, "another job (repeatable)")
      ->default_str("none");
  export_cmd->add_option("--out", export_options.out, "output file")
      ->default_str("standard output");
  export_cmd->footer(
      "Example:\n  distillery export job-000001 --out data.jsonl --split "
      "train=0.95,test=0.05");
  AddExportFlags(export_cmd, &export_options);
  export_cmd
      ->add_option("--teacher", export_options.teachers,
                   "keep answers from these teacher profiles")
      ->default_str("any");
  export_cmd
      ->add_option("--model", export_options.models,
                   "keep answers from these models")
      ->default_str("any");
  export_cmd
      ->add_option("--min-tokens", export_options.min_tokens,
                   "fewest answer tokens kept")
      ->check(CLI::NonNegativeNumber);
  export_cmd
      ->add_option("--max-tokens", export_options.max_tokens,
                   "most answer tokens kept")
      ->check(CLI::NonNegativeNumber);
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
    run_cmd->get_option(name)->required(false)->default_str(
        "required unless --resume");
  }
  CLI::Option* run_resume = run_cmd->add_option(
      "--resume", run.resume_job,
      "harvest and export JOB, left unfinished in --data-dir by an "
      "interrupted run, instead of a new FILE");
  run_resume->default_str("none: submit FILE");
  run_resume->excludes(run_file);
  run_cmd->add_option("--workers", run.workers, "embedded workers")
      ->check(CLI::Range(1, 64));
  run_cmd->footer(
      "Exit codes as `distillery watch`'s.\n"
      "Example:\n  distillery run prompts.jsonl --teachers teachers.yaml "
      "--teacher openai --model gpt-4o-mini  # writes out/dataset.jsonl");
  run_cmd->add_option("--data-dir", run.data_dir, "RocksDB directory")
      ->capture_default_str();
  run_cmd->add_flag("--sync-writes", run.sync_writes,
                    "fsync each commit before it is acknowledged, so answers "
                    "survive a power loss (slower)");
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
    // The progress goes to stderr (stdout may be the dataset).
    run.progress_tty = isatty(STDERR_FILENO) != 0;
    run.progress_width = run.progress_tty ? TerminalWidth(STDERR_FILENO) : 80;
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
    return distillery::FailStartup(target.status(), distillery::kExitUsage);
  }
  auto token = distillery::ResolveToken(token_file, "DISTILLERY_TOKEN");
  if (!token.ok()) {
    return distillery::FailStartup(token.status(), distillery::kExitUsage);
  }
  security.token = *token;
  auto made = distillery::MakeChannel(*target, security);
  if (!made.ok()) {
    return distillery::FailStartup(made.status(), distillery::kExitUsage);
  }
  std::shared_ptr<grpc::Channel> channel = *made;
  // Said once, in our words, rather than in gRPC's by the first call.
  if (absl::Status reached = distillery::cli::ConnectToCoordinator(
          *channel, *target, !security.tls_ca_file.empty(),
          std::chrono::seconds(20));
      !reached.ok()) {
    return distillery::FailStartup(reached, distillery::kExitFailure);
  }
  if (health_cmd->parsed()) {
    auto health = grpc::health::v1::Health::NewStub(channel);
    return distillery::cli::Health(*health, std::cout, std::cerr);
  }
  auto stub = distillery::v1::ClientService::NewStub(channel);
  if (submit_cmd->parsed()) {
    if (submit.file.empty()) {
      std::cerr << "error: submit: give a prompt FILE, or --input ROWS with "
                   "--template\n";
      return 2;
    }
    if (submit_input->count() > 0 && submit.template_file.empty()) {
      std::cerr << "error: submit: --input takes dataset rows, which need "
                   "--template; give prompt lines as FILE\n";
      return 2;
    }
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
                                  tty ? TerminalWidth(STDOUT_FILENO) : 80);
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
  // `run` holds a coordinator, and an export's chunks are large.
  distillery::ReturnLargeAllocationsToTheKernel();
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
