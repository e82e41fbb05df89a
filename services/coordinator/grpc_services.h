// Thin gRPC services over Coordinator: convert between gRPC and absl
// statuses, stream, and nothing else. They use gRPC's synchronous API, whose
// handlers run on gRPC's thread pool and may block: a watch waits on the
// coordinator and an export writes with flow control. The callback API would
// save those threads, but both calls are few (one per user command).
#ifndef DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_
#define DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_

#include <atomic>
#include <string>

#include "common/rpc/grpc_security.h"
#include "distillery/v1/client_service.grpc.pb.h"
#include "distillery/v1/worker_service.grpc.pb.h"
#include "common/rpc/message_limits.h"
#include "services/coordinator/coordinator.h"

namespace distillery {

grpc::Status ToGrpcStatus(const absl::Status& status);

// The bearer token check every call of a service makes first. gRPC 1.51
// runs an AuthMetadataProcessor only on TLS credentials (the insecure ones
// assert) and its server interceptors cannot fail a call, so the services
// check for themselves; the health service stays open for probes.
// Thread-safe (immutable).
class TokenGuard {
 public:
  // `service` labels the refusal counter; an empty `token` admits all.
  TokenGuard(std::string service, std::string token)
      : service_(std::move(service)), check_(std::move(token)) {}
  // OK, or UNAUTHENTICATED (counted) when the token is missing or wrong.
  grpc::Status Check(const grpc::ServerContext& context) const;

 private:
  const std::string service_;
  const BearerTokenCheck check_;
};

struct ClientServiceOptions {
  std::string token;                   // bearer token of clients; "" for none
  size_t max_prompt_bytes = 1 << 20;   // longest prompt-file line accepted
  int max_concurrent_submissions = 0;  // 0: no limit
  // Records of one export chunk, in bytes (BatchBudgetBytes of the message
  // limit), as well as in count.
  size_t max_chunk_bytes = BatchBudgetBytes(kDefaultMaxMessageBytes);
};

class ClientServiceImpl final : public v1::ClientService::Service {
 public:
  ClientServiceImpl(Coordinator& coordinator, ClientServiceOptions options)
      : coordinator_(coordinator),
        guard_("client", options.token),
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
  Coordinator& coordinator_;
  const TokenGuard guard_;
  const ClientServiceOptions options_;
  std::atomic<int> submissions_in_flight_{0};
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Coordinator& coordinator, std::string token)
      : coordinator_(coordinator), guard_("worker", std::move(token)) {}

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

 private:
  Coordinator& coordinator_;
  const TokenGuard guard_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_
