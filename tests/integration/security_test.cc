// Security of the gRPC endpoints with real processes on loopback: TLS,
// mutual TLS, bearer tokens (good, missing, wrong; counted), limits on
// prompt length and submissions in flight, and a teacher API key that must
// appear nowhere but in the worker's environment: not in logs, RocksDB
// files, exports, or the bytes between worker and coordinator (recorded by
// a TCP proxy in this test). Certificates are made here with openssl.
#include <arpa/inet.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "distillery/v1/client_service.grpc.pb.h"
#include "distillery/v1/worker_service.grpc.pb.h"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

namespace fs = std::filesystem;

// A CA, a server certificate for localhost/127.0.0.1, a client certificate
// from the same CA, and a client certificate from a CA nobody trusts.
void MakeCertificates(const std::string& dir) {
  const std::string script = R"(set -e
cd ')" + dir + R"('
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 2 -subj "/CN=$1" 2>/dev/null; }
leaf() {  # NAME CA EXT
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
    -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
}
ca ca
ca rogue-ca
leaf server ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf worker ca "extendedKeyUsage=clientAuth"
leaf rogue rogue-ca "extendedKeyUsage=clientAuth"
)";
  WriteFile(dir + "/certs.sh", script);
  ASSERT_EQ(std::system(("bash '" + dir + "/certs.sh'").c_str()), 0)
      << "openssl failed (apt-get install openssl)";
}

// Forwards one listening port to `target` and records every byte, each
// direction apart.
class RecordingProxy {
 public:
  explicit RecordingProxy(int target_port) : target_port_(target_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(listen_fd_, 16);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~RecordingProxy() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    accept_thread_.join();
    for (std::thread& t : pipes_) t.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Bytes sent to the target (i == 0) or from it (i == 1).
  std::string Recorded(int i) {
    std::lock_guard<std::mutex> lock(mu_);
    return recorded_[i];
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      int server = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(target_port_);
      if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0) {
        close(client);
        close(server);
        continue;
      }
      pipes_.emplace_back([this, client, server] { Pipe(client, server); });
    }
  }
  void Pipe(int client, int server) {
    char buf[16384];
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    while (!stop_) {
      if (poll(fds, 2, 100) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          closed = true;
          break;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          recorded_[i].append(buf, n);
        }
        const int to = i == 0 ? server : client;
        for (ssize_t off = 0; off < n;) {
          ssize_t w = write(to, buf + off, n - off);
          if (w <= 0) {
            closed = true;
            break;
          }
          off += w;
        }
      }
      if (closed) break;
    }
    close(client);
    close(server);
  }

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::vector<std::thread> pipes_;  // touched by the accept thread only
  std::mutex mu_;
  std::string recorded_[2];
};

std::string PromptFile(int n) {
  return JsonLines(n, [](int i) {
    return nlohmann::json{{"id", "s" + std::to_string(i)},
                          {"prompt", "Security question " + std::to_string(i) +
                                         " about the marker PLAINTEXT-CANARY"}};
  });
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("security");
    MakeCertificates(dir_);
    WriteFile(dir_ + "/prompts.jsonl", PromptFile(20));
    WriteFile(dir_ + "/client.token", "client-token-123\n");
    WriteFile(dir_ + "/worker.token", "worker-token-456\n");
    WriteFile(dir_ + "/bad.token", "nope\n");
    unsetenv("DISTILLERY_TOKEN");
  }

  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    sim_.reset();
    unsetenv("DISTILLERY_TOKEN");
    unsetenv("SIM_API_KEY");
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // teacher-sim, with a required API key when `api_key` is set and `extra`
  // flags (its logs go to their own directory: the simulator is the
  // teacher, not Distillery).
  void StartSim(const std::string& api_key = "",
                const std::vector<std::string>& extra = {}) {
    fs::create_directories(dir_ + "/sim");
    std::vector<std::string> args{"--latency-ms", "5"};
    if (!api_key.empty()) {
      args.insert(args.end(), {"--require-api-key", api_key});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    std::string sim;
    sim_ = SpawnTeacherSim(dir_ + "/sim", std::move(args), &sim);
    ASSERT_FALSE(sim.empty()) << sim_->Stderr();
    sim_address_ = sim;
    WriteFile(dir_ + "/teachers.yaml",
              "teachers:\n" + SimTeacherProfile(sim) +
                  (api_key.empty() ? "" : "    api_key_env: SIM_API_KEY\n") +
                  "    max_concurrency: 8\n");
  }

  void StartCoordinator(std::vector<std::string> extra) {
    metrics_port_ = PickFreePort();
    extra.insert(extra.begin(), {"--metrics-listen",
                                 "127.0.0.1:" + std::to_string(metrics_port_)});
    coordinator_ = SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data",
                                    dir_ + "/teachers.yaml", std::move(extra));
    address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(address_.empty()) << coordinator_->Stderr();
    port_ = std::stoi(address_.substr(address_.rfind(':') + 1));
  }

  void StartWorker(const std::string& coordinator,
                   std::vector<std::string> extra) {
    extra.insert(extra.begin(),
                 {"--name", "w" + std::to_string(workers_.size())});
    workers_.push_back(SpawnWorker(dir_, coordinator, dir_ + "/teachers.yaml",
                                   std::move(extra)));
  }

  CommandResult Cli(const std::string& coordinator,
                    std::vector<std::string> args, int timeout = 120) {
    return RunCli(coordinator, std::move(args), dir_, timeout);
  }

  // Every file under the test's directory but the simulator's: logs, CLI
  // output, RocksDB files. Fails the test for each that holds one of
  // `needles`; returns how many files were read.
  int ExpectInNoFile(const std::vector<std::string>& needles) {
    int files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      if (!entry.is_regular_file()) continue;
      if (entry.path().parent_path() == fs::path(dir_ + "/sim")) continue;
      ++files;
      const std::string text = ReadFile(entry.path().string());
      for (const std::string& needle : needles) {
        EXPECT_EQ(text.find(needle), std::string::npos)
            << "'" << needle << "' found in " << entry.path();
      }
    }
    return files;
  }

  // Submits the prompt file, waits for the job and exports it; returns the
  // export's text ("" on failure, with test failures recorded).
  std::string Harvest(const std::string& coordinator,
                      const std::vector<std::string>& flags) {
    std::vector<std::string> submit = flags;
    submit.insert(submit.end(), {"submit", dir_ + "/prompts.jsonl",
                                 "--teacher", "sim", "--model", "sim-small"});
    CommandResult r = Cli(coordinator, submit);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return "";
    std::string job = r.out.substr(0, r.out.find('\n'));
    std::vector<std::string> watch = flags;
    watch.insert(watch.end(), {"watch", job});
    r = Cli(coordinator, watch, 60);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> exp = flags;
    const std::string out = dir_ + "/export-" + job + ".jsonl";
    exp.insert(exp.end(),
               {"export", job, "--format", "raw", "--include-duplicates",
                "--include-failed", "--out", out});
    r = Cli(coordinator, exp);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string text = ReadFile(out);
    size_t lines = 0;
    for (char c : text) lines += c == '\n';
    EXPECT_EQ(lines, 20u);
    EXPECT_EQ(text.find("\"state\":\"failed\""), std::string::npos) << text;
    return text;
  }

  std::string Metrics() {
    return HttpGet("127.0.0.1:" + std::to_string(metrics_port_), "/metrics");
  }

  std::string dir_, address_, sim_address_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<Process> sim_, coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(SecurityTest, TlsServesClientsAndWorkersAndRefusesPlaintext) {
  StartSim();
  StartCoordinator({"--tls-cert", dir_ + "/server.crt", "--tls-key",
                    dir_ + "/server.key"});
  const std::string tls_ca = dir_ + "/ca.crt";
  StartWorker(address_, {"--tls-ca", tls_ca});
  EXPECT_FALSE(Harvest(address_, {"--tls-ca", tls_ca}).empty());

  // localhost is in the certificate too; health needs no token.
  const std::string by_name = "localhost:" + std::to_string(port_);
  CommandResult r = Cli(by_name, {"--tls-ca", tls_ca, "health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  // Plaintext against TLS, and TLS trusting the wrong CA, both fail.
  r = Cli(address_, {"jobs"}, 30);
  EXPECT_NE(r.exit_code, 0);
  r = Cli(address_, {"--tls-ca", dir_ + "/rogue-ca.crt", "jobs"}, 30);
  EXPECT_NE(r.exit_code, 0);
  // A name the certificate does not hold is refused.
  r = Cli(address_,
          {"--tls-ca", tls_ca, "--tls-server-name", "evil.example", "jobs"},
          30);
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(SecurityTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  StartSim();
  StartCoordinator({"--tls-cert", dir_ + "/server.crt", "--tls-key",
                    dir_ + "/server.key", "--tls-client-ca",
                    dir_ + "/ca.crt"});
  const std::vector<std::string> worker_tls{
      "--tls-ca", dir_ + "/ca.crt", "--tls-cert", dir_ + "/worker.crt",
      "--tls-key", dir_ + "/worker.key"};
  StartWorker(address_, worker_tls);
  EXPECT_FALSE(Harvest(address_, worker_tls).empty());

  CommandResult r = Cli(address_, {"--tls-ca", dir_ + "/ca.crt", "jobs"}, 30);
  EXPECT_NE(r.exit_code, 0) << "no client certificate was accepted";
  r = Cli(address_, {"--tls-ca", dir_ + "/ca.crt", "--tls-cert",
                     dir_ + "/rogue.crt", "--tls-key", dir_ + "/rogue.key",
                     "jobs"},
          30);
  EXPECT_NE(r.exit_code, 0) << "a certificate from another CA was accepted";
}

TEST_F(SecurityTest, TokensAreRequiredSeparatelyAndRefusalsCounted) {
  StartSim();
  StartCoordinator({"--auth-token-file", dir_ + "/client.token",
                    "--worker-token-file", dir_ + "/worker.token"});
  CommandResult r = Cli(address_, {"jobs"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing bearer token"), std::string::npos) << r.err;
  r = Cli(address_, {"--token-file", dir_ + "/bad.token", "jobs"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("wrong bearer token"), std::string::npos) << r.err;
  // The worker token is not a client token.
  r = Cli(address_, {"--token-file", dir_ + "/worker.token", "jobs"});
  EXPECT_NE(r.err.find("wrong bearer token"), std::string::npos) << r.err;
  r = Cli(address_, {"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The status code itself, from a plain stub.
  auto stub = v1::ClientService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  const std::pair<const char*, grpc::StatusCode> cases[] = {
      {"", grpc::StatusCode::UNAUTHENTICATED},
      {"Bearer nope", grpc::StatusCode::UNAUTHENTICATED},
      {"Bearer client-token-123", grpc::StatusCode::OK}};
  for (const auto& [header, code] : cases) {
    grpc::ClientContext context;
    if (*header) context.AddMetadata("authorization", header);
    v1::ListJobsResponse jobs;
    EXPECT_EQ(stub->ListJobs(&context, v1::ListJobsRequest(), &jobs)
                  .error_code(),
              code)
        << header;
  }

  // A worker with the client token gets nothing; one with its own token
  // (from the environment) does the whole job.
  StartWorker(address_, {"--token-file", dir_ + "/client.token"});
  setenv("DISTILLERY_TOKEN", "worker-token-456", 1);
  StartWorker(address_, {});
  setenv("DISTILLERY_TOKEN", "client-token-123", 1);
  EXPECT_FALSE(Harvest(address_, {}).empty());

  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("distillery_rejected_calls_total{reason=\"token_missing\",service=\"client\"} 2"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("distillery_rejected_calls_total{reason=\"token_wrong\",service=\"client\"} 3"),
            std::string::npos);
  EXPECT_NE(metrics.find("distillery_rejected_calls_total{reason=\"token_wrong\",service=\"worker\"}"),
            std::string::npos);
  // The refused worker's log says why.
  EXPECT_NE(workers_[0]->Stderr().find("wrong bearer token"),
            std::string::npos)
      << workers_[0]->Stderr();
}

// Calls `method` ("/package.Service/Method") with one empty message and
// returns the status. It goes as a generic stream, whatever the method's
// kind: on the wire unary, client-, server- and bidi-streaming calls differ
// only in how many messages each side sends, so one empty message and a
// half-close is a valid call of every kind.
grpc::Status CallWithEmptyMessage(std::shared_ptr<grpc::Channel> channel,
                                  const std::string& method,
                                  const std::string& authorization) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  if (!authorization.empty()) {
    context.AddMetadata("authorization", authorization);
  }
  auto wait = [&cq] {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return ok;
  };
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&context, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  if (wait()) {
    grpc::Slice empty(std::string{});
    grpc::ByteBuffer message(&empty, 1);
    call->Write(message, reinterpret_cast<void*>(2));
    if (wait()) {
      call->WritesDone(reinterpret_cast<void*>(3));
      wait();
    }
    grpc::ByteBuffer reply;
    do {
      call->Read(&reply, reinterpret_cast<void*>(4));
    } while (wait());
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  wait();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// Every method of every Distillery service, as the service descriptors list
// them (so a method added later is covered without editing this test),
// refuses a call without a token, with a wrong one, and with the other
// service's token, before doing anything.
TEST_F(SecurityTest, EveryMethodOfEveryServiceRequiresItsToken) {
  StartSim();
  StartCoordinator({"--auth-token-file", dir_ + "/client.token",
                    "--worker-token-file", dir_ + "/worker.token"});
  auto channel =
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  struct Service {
    const char* name;
    // A message of the service's file: naming it links the file in, so its
    // descriptors are in the pool.
    const google::protobuf::FileDescriptor* file;
    const char* other_services_token;
  };
  const Service services[] = {
      {v1::ClientService::service_full_name(),
       v1::GetJobRequest::descriptor()->file(), "Bearer worker-token-456"},
      {v1::WorkerService::service_full_name(),
       v1::RegisterRequest::descriptor()->file(), "Bearer client-token-123"}};
  int methods = 0;
  for (const Service& service : services) {
    const google::protobuf::ServiceDescriptor* descriptor =
        service.file->pool()->FindServiceByName(service.name);
    ASSERT_NE(descriptor, nullptr) << service.name;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      const std::string method = absl::StrCat(
          "/", descriptor->full_name(), "/", descriptor->method(i)->name());
      for (const std::string header :
           {std::string(), std::string("Bearer wrong-token"),
            std::string(service.other_services_token)}) {
        grpc::Status s = CallWithEmptyMessage(channel, method, header);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << method << " with authorization '" << header
            << "': " << s.error_message();
      }
      ++methods;
    }
  }
  EXPECT_GE(methods, 13);  // 9 client methods and 4 worker methods today
  // The same path with the right token gets past the check.
  grpc::Status ok = CallWithEmptyMessage(
      channel, absl::StrCat("/", v1::ClientService::service_full_name(),
                            "/ListJobs"),
      "Bearer client-token-123");
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  // Nothing was retried, submitted or registered by the refused calls.
  CommandResult jobs = Cli(address_, {"--token-file", dir_ + "/client.token",
                                      "jobs"});
  EXPECT_EQ(jobs.exit_code, 0) << jobs.err;
  EXPECT_EQ(jobs.out.find("job-"), std::string::npos) << jobs.out;
}

TEST_F(SecurityTest, LimitsOnPromptLengthAndSubmissionsInFlight) {
  StartSim();
  StartCoordinator({"--max-prompt-bytes", "1024", "--max-concurrent-submissions",
                    "1", "--max-message-mb", "1"});
  WriteFile(dir_ + "/long.jsonl",
            "{\"prompt\":\"" + std::string(2000, 'x') + "\"}\n");
  CommandResult r = Cli(address_, {"submit", dir_ + "/long.jsonl",
                                   "--teacher", "sim", "--model", "m"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("over the limit of 1024"), std::string::npos)
      << r.err;

  auto stub = v1::ClientService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  {  // A message over --max-message-mb is refused by gRPC itself.
    grpc::ClientContext context;
    v1::GetJobRequest big;
    big.set_job_id(std::string(2 << 20, 'j'));
    v1::Job job;
    grpc::Status s = stub->GetJob(&context, big, &job);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
  }

  // Hold one submission open, then a second is refused.
  grpc::ClientContext context;
  v1::SubmitResponse response;
  auto writer = stub->Submit(&context, &response);
  v1::SubmitRequest first;
  first.mutable_spec()->set_teacher("sim");
  first.mutable_spec()->set_model("sim-chat");
  ASSERT_TRUE(writer->Write(first));
  // The open stream's handler may take a moment to start: retry until the
  // refusal shows (or give up after a few seconds).
  for (int i = 0; i < 50; ++i) {
    r = Cli(address_, {"submit", dir_ + "/prompts.jsonl", "--teacher", "sim",
                       "--model", "sim-chat"});
    if (r.exit_code != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("submissions already in flight"), std::string::npos)
      << r.err;
  first.Clear();
  first.add_lines("{\"prompt\":\"one\"}");
  ASSERT_TRUE(writer->Write(first));
  writer->WritesDone();
  EXPECT_TRUE(writer->Finish().ok());
  // With the first committed, submitting works again.
  r = Cli(address_, {"submit", dir_ + "/prompts.jsonl", "--teacher", "sim",
                     "--model", "sim-chat"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(Metrics().find("reason=\"submissions_in_flight\""),
            std::string::npos);
}

// The teacher key lives in the worker's environment only. The simulator
// refuses calls without it, so a finished job proves the key was used.
TEST_F(SecurityTest, TeacherKeyAppearsNowhereButTheWorkerEnvironment) {
  const std::string key = "sk-LEAKCHECK-7f3a9c1e5b2d4680";
  StartSim(key);
  StartCoordinator({"--log-level", "debug"});
  RecordingProxy proxy(port_);
  setenv("SIM_API_KEY", key.c_str(), 1);
  StartWorker(proxy.address(), {"--log-level", "debug"});
  unsetenv("SIM_API_KEY");
  const std::string exported = Harvest(address_, {});
  ASSERT_FALSE(exported.empty());
  EXPECT_EQ(exported.find(key), std::string::npos);

  // The recording is real: the worker's reports hold the answers, and the
  // leases it got the prompts.
  const std::string to_coordinator = proxy.Recorded(0);
  const std::string from_coordinator = proxy.Recorded(1);
  EXPECT_NE(to_coordinator.find("sim-small"), std::string::npos);
  EXPECT_NE(from_coordinator.find("PLAINTEXT-CANARY"), std::string::npos);
  EXPECT_EQ(to_coordinator.find(key), std::string::npos)
      << "the key went to the coordinator";
  EXPECT_EQ(from_coordinator.find(key), std::string::npos);

  workers_.clear();  // SIGKILL; RocksDB files are read with it still open
  coordinator_->Signal(SIGTERM);
  coordinator_->Wait();
  EXPECT_GT(ExpectInNoFile({key}), 10);  // logs, RocksDB files, the export
  EXPECT_TRUE(fs::exists(dir_ + "/data/CURRENT"));
}

// A teacher that answers 401 quoting the key JSON-escaped ('/' as \/, as
// PHP's json_encode writes it) pauses the teacher; the key, with a '/' and a
// '+' in it, reaches neither the pause reason in status, nor any log, nor
// RocksDB, in any form: raw, escaped, URL-encoded or base64.
TEST_F(SecurityTest, AKeyTheTeacherEchoesEscapedAppearsNowhere) {
  const std::string key = "sk-proj-AbC/dEf+GhI9-LEAKCHECK-7f3a9c";
  const std::vector<std::string> forms = {
      key,
      // What survives of it in raw, JSON-escaped and URL-encoded text.
      "GhI9-LEAKCHECK-7f3a9c",
      "sk-proj-AbC",
      // Its base64 at the three offsets (Python's base64 module), standard
      // and URL-safe alike.
      "c2stcHJvai1BYkMvZEVmK0doSTktTEVBS0NIRUNLLTdmM2E5Y",
      "NrLXByb2otQWJDL2RFZitHaEk5LUxFQUtDSEVDSy03ZjNhOW",
      "zay1wcm9qLUFiQy9kRWYrR2hJOS1MRUFLQ0hFQ0stN2YzYTlj",
  };
  StartSim(key, {"--fault-rates", "401echo=1"});
  StartCoordinator({"--log-level", "debug"});
  setenv("SIM_API_KEY", key.c_str(), 1);
  StartWorker(address_, {"--log-level", "debug"});
  unsetenv("SIM_API_KEY");
  CommandResult r = Cli(address_, {"submit", dir_ + "/prompts.jsonl",
                                   "--teacher", "sim", "--model", "sim-small"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string job = r.out.substr(0, r.out.find('\n'));

  // The 401 pauses the teacher for the whole cluster, saying why.
  std::string status;
  for (int i = 0; i < 600; ++i) {
    status = Cli(address_, {"status", job, "--json"}).out;
    if (status.find("\"paused\":true") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(status.find("\"paused\":true"), std::string::npos) << status;
  EXPECT_NE(status.find("HTTP 401 from teacher"), std::string::npos) << status;
  EXPECT_NE(status.find("Incorrect API key provided: [redacted]"),
            std::string::npos)
      << status;
  const std::string text = Cli(address_, {"status", job}).out;
  EXPECT_NE(text.find("PAUSED"), std::string::npos) << text;
  for (const std::string& form : forms) {
    EXPECT_EQ(status.find(form), std::string::npos) << form << "\n" << status;
    EXPECT_EQ(text.find(form), std::string::npos) << form << "\n" << text;
  }
  // The simulator was asked, and it did echo the key.
  EXPECT_NE(HttpGet(sim_address_, "/stats").find("\"401echo\""),
            std::string::npos);

  workers_.clear();  // SIGKILL; RocksDB files are read with it still open
  coordinator_->Signal(SIGTERM);
  coordinator_->Wait();
  EXPECT_GT(ExpectInNoFile(forms), 5);  // logs, CLI output, RocksDB files
  EXPECT_TRUE(fs::exists(dir_ + "/data/CURRENT"));
}

}  // namespace
}  // namespace distillery::testing
