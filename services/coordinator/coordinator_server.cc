#include "services/coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
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

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    CoordinatorServerOptions options) {
  std::unique_ptr<CoordinatorServer> self(new CoordinatorServer());
  absl::StatusOr<std::unique_ptr<Store>> store =
      OpenRocksDbStore(options.data_dir);
  if (!store.ok()) return store.status();
  self->store_ = std::move(*store);
  self->coordinator_ = std::make_unique<Coordinator>(
      *self->store_, options.teachers, RealClock::Get(), options.coordinator);
  if (absl::Status s = self->coordinator_->Recover(); !s.ok()) return s;
  for (const TeacherProfile& p : options.teachers) {
    metrics::TeacherLimits(p.name, p.rpm, p.tpm, p.max_concurrency);
  }
  self->metrics_ = RegisterCoordinatorMetrics(
      *self->coordinator_, *self->store_,
      3 * options.coordinator.heartbeat_interval);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  ClientServiceOptions client_options;
  client_options.token = options.client_token;
  client_options.max_prompt_bytes = options.max_prompt_bytes;
  client_options.max_concurrent_submissions =
      options.max_concurrent_submissions;
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
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  self->address_ = absl::StrCat(host, ":", port);

  CoordinatorServer* raw = self.get();
  self->housekeeping_ = std::thread([raw] {
    while (!raw->stopping_.load()) {
      raw->coordinator_->ExpireLeases();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  return self;
}

void CoordinatorServer::Wait() {
  if (server_) server_->Wait();
}

void CoordinatorServer::Shutdown(Duration grace) {
  // call_once makes a second caller wait for the first: main's destructor
  // must not destroy the housekeeping thread while the signal thread is
  // still joining it (std::terminate on a joinable std::thread).
  std::call_once(shutdown_once_, [&] {
    stopping_.store(true);
    metrics_.reset();
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            grace));
    }
    if (housekeeping_.joinable()) housekeeping_.join();
  });
}

}  // namespace distillery
