#include "services/coordinator/grpc_services.h"

#include <spdlog/spdlog.h>

namespace distillery {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::Status ClientServiceImpl::Submit(
    grpc::ServerContext* context, grpc::ServerReader<v1::SubmitRequest>* reader,
    v1::SubmitResponse* response) {
  v1::SubmitRequest request;
  if (!reader->Read(&request)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "submit: empty stream, expected a job spec first");
  }
  v1::JobSpec spec = request.spec();
  if (spec.samples() == 0) spec.set_samples(1);
  absl::StatusOr<std::unique_ptr<Submission>> submission =
      coordinator_.BeginSubmission(spec);
  if (!submission.ok()) return ToGrpcStatus(submission.status());
  do {
    if (absl::Status s = (*submission)->AddLines(request.lines()); !s.ok()) {
      spdlog::info("submission rejected: {}", std::string(s.message()));
      return ToGrpcStatus(s);  // the Submission aborts as it goes
    }
  } while (reader->Read(&request));
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "submit: client went away before the end");
  }
  absl::StatusOr<v1::Job> job = (*submission)->Commit();
  if (!job.ok()) return ToGrpcStatus(job.status());
  spdlog::info("job {} submitted: {} prompts, {} tasks", job->id(),
               job->counters().prompts(), job->counters().tasks_total());
  *response->mutable_job() = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status ClientServiceImpl::GetJob(grpc::ServerContext*,
                                       const v1::GetJobRequest* request,
                                       v1::Job* response) {
  absl::StatusOr<v1::Job> job = coordinator_.GetJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status ClientServiceImpl::ListJobs(grpc::ServerContext*,
                                         const v1::ListJobsRequest*,
                                         v1::ListJobsResponse* response) {
  for (v1::Job& job : coordinator_.ListJobs()) {
    *response->add_jobs() = std::move(job);
  }
  return grpc::Status::OK;
}

grpc::Status ClientServiceImpl::WatchJob(grpc::ServerContext* context,
                                         const v1::WatchJobRequest* request,
                                         grpc::ServerWriter<v1::Job>* writer) {
  absl::StatusOr<v1::Job> job = coordinator_.GetJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  while (!context->IsCancelled()) {
    if (!writer->Write(*job)) break;
    const v1::JobState s = job->state();
    if (s == v1::JOB_STATE_COMPLETED || s == v1::JOB_STATE_CANCELLED ||
        s == v1::JOB_STATE_FAILED) {
      break;
    }
    // At most a few updates a second, however fast answers commit.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    job = coordinator_.WaitForJobChange(request->job_id(), *job,
                                        std::chrono::seconds(5));
    if (!job.ok()) return ToGrpcStatus(job.status());
  }
  return grpc::Status::OK;
}

grpc::Status ClientServiceImpl::CancelJob(grpc::ServerContext*,
                                          const v1::CancelJobRequest* request,
                                          v1::Job* response) {
  absl::StatusOr<v1::Job> job = coordinator_.CancelJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  spdlog::info("job {} cancelled", request->job_id());
  *response = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status ClientServiceImpl::RetryJob(grpc::ServerContext*,
                                         const v1::RetryJobRequest* request,
                                         v1::Job* response) {
  absl::StatusOr<v1::Job> job = coordinator_.RetryJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  spdlog::info("job {} retried: state {}", request->job_id(),
               static_cast<int>(job->state()));
  *response = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status ClientServiceImpl::Export(
    grpc::ServerContext* context, const v1::ExportRequest* request,
    grpc::ServerWriter<v1::ExportChunk>* writer) {
  constexpr int kChunkRecords = 256;
  v1::ExportChunk chunk;
  bool write_failed = false;
  absl::Status s =
      coordinator_.Export(*request, [&](v1::ExportRecord&& record) {
        *chunk.add_records() = std::move(record);
        if (chunk.records_size() >= kChunkRecords) {
          if (context->IsCancelled() || !writer->Write(chunk)) {
            write_failed = true;
            return false;
          }
          chunk.Clear();
        }
        return true;
      });
  if (!s.ok()) return ToGrpcStatus(s);
  if (write_failed) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "export: client gone");
  }
  if (chunk.records_size() > 0 && !writer->Write(chunk)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "export: client gone");
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext*,
                                         const v1::RegisterRequest* request,
                                         v1::RegisterResponse* response) {
  *response = coordinator_.Register(*request);
  spdlog::info("worker {} registered", response->worker_id());
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Lease(grpc::ServerContext*,
                                      const v1::LeaseRequest* request,
                                      v1::LeaseResponse* response) {
  absl::StatusOr<v1::LeaseResponse> lease = coordinator_.Lease(*request);
  if (!lease.ok()) return ToGrpcStatus(lease.status());
  *response = std::move(*lease);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Report(grpc::ServerContext*,
                                       const v1::ReportRequest* request,
                                       v1::ReportResponse* response) {
  absl::StatusOr<v1::ReportResponse> report = coordinator_.Report(*request);
  if (!report.ok()) {
    spdlog::error("report from {} not committed: {}", request->worker_id(),
                  std::string(report.status().message()));
    return ToGrpcStatus(report.status());
  }
  *response = std::move(*report);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  *response = coordinator_.Heartbeat(*request);
  return grpc::Status::OK;
}

}  // namespace distillery
