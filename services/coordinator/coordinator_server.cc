#include "services/coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/grpc_services.h"

namespace distillery {

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    CoordinatorServerOptions options) {
  // A task holds its prompt line and the system prompt (each at most
  // max_prompt_bytes) and small fields; a lease holds at least one task.
  const size_t batch_budget = BatchBudgetBytes(options.max_message_bytes);
  constexpr size_t kTaskFieldsBytes = 64 << 10;
  if (2 * options.max_prompt_bytes + kTaskFieldsBytes > batch_budget) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompts of up to ", options.max_prompt_bytes,
        " bytes (--max-prompt-bytes) do not fit in a gRPC message of ",
        options.max_message_bytes,
        " bytes (--max-message-mb) with the system prompt: raise "
        "--max-message-mb or lower --max-prompt-bytes"));
  }
  options.coordinator.max_lease_bytes = batch_budget;
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
  client_options.max_chunk_bytes = batch_budget;
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
