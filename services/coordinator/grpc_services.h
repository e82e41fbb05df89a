// Thin gRPC services over Coordinator: convert between gRPC and absl
// statuses, stream, and nothing else. They use gRPC's synchronous API, whose
// handlers run on gRPC's thread pool and may block: a watch waits on the
// coordinator and an export writes with flow control. The callback API would
// save those threads, but both calls are few (one per user command).
#ifndef DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_
#define DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_

#include "distillery/v1/client_service.grpc.pb.h"
#include "distillery/v1/worker_service.grpc.pb.h"
#include "services/coordinator/coordinator.h"

namespace distillery {

grpc::Status ToGrpcStatus(const absl::Status& status);

class ClientServiceImpl final : public v1::ClientService::Service {
 public:
  explicit ClientServiceImpl(Coordinator& coordinator)
      : coordinator_(coordinator) {}

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

 private:
  Coordinator& coordinator_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator& coordinator)
      : coordinator_(coordinator) {}

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
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_GRPC_SERVICES_H_
