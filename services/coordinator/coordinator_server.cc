#include "services/coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/grpc_services.h"

namespace distillery {
namespace {

// Why gRPC could not listen on `listen` (HOST:PORT), found by binding it
// ourselves: gRPC only logs the reason. "" when the bind works now.
std::string ListenFailure(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return "expected HOST:PORT";
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                           listen.substr(colon + 1).c_str(), &hints, &found);
      rc != 0) {
    return gai_strerror(rc);
  }
  std::string why;
  for (addrinfo* a = found; a != nullptr && why.empty(); a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
      why = errno == EADDRINUSE ? "address already in use" : std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(found);
  return why;
}

}  // namespace

namespace {

// True for addresses only this host can reach: 127.0.0.0/8, ::1,
// localhost, unix sockets. Anything else (0.0.0.0, [::], a name, an
// interface address) may be reachable from other hosts.
bool IsLocalOnly(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return true;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" ||
         absl::StartsWith(host, "127.");
}

}  // namespace

std::string ExposureWarning(const CoordinatorServerOptions& options) {
  if (IsLocalOnly(options.listen)) return "";
  // A client certificate from the CA authenticates every caller of both
  // services; otherwise each service needs its token.
  const bool mtls = !options.tls.client_ca_file.empty();
  std::vector<std::string> open;
  if (!mtls && options.client_token.empty()) {
    open.push_back("the client API (submit, retry, cancel, export: no "
                   "--auth-token-file)");
  }
  if (!mtls && options.worker_token.empty()) {
    open.push_back("the worker API (answers, leases: no --worker-token-file)");
  }
  if (open.empty() && !options.tls.cert_file.empty()) return "";
  if (open.empty()) {
    return absl::StrCat("serving ", options.listen,
                        " without TLS: tokens and answers cross the network "
                        "in clear text (set --tls-cert and --tls-key)");
  }
  return absl::StrCat(
      "UNAUTHENTICATED: serving ", options.listen,
      ", an address other hosts may reach, with ", absl::StrJoin(open, " and "),
      " open to anyone who can connect",
      options.tls.cert_file.empty() ? ", and without TLS" : "",
      ". Listen on 127.0.0.1 or set the tokens (README \"Security\")");
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    CoordinatorServerOptions options) {
  // A task holds its prompt line and the system prompt (each at most
  // max_prompt_bytes) and small fields; a lease holds at least one task.
  const size_t batch_budget = BatchBudgetBytes(options.max_message_bytes);
  constexpr size_t kTaskFieldsBytes = 64 << 10;
  const size_t max_prompt_bytes = options.coordinator.max_prompt_bytes;
  if (2 * max_prompt_bytes + kTaskFieldsBytes > batch_budget) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompts of up to ", max_prompt_bytes,
        " bytes (--max-prompt-bytes) do not fit in a gRPC message of ",
        options.max_message_bytes,
        " bytes (--max-message-mb) with the system prompt: raise "
        "--max-message-mb or lower --max-prompt-bytes"));
  }
  options.coordinator.max_lease_bytes = batch_budget;
  std::unique_ptr<CoordinatorServer> self(new CoordinatorServer());
  self->clock_ = options.clock;
  absl::StatusOr<std::unique_ptr<Store>> store =
      OpenRocksDbStore(options.data_dir,
                       StoreOptions{.sync_writes = options.sync_writes});
  if (!store.ok()) return store.status();
  self->store_ = std::move(*store);
  self->coordinator_ = std::make_unique<Coordinator>(
      *self->store_, options.teachers, *options.clock, options.coordinator);
  if (absl::Status s = self->coordinator_->Recover(); !s.ok()) return s;
  for (const TeacherProfile& p : options.teachers) {
    metrics::TeacherLimits(p.name, p.rpm, p.tpm, p.limit_window_s,
                           p.max_concurrency);
  }
  self->metrics_ = RegisterCoordinatorMetrics(
      *self->coordinator_, *self->store_,
      3 * options.coordinator.heartbeat_interval);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  ClientServiceOptions client_options;
  client_options.token = options.client_token;
  client_options.max_concurrent_submissions =
      options.max_concurrent_submissions;
  client_options.max_chunk_bytes = batch_budget;
  self->client_service_ = std::make_unique<ClientServiceImpl>(
      *self->coordinator_, std::move(client_options));
  self->worker_service_ = std::make_unique<WorkerServiceImpl>(
      *self->coordinator_, options.worker_token);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which lets a second coordinator
  // listen on the same port and take half the calls: a port in use must
  // fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(options.listen, *credentials, &port);
  builder.RegisterService(self->client_service_.get());
  builder.RegisterService(self->worker_service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  self->server_ = builder.BuildAndStart();
  if (!self->server_ || port == 0) {
    const std::string why = ListenFailure(options.listen);
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen, why.empty() ? "" : ": ", why));
  }
  if (std::string warning = ExposureWarning(options); !warning.empty()) {
    spdlog::warn("{}", warning);
  }
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  self->address_ = absl::StrCat(host, ":", port);

  CoordinatorServer* raw = self.get();
  self->housekeeping_ = std::thread([raw] { raw->Housekeep(); });
  return self;
}

void CoordinatorServer::Housekeep() {
  constexpr Duration kInterval = std::chrono::milliseconds(200);
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.Unlock();
    coordinator_->ExpireLeases();
    mu_.Lock();
    clock_->AwaitWithDeadline(&mu_, absl::Condition(&stopping_),
                              clock_->Now() + kInterval);
  }
}

void CoordinatorServer::Wait() {
  if (server_) server_->Wait();
}

void CoordinatorServer::Shutdown(Duration grace) {
  // call_once makes a second caller wait for the first: main's destructor
  // must not destroy the housekeeping thread while the signal thread is
  // still joining it (std::terminate on a joinable std::thread).
  std::call_once(shutdown_once_, [&] {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    metrics_.reset();
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            grace));
    }
    if (housekeeping_.joinable()) housekeeping_.join();
    // No call is served any more: the lease table is final. Saved, the next
    // start restores it, and what workers hold now is not leased twice.
    if (coordinator_) {
      absl::StatusOr<int> saved = coordinator_->SaveLeases();
      if (saved.ok()) {
        spdlog::info("saved {} leases for the next start", *saved);
      } else {
        spdlog::error("cannot save the lease table: {}",
                      std::string(saved.status().message()));
      }
    }
  });
}

}  // namespace distillery
