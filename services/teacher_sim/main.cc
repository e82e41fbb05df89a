// teacher-sim: an OpenAI- and Anthropic-compatible teacher simulator for
// tests, demos and benchmarks. This file only parses flags and wires the pieces together:
// SimHandler (request logic) behind HttpServer (the network).
//
//   teacher-sim --listen HOST:PORT [--latency-ms N] [--threads N]
//               [--require-api-key KEY] [--error-rate R] [--seed S]
//               [--models A,B,... | --any-model] [--batch-* ...]
//
// The --batch-* flags set the batch APIs' limits and processing speed
// (sim_batches.h); --help lists them with their defaults.
//
// Once listening it prints exactly one line to stdout,
// "teacher-sim listening on HOST:PORT" with the real port, and runs until
// SIGINT or SIGTERM.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "common/app/startup.h"
#include "common/base/clock.h"
#include "common/base/signals.h"
#include "services/teacher_sim/fault_injector.h"
#include "services/teacher_sim/http_server.h"
#include "services/teacher_sim/listen_address.h"
#include "services/teacher_sim/sim_handler.h"

int main(int argc, char** argv) {
  namespace sim = distillery::teacher_sim;

  // Block the stop signals first, before any thread starts, so every thread
  // inherits the mask and only the wait below receives them.
  distillery::BlockTerminationSignals();

  CLI::App app{
      "teacher-sim: an OpenAI- and Anthropic-compatible teacher simulator"};
  // Every option's help shows its default.
  app.option_defaults()->always_capture_default();
  app.footer("Example:\n  teacher-sim --listen 127.0.0.1:8000 --latency-ms 50");
  std::string listen;
  int64_t latency_ms = 0;
  int threads = 1;
  std::string api_key;
  double error_rate = 0;
  uint64_t seed = 1;
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks one")
      ->required();
  app.add_option("--latency-ms", latency_ms, "delay before each answer")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "event loop threads")
      ->check(CLI::Range(1, 256));
  app.add_option("--require-api-key", api_key,
                 "answer 401 unless 'Authorization: Bearer KEY' (or, for "
                 "/v1/messages, 'x-api-key: KEY')");
  app.add_option("--error-rate", error_rate,
                 "fraction of chat requests answered 500 or 429")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", seed, "seed of the fault injector");
  sim::SimLimits limits;
  int64_t window_s = 60;
  bool no_ratelimit_headers = false;
  app.add_option("--rpm", limits.rpm, "requests per window (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tpm", limits.tpm, "tokens per window (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-concurrency", limits.max_concurrency,
                 "concurrent requests (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--window-s", window_s, "length of the limit window")
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  app.add_flag("--no-ratelimit-headers", no_ratelimit_headers,
               "leave out the x-ratelimit-* headers, as DeepSeek does");
  bool quota_exhausted = false;
  app.add_flag("--quota-exhausted", quota_exhausted,
               "answer every chat request 429 insufficient_quota");
  std::string fault_rates;
  app.add_option("--fault-rates", fault_rates,
                 "KIND=RATE,... fraction of chat requests given each fault: "
                 "500, 429, 503 (retry-after), 529, reset (connection reset), "
                 "truncate (200 body cut short), pad (keep-alive padding "
                 "before the answer), slow, quota (429 insufficient_quota), "
                 "401echo (401 quoting the request's key JSON-escaped), "
                 "latin1 (400 with an ISO-8859-1 HTML page); replaces "
                 "--error-rate");
  size_t answer_bytes = 0;
  app.add_option("--answer-bytes", answer_bytes,
                 "make every answer's content this many bytes (0: as "
                 "generated)")
      ->check(CLI::Range(size_t{0}, size_t{1} << 30));
  double math_accuracy = distillery::teacher_sim::kDefaultMathAccuracy;
  app.add_option("--math-accuracy", math_accuracy,
                 "the share of \"What is A + B?\" questions answered right "
                 "(deterministic per prompt and seed)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  double json_invalid_rate = distillery::teacher_sim::kDefaultJsonInvalidRate;
  app.add_option("--json-invalid-rate", json_invalid_rate,
                 "the share of structured outputs (OpenAI response_format "
                 "json_schema, Anthropic forced tool) answered bad: half of "
                 "OpenAI's do not parse, half break the schema; Anthropic's "
                 "have a property of the wrong type. Decided per choice from "
                 "the prompt, seed, choice index and how many times this "
                 "process has seen the same request body, so asking again "
                 "can turn a bad answer good")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  bool refuse_n = false;
  app.add_flag("--refuse-n", refuse_n,
               "answer OpenAI requests with n > 1 400 invalid_request_error "
               "(param n), as servers without n do");
  int64_t slow_ms = 3000;
  app.add_option("--slow-ms", slow_ms, "delay of a 'slow' answer")
      ->check(CLI::NonNegativeNumber);
  int pad_count = 5;
  app.add_option("--pad-count", pad_count, "padding lines of a 'pad' answer")
      ->check(CLI::Range(0, 100000));
  int64_t pad_interval_ms = 200;
  app.add_option("--pad-interval-ms", pad_interval_ms,
                 "time between padding lines")
      ->check(CLI::NonNegativeNumber);
  std::vector<std::string> models(std::begin(sim::kDefaultSimModels),
                                  std::end(sim::kDefaultSimModels));
  bool any_model = false;
  CLI::Option* models_option =
      app.add_option("--models", models,
                     "model names served (comma list); others answer 404 "
                     "model_not_found, so a model typo shows in a rehearsal")
          ->delimiter(',')
          ->capture_default_str();
  app.add_flag("--any-model", any_model,
               "serve any model name (instead of --models)")
      ->excludes(models_option);
  sim::SimBatchOptions batch;
  int64_t batch_validate_ms = 0, batch_latency_ms = 1000;
  int64_t batch_expire_ms = 86'400'000, batch_cancel_ms = 200;
  app.add_option("--batch-max-requests", batch.openai_max_requests,
                 "requests per OpenAI batch file; more fails validation")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-max-bytes", batch.openai_max_bytes,
                 "bytes per OpenAI batch file; more fails validation")
      ->check(CLI::PositiveNumber);
  app.add_option("--anthropic-batch-max-requests",
                 batch.anthropic_max_requests,
                 "requests per Anthropic batch; more answers 413")
      ->check(CLI::PositiveNumber);
  app.add_option("--anthropic-batch-max-bytes", batch.anthropic_max_bytes,
                 "bytes per Anthropic batch body; more answers 413")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-upload-bytes", batch.max_upload_bytes,
                 "largest POST /v1/files body; more answers 413")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-enqueued-token-limit", batch.enqueued_token_limit,
                 "tokens (body bytes / 4 + max_tokens) of unfinished batches "
                 "allowed; over it OpenAI batches fail token_limit_exceeded "
                 "and Anthropic creates answer 429 (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch-validate-ms", batch_validate_ms,
                 "time an OpenAI batch stays validating")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch-requests-per-second", batch.requests_per_second,
                 "requests a batch runs per second (0: all at once)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch-latency-ms", batch_latency_ms,
                 "time before a batch's first requests have run")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch-expire-ms", batch_expire_ms,
                 "a batch not done this long after creation expires with "
                 "what ran (the APIs' 24 h)")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-cancel-ms", batch_cancel_ms,
                 "time a cancel takes to end a batch")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch-error-rate", batch.error_rate,
                 "fraction of batch requests answered 500 inside the batch")
      ->check(CLI::Range(0.0, 1.0));
  CLI11_PARSE(app, argc, argv);
  if (any_model) models.clear();
  batch.validate = std::chrono::milliseconds(batch_validate_ms);
  batch.latency = std::chrono::milliseconds(batch_latency_ms);
  batch.expire = std::chrono::milliseconds(batch_expire_ms);
  batch.cancel = std::chrono::milliseconds(batch_cancel_ms);
  batch.seed = seed;
  limits.window = std::chrono::seconds(window_s);

  absl::StatusOr<sim::ListenAddress> address = sim::ParseListenAddress(listen);
  if (!address.ok()) {
    return distillery::FailStartup(address.status(), distillery::kExitUsage,
                                   "teacher-sim");
  }

  signal(SIGPIPE, SIG_IGN);
  // Benchmarks hold thousands of connections open; the default soft limit
  // of 1024 descriptors would refuse them.
  distillery::RaiseOpenFileLimit(RLIM_INFINITY);

  distillery::Clock& clock = distillery::RealClock::Get();
  std::vector<sim::WeightedFault> mix = sim::RandomFaultInjector::DefaultMix();
  double fault_rate = error_rate;
  if (!fault_rates.empty()) {
    auto parsed = sim::ParseFaultRates(fault_rates, &fault_rate);
    if (!parsed.ok()) {
      return distillery::FailStartup(parsed.status(), distillery::kExitUsage,
                                     "teacher-sim: --fault-rates");
    }
    mix = std::move(*parsed);
  }
  sim::RandomFaultInjector faults(fault_rate, seed, std::move(mix));
  sim::SimHandlerOptions handler_options;
  handler_options.required_api_key = api_key;
  handler_options.latency = std::chrono::milliseconds(latency_ms);
  handler_options.limits = limits;
  handler_options.ratelimit_headers = !no_ratelimit_headers;
  handler_options.quota_exhausted = quota_exhausted;
  handler_options.slow_latency = std::chrono::milliseconds(slow_ms);
  handler_options.pad_count = pad_count;
  handler_options.pad_interval = std::chrono::milliseconds(pad_interval_ms);
  handler_options.answer_bytes = answer_bytes;
  handler_options.math_accuracy = math_accuracy;
  handler_options.json_invalid_rate = json_invalid_rate;
  handler_options.refuse_n = refuse_n;
  handler_options.models = std::move(models);
  handler_options.batches = batch;
  sim::SimHandler handler(handler_options, clock, &faults);

  sim::HttpServer::Options server_options;
  server_options.host = address->host;
  server_options.port = address->port;
  server_options.threads = threads;
  // Batch uploads and creates are answered in the APIs' own words (413)
  // up to their limits, so the server takes somewhat more than those.
  server_options.max_body_bytes = static_cast<uint64_t>(
      std::max({batch.max_upload_bytes, batch.anthropic_max_bytes,
                int64_t{64} << 20}) +
      (1 << 20));
  auto server = sim::HttpServer::Start(
      server_options, [&handler](const sim::SimRequest& request) {
        return handler.Handle(request);
      });
  if (!server.ok()) {
    return distillery::FailStartup(server.status(), distillery::kExitFailure,
                                   "teacher-sim");
  }

  std::cout << "teacher-sim listening on "
            << sim::FormatHostPort(address->host, (*server)->port())
            << std::endl;

  distillery::WaitForTerminationSignal();
  (*server)->Stop();
  return 0;
}
