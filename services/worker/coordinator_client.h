// CoordinatorClient: how a worker reaches the coordinator. An interface so
// the worker's lease loop is tested against an in-process coordinator or a
// fake; the real one is a gRPC stub.
#ifndef DISTILLERY_SERVICES_WORKER_COORDINATOR_CLIENT_H_
#define DISTILLERY_SERVICES_WORKER_COORDINATOR_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "distillery/v1/worker_service.pb.h"

namespace grpc {
class Channel;
}

namespace distillery {

// Thread-safe.
class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  virtual absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) = 0;
  virtual absl::StatusOr<v1::LeaseResponse> Lease(
      const v1::LeaseRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportResponse> Report(
      const v1::ReportRequest& request) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) = 0;
  // Ends a long-poll Lease in progress (LeaseRequest.wait_ms) and makes
  // later ones answer at once; Worker::Stop calls it. A client that cannot
  // (gRPC: the coordinator's wait ends at its wait_ms, at most 1 s) does
  // nothing.
  virtual void EndLeaseWaits() {}
  // The batch path; a coordinator client without it answers UNIMPLEMENTED.
  virtual absl::StatusOr<v1::LeaseBatchStepResponse> LeaseBatchStep(
      const v1::LeaseBatchStepRequest& request) {
    (void)request;
    return absl::UnimplementedError("no batch steps");
  }
  virtual absl::StatusOr<v1::BatchStepReportResponse> ReportBatchStep(
      const v1::BatchStepReport& report) {
    (void)report;
    return absl::UnimplementedError("no batch steps");
  }
};

// A client for the coordinator at "host:port" over plaintext (MakeChannel's
// limits and backoff). Calls time out after `call_timeout_ms` and fail with
// the gRPC status mapped to absl.
std::unique_ptr<CoordinatorClient> MakeGrpcCoordinatorClient(
    const std::string& address, int call_timeout_ms = 30'000);
// Over a channel made elsewhere (TLS, tokens: common/rpc/grpc_security.h).
std::unique_ptr<CoordinatorClient> MakeGrpcCoordinatorClient(
    std::shared_ptr<grpc::Channel> channel, int call_timeout_ms = 30'000);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_WORKER_COORDINATOR_CLIENT_H_
