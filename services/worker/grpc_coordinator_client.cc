#include <grpcpp/grpcpp.h>

#include "common/rpc/grpc_security.h"
#include "distillery/v1/worker_service.grpc.pb.h"
#include "services/worker/coordinator_client.h"

namespace distillery {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

class GrpcCoordinatorClient : public CoordinatorClient {
 public:
  GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                        int call_timeout_ms)
      : stub_(v1::WorkerService::NewStub(std::move(channel))),
        call_timeout_ms_(call_timeout_ms) {}

  absl::StatusOr<v1::RegisterResponse> Register(
      const v1::RegisterRequest& request) override {
    return Call(&v1::WorkerService::Stub::Register, request);
  }
  absl::StatusOr<v1::LeaseResponse> Lease(
      const v1::LeaseRequest& request) override {
    return Call(&v1::WorkerService::Stub::Lease, request);
  }
  absl::StatusOr<v1::ReportResponse> Report(
      const v1::ReportRequest& request) override {
    return Call(&v1::WorkerService::Stub::Report, request);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override {
    return Call(&v1::WorkerService::Stub::Heartbeat, request);
  }
  absl::StatusOr<v1::LeaseBatchStepResponse> LeaseBatchStep(
      const v1::LeaseBatchStepRequest& request) override {
    return Call(&v1::WorkerService::Stub::LeaseBatchStep, request);
  }
  absl::StatusOr<v1::BatchStepReportResponse> ReportBatchStep(
      const v1::BatchStepReport& report) override {
    return Call(&v1::WorkerService::Stub::ReportBatchStep, report);
  }

 private:
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (v1::WorkerService::Stub::*method)(grpc::ClientContext*,
                                                       const Request&,
                                                       Response*),
      const Request& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(call_timeout_ms_));
    Response response;
    grpc::Status s = (stub_.get()->*method)(&context, request, &response);
    if (!s.ok()) return FromGrpc(s);
    return response;
  }

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const int call_timeout_ms_;
};

}  // namespace

std::unique_ptr<CoordinatorClient> MakeGrpcCoordinatorClient(
    const std::string& address, int call_timeout_ms) {
  // Plaintext, no token: MakeChannel cannot fail without files to read.
  return MakeGrpcCoordinatorClient(
      *MakeChannel(address, ClientSecurityOptions{}), call_timeout_ms);
}

std::unique_ptr<CoordinatorClient> MakeGrpcCoordinatorClient(
    std::shared_ptr<grpc::Channel> channel, int call_timeout_ms) {
  return std::make_unique<GrpcCoordinatorClient>(std::move(channel),
                                                 call_timeout_ms);
}

}  // namespace distillery
