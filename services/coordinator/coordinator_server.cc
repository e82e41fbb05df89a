#include "services/coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/grpc_services.h"

namespace distillery {

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
  int port = 0;
  builder.AddListeningPort(options.listen, *credentials, &port);
  builder.RegisterService(self->client_service_.get());
  builder.RegisterService(self->worker_service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  self->server_ = builder.BuildAndStart();
  if (!self->server_ || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
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
