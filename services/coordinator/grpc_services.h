// Thin gRPC services over Coordinator: convert between gRPC and absl
// statuses, stream, and nothing else. They use gRPC's synchronous API, whose
// handlers run on gRPC's thread pool and may block: a watch waits on the
// coordinator and an export writes with flow control. The callback API would
// save those threads, but both calls are few (one per user command).
#ifndef DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_
#define DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_

#include <atomic>
#include <string>
#include <utility>

#include "common/base/clock.h"
#include "common/rpc/grpc_security.h"
#include "distillery/v1/client_service.grpc.pb.h"
#include "distillery/v1/worker_service.grpc.pb.h"
#include "common/rpc/message_limits.h"
#include "services/coordinator/coordinator.h"

namespace distillery {

grpc::Status ToGrpcStatus(const absl::Status& status);

// The one door to the Coordinator for a gRPC service: it holds the
// coordinator and hands it out only to a handler whose call passed the bearer
// token check, so a handler cannot reach it without the check (a service
// holds no other reference). Every handler body is
//   return guard_.Authorized(*context, [&](Coordinator& coordinator) {...});
// Why not gRPC's own hooks: in gRPC 1.51 an AuthMetadataProcessor runs only
// on TLS credentials (the insecure ones assert), and a server interceptor
// cannot refuse a call before its handler runs (hijacking is client-side
// only; a server interceptor can rewrite the status after the handler has
// already acted). The health service stays open for probes.
// Thread-safe (immutable).
class TokenGuard {
 public:
  // `service` labels the refusal counter; an empty `token` admits all.
  TokenGuard(Coordinator& coordinator, std::string service, std::string token)
      : coordinator_(coordinator),
        service_(std::move(service)),
        check_(std::move(token)) {}

  // Runs `handler(coordinator)` when the call carries the token; else
  // returns UNAUTHENTICATED (counted and logged) without running it.
  template <typename Handler>
  grpc::Status Authorized(const grpc::ServerContext& context,
                          Handler&& handler) const {
    if (grpc::Status s = Check(context); !s.ok()) return s;
    return std::forward<Handler>(handler)(coordinator_);
  }

 private:
  grpc::Status Check(const grpc::ServerContext& context) const;

  Coordinator& coordinator_;
  const std::string service_;
  const BearerTokenCheck check_;
};

struct ClientServiceOptions {
  std::string token;                   // bearer token of clients; "" for none
  int max_concurrent_submissions = 0;  // 0: no limit
  // Records of one export chunk, in bytes (BatchBudgetBytes of the message
  // limit), as well as in count.
  size_t max_chunk_bytes = BatchBudgetBytes(kDefaultMaxMessageBytes);
  // How long a watch waits for a change before it sends the job again.
  // Watches are paced (at most a few updates a second) on the
  // coordinator's clock.
  Duration watch_refresh = std::chrono::seconds(5);
};

class ClientServiceImpl final : public v1::ClientService::Service {
 public:
  ClientServiceImpl(Coordinator& coordinator, ClientServiceOptions options)
      : guard_(coordinator, "client", options.token),
        options_(std::move(options)) {}

  grpc::Status Submit(grpc::ServerContext* context,
                      grpc::ServerReader<v1::SubmitRequest>* reader,
                      v1::SubmitResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context,
                      const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context,
                        const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context,
                        const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::Job>* writer) override;
  grpc::Status RetryJob(grpc::ServerContext* context,
                        const v1::RetryJobRequest* request,
                        v1::Job* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context,
                         const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status Export(grpc::ServerContext* context,
                      const v1::ExportRequest* request,
                      grpc::ServerWriter<v1::ExportChunk>* writer) override;
  grpc::Status ResumeJob(grpc::ServerContext* context,
                         const v1::ResumeJobRequest* request,
                         v1::Job* response) override;
  grpc::Status ResumeTeacher(grpc::ServerContext* context,
                             const v1::ResumeTeacherRequest* request,
                             v1::ResumeTeacherResponse* response) override;

 private:
  const TokenGuard guard_;  // the only way to the coordinator
  const ClientServiceOptions options_;
  std::atomic<int> submissions_in_flight_{0};
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Coordinator& coordinator, std::string token)
      : guard_(coordinator, "worker", std::move(token)) {}

  grpc::Status Register(grpc::ServerContext* context,
                        const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override;
  grpc::Status Lease(grpc::ServerContext* context,
                     const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override;
  grpc::Status Report(grpc::ServerContext* context,
                      const v1::ReportRequest* request,
                      v1::ReportResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status LeaseBatchStep(grpc::ServerContext* context,
                              const v1::LeaseBatchStepRequest* request,
                              v1::LeaseBatchStepResponse* response) override;
  grpc::Status ReportBatchStep(grpc::ServerContext* context,
                               const v1::BatchStepReport* request,
                               v1::BatchStepReportResponse* response) override;

 private:
  const TokenGuard guard_;  // the only way to the coordinator
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_
