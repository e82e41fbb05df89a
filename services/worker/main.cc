// distillery-worker: parses flags, builds teachers and runs the lease loop.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/app/startup.h"
#include "common/base/signals.h"
#include "common/http/curl_http_client.h"
#include "common/metrics/metrics.h"
#include "common/rpc/coordinator_address.h"
#include "common/rpc/grpc_security.h"
#include "services/worker/teacher_factory.h"
#include "services/worker/worker.h"

int main(int argc, char** argv) {
  distillery::ReturnLargeAllocationsToTheKernel();
  distillery::BlockTerminationSignals();
  CLI::App app{"Distillery worker: leases tasks and calls teachers"};
  // Every option's help shows its default.
  app.option_defaults()->always_capture_default();
  app.footer("Example:\n  distillery-worker --coordinator 127.0.0.1:7070 --teachers teachers.yaml --name w1");
  std::string coordinator = "127.0.0.1:7070";
  std::string teachers_file;
  std::string name;
  std::string metrics_listen;
  int drain_seconds = 30;
  int max_in_flight = 256;
  app.add_option("--coordinator", coordinator,
                 "coordinator HOST[:PORT] (port 7070 when left out; "
                 "http://HOST:PORT also works)")
      ->capture_default_str();
  app.add_option("--teachers", teachers_file, "teacher profiles (YAML)")
      ->required();
  app.add_option("--name", name,
                 "worker name, in its answers and its id (NAME-N)")
      ->default_str("host name");
  app.add_option("--metrics-listen", metrics_listen,
                 "Prometheus /metrics address HOST:PORT");
  app.add_option("--drain-seconds", drain_seconds,
                 "on SIGTERM, how long in-flight requests may finish")
      ->check(CLI::Range(0, 3600));
  app.add_option("--max-in-flight", max_in_flight,
                 "requests in flight to one teacher from this worker, at most "
                 "(also bounds its connections; default 256)")
      ->check(CLI::Range(1, 100000));
  int max_message_mb = distillery::kDefaultMaxMessageBytes >> 20;
  app.add_option("--max-message-mb", max_message_mb,
                 "the coordinator's --max-message-mb: reports are cut to fit "
                 "it (default 64)")
      ->check(CLI::Range(1, distillery::kMaxMessageBytesCeiling >> 20));
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
                 "file with the worker bearer token (else env "
                 "DISTILLERY_TOKEN)");
  distillery::LoggingFlags logging;
  distillery::AddLoggingFlags(app, &logging);
  CLI11_PARSE(app, argc, argv);
  distillery::InitLogging("worker", logging);
  absl::StatusOr<std::string> target =
      distillery::NormalizeCoordinatorAddress(coordinator);
  if (!target.ok()) {
    return distillery::FailStartup(target.status(), distillery::kExitUsage);
  }
  if (name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    name = host;
  }

  auto profiles = distillery::LoadTeachersFile(teachers_file);
  if (!profiles.ok()) {
    return distillery::FailStartup(profiles.status(), distillery::kExitUsage);
  }
  auto metrics = distillery::StartMetrics(metrics_listen, "worker");
  if (!metrics.ok()) {
    return distillery::FailStartup(metrics.status(), distillery::kExitUsage);
  }
  // Destroyed explicitly before the worker: its destructor completes what
  // is still in flight, and those callbacks reach the worker.
  // One connection per request in flight (HTTP/1.1 to most teachers): raise
  // the soft limit on open files as far as the hard limit allows.
  const rlim_t files_needed = static_cast<rlim_t>(max_in_flight) + 256;
  if (const rlim_t files = distillery::RaiseOpenFileLimit(files_needed);
      files != 0 && files < files_needed) {
    spdlog::warn(
        "open-file limit {} is below the {} that --max-in-flight {} "
        "needs; raise it (ulimit -n)",
        files, files_needed, max_in_flight);
  }
  distillery::CurlHttpClientOptions http_options;
  http_options.max_connections = max_in_flight;
  http_options.max_connections_per_host = max_in_flight;
  auto http = std::make_unique<distillery::CurlHttpClient>(http_options);
  distillery::WorkerTeacherSet teachers =
      distillery::BuildWorkerTeachers(*profiles, *http);
  for (const distillery::WorkerTeacher& t : teachers.teachers) {
    distillery::metrics::TeacherLimits(
        t.profile.name, t.profile.rpm, t.profile.tpm, t.profile.limit_window_s,
        t.profile.max_concurrency);
  }
  auto token = distillery::ResolveToken(token_file, "DISTILLERY_TOKEN");
  if (!token.ok()) {
    return distillery::FailStartup(token.status(), distillery::kExitUsage);
  }
  security.token = *token;
  security.max_send_message_bytes = max_message_mb << 20;
  auto channel = distillery::MakeChannel(*target, security);
  if (!channel.ok()) {
    return distillery::FailStartup(channel.status(), distillery::kExitUsage);
  }
  auto client = distillery::MakeGrpcCoordinatorClient(*channel);
  distillery::WorkerOptions options;
  options.name = name;
  options.drain_timeout = std::chrono::seconds(drain_seconds);
  options.max_in_flight = max_in_flight;
  options.max_message_bytes = max_message_mb << 20;
  distillery::Worker worker(*client, teachers.teachers,
                            distillery::RealClock::Get(), options);
  distillery::OnTerminationSignal([&worker](int sig) {
    spdlog::info("signal {}: draining", sig);
    worker.Stop();
  });
  absl::Status status = worker.Run();
  http.reset();
  if (!status.ok()) {
    return distillery::FailStartup(status, distillery::kExitFailure);
  }
  return 0;
}
