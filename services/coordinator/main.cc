// distillery-coordinator: parses flags and serves. All logic is in
// coordinator.cc and friends.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/app/startup.h"
#include "common/base/signals.h"
#include "common/metrics/metrics.h"
#include "services/coordinator/coordinator_server.h"

int main(int argc, char** argv) {
  distillery::ReturnLargeAllocationsToTheKernel();
  distillery::BlockTerminationSignals();
  CLI::App app{"Distillery coordinator: owns jobs, leases and answers"};
  // Every option's help shows its default.
  app.option_defaults()->always_capture_default();
  app.footer("Example:\n  distillery-coordinator --listen 127.0.0.1:7070 --data-dir data --teachers teachers.yaml");
  std::string listen = "127.0.0.1:7070";
  std::string data_dir;
  std::string teachers_file;
  std::string metrics_listen;
  int lease_seconds = 60;
  int heartbeat_ms = 1000;
  app.add_option("--listen", listen,
                 "gRPC address HOST:PORT (port 0: any); loopback by default, "
                 "other addresses want TLS and tokens")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir, "RocksDB directory")->required();
  app.add_option("--teachers", teachers_file, "teacher profiles (YAML)")
      ->required();
  app.add_option("--metrics-listen", metrics_listen,
                 "Prometheus /metrics address HOST:PORT");
  app.add_option("--lease-seconds", lease_seconds,
                 "lease duration without renewal")
      ->check(CLI::Range(1, 3600));
  app.add_option("--heartbeat-ms", heartbeat_ms, "worker heartbeat interval")
      ->check(CLI::Range(50, 600000));
  int restart_grace_ms = -1;
  app.add_option("--restart-grace-ms", restart_grace_ms,
                 "after an unclean stop, how long leasing waits for workers "
                 "to announce the tasks they hold (default: 2 heartbeats)")
      ->check(CLI::Range(0, 3600000));
  distillery::ServerTlsOptions tls;
  std::string client_token_file, worker_token_file;
  int max_message_mb = distillery::kDefaultMaxMessageBytes >> 20;
  int max_concurrent_submissions = 16;
  app.add_option("--tls-cert", tls.cert_file,
                 "PEM certificate chain: serve TLS only (with --tls-key)");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", tls.client_ca_file,
                 "PEM CA: require client certificates signed by it (mTLS)");
  app.add_option("--auth-token-file", client_token_file,
                 "file with the bearer token clients (CLI) must send");
  app.add_option("--worker-token-file", worker_token_file,
                 "file with the bearer token workers must send");
  app.add_option("--max-message-mb", max_message_mb,
                 "largest gRPC message, either way; leases, reports and "
                 "export chunks are cut to fit it (default 64)")
      ->check(CLI::Range(1, distillery::kMaxMessageBytesCeiling >> 20));
  app.add_option("--max-concurrent-submissions", max_concurrent_submissions,
                 "submissions in flight at once (0: no limit); more get "
                 "RESOURCE_EXHAUSTED")
      ->check(CLI::Range(0, 1 << 20));
  size_t max_prompt_bytes = distillery::kDefaultMaxPromptBytes;
  app.add_option("--max-prompt-bytes", max_prompt_bytes,
                 "longest prompt-file line a submission takes (the CLI's "
                 "submit has the same flag)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 30));
  bool sync_writes = false;
  app.add_flag("--sync-writes", sync_writes,
               "fsync the write-ahead log before each commit is acknowledged, "
               "so an acknowledged answer survives a power loss (slower)");
  std::string near_duplicates = "commit";
  app.add_option("--near-duplicates", near_duplicates,
                 "when near-duplicate answers are found: 'commit' (each answer "
                 "as it is stored; status counts them live) or 'export' (only "
                 "by export --near-dup-threshold; commits are cheaper)")
      ->check(CLI::IsMember({"commit", "export"}));
  distillery::LoggingFlags logging;
  distillery::AddLoggingFlags(app, &logging);
  CLI11_PARSE(app, argc, argv);
  distillery::InitLogging("coordinator", logging);

  auto teachers = distillery::LoadTeachersFile(teachers_file);
  if (!teachers.ok()) {
    return distillery::FailStartup(teachers.status(), distillery::kExitUsage);
  }
  auto metrics = distillery::StartMetrics(metrics_listen, "coordinator");
  if (!metrics.ok()) {
    return distillery::FailStartup(metrics.status(), distillery::kExitUsage);
  }
  distillery::CoordinatorServerOptions options;
  options.listen = listen;
  options.data_dir = data_dir;
  options.sync_writes = sync_writes;
  options.teachers = std::move(*teachers);
  options.tls = tls;
  for (auto [file, token] : {std::pair{&client_token_file, &options.client_token},
                             std::pair{&worker_token_file, &options.worker_token}}) {
    if (file->empty()) continue;
    auto secret = distillery::ReadSecretFile(*file);
    if (!secret.ok()) {
      return distillery::FailStartup(secret.status(), distillery::kExitUsage);
    }
    *token = std::move(*secret);
  }
  options.max_message_bytes = max_message_mb << 20;
  options.max_concurrent_submissions = max_concurrent_submissions;
  options.coordinator.lease_duration = std::chrono::seconds(lease_seconds);
  options.coordinator.heartbeat_interval =
      std::chrono::milliseconds(heartbeat_ms);
  options.coordinator.restart_grace = std::chrono::milliseconds(
      restart_grace_ms >= 0 ? restart_grace_ms : 2 * heartbeat_ms);
  options.coordinator.max_prompt_bytes = max_prompt_bytes;
  options.coordinator.near_duplicates_at_commit = near_duplicates == "commit";
  auto server = distillery::CoordinatorServer::Start(std::move(options));
  if (!server.ok()) {
    return distillery::FailStartup(server.status(), distillery::kExitFailure);
  }
  distillery::CoordinatorServer* raw = server->get();
  distillery::OnTerminationSignal([raw](int sig) {
    spdlog::info("signal {}: shutting down", sig);
    raw->Shutdown();
  });
  std::cout << "distillery-coordinator listening on " << (*server)->address()
            << std::endl;
  spdlog::info("coordinator serving on {} with data in {}",
               (*server)->address(), data_dir);
  spdlog::info("TLS {}, client certificates {}, client token {}, worker token {}",
               tls.cert_file.empty() ? "off" : "on",
               tls.client_ca_file.empty() ? "not required" : "required",
               client_token_file.empty() ? "off" : "required",
               worker_token_file.empty() ? "off" : "required");
  (*server)->Wait();
  return 0;
}
