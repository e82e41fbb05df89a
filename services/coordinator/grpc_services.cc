#include "services/coordinator/grpc_services.h"

#include "common/dataset/dataset_builder.h"
#include "common/dataset/prompt_parser.h"
#include "common/job/job_state.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/unknown_field_set.h"
#include "common/metrics/metrics.h"

namespace distillery {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::Status TokenGuard::Check(const grpc::ServerContext& context) const {
  if (!check_.enabled()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  absl::string_view value;
  if (it != metadata.end()) {
    value = absl::string_view(it->second.data(), it->second.size());
  }
  std::string reason;
  absl::Status s =
      check_.Check(it == metadata.end() ? nullptr : &value, &reason);
  if (s.ok()) return grpc::Status::OK;
  metrics::RejectedCall(service_, "token_" + reason);
  spdlog::warn("{} call from {} refused: {} token", service_, context.peer(),
               reason);
  return ToGrpcStatus(s);
}

grpc::Status ClientServiceImpl::Submit(
    grpc::ServerContext* context, grpc::ServerReader<v1::SubmitRequest>* reader,
    v1::SubmitResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    // Submissions hold memory and a RocksDB batch until they commit: bound
    // how many run at once.
    const int in_flight = submissions_in_flight_.fetch_add(1) + 1;
    struct Release {
      std::atomic<int>& n;
      ~Release() { n.fetch_sub(1); }
    } release{submissions_in_flight_};
    if (options_.max_concurrent_submissions > 0 &&
        in_flight > options_.max_concurrent_submissions) {
      metrics::RejectedCall("client", "submissions_in_flight");
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("submit: ", options_.max_concurrent_submissions,
                       " submissions already in flight; retry later"));
    }
    v1::SubmitRequest request;
    if (!reader->Read(&request)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "submit: empty stream, expected a job spec first");
    }
    v1::JobSpec spec = request.spec();
    if (spec.samples() == 0) spec.set_samples(1);
    absl::StatusOr<std::unique_ptr<Submission>> submission =
        coordinator.BeginSubmission(spec);
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
    spdlog::info("job {} submitted: {} prompts, {} tasks for teacher {}",
                 job->id(), job->counters().prompts(),
                 job->counters().tasks_total(), job->spec().teacher());
    *response->mutable_job() = std::move(*job);
    return grpc::Status::OK;
  });
}

namespace {

// Moves an OK `value` into `*response`; the status either way.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> value, T* response) {
  if (!value.ok()) return ToGrpcStatus(value.status());
  *response = std::move(*value);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ClientServiceImpl::GetJob(grpc::ServerContext* context,
                                       const v1::GetJobRequest* request,
                                       v1::Job* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    return Reply(coordinator.GetJob(request->job_id()), response);
  });
}

grpc::Status ClientServiceImpl::ListJobs(grpc::ServerContext* context,
                                         const v1::ListJobsRequest*,
                                         v1::ListJobsResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    for (v1::Job& job : coordinator.ListJobs()) {
      *response->add_jobs() = std::move(job);
    }
    return grpc::Status::OK;
  });
}

namespace {
constexpr Duration kWatchPacing = std::chrono::milliseconds(200);
}  // namespace

grpc::Status ClientServiceImpl::WatchJob(grpc::ServerContext* context,
                                         const v1::WatchJobRequest* request,
                                         grpc::ServerWriter<v1::Job>* writer) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::Job> job = coordinator.GetJob(request->job_id());
    if (!job.ok()) return ToGrpcStatus(job.status());
    while (!context->IsCancelled()) {
      if (!writer->Write(*job)) break;
      // A paused job waits for a human: the watch ends there too.
      if (IsSettledForNow(job->state())) break;
      // At most a few updates a second, however fast answers commit; but
      // the one that settles the job goes out as soon as it happens.
      const v1::Job written = *job;
      job = coordinator.WaitForJobToSettle(request->job_id(), kWatchPacing);
      if (job.ok() && !IsSettledForNow(job->state())) {
        job = coordinator.WaitForJobChange(request->job_id(), written,
                                           options_.watch_refresh);
      }
      if (!job.ok()) return ToGrpcStatus(job.status());
    }
    return grpc::Status::OK;
  });
}

grpc::Status ClientServiceImpl::CancelJob(grpc::ServerContext* context,
                                          const v1::CancelJobRequest* request,
                                          v1::Job* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::Job> job = coordinator.CancelJob(request->job_id());
    // The coordinator logs the change of state; a finished job stays as it
    // is.
    if (job.ok() && job->state() != v1::JOB_STATE_CANCELLED) {
      spdlog::info("cancel of job {} ignored: it is {}", request->job_id(),
                   JobStateName(job->state()));
    }
    return Reply(std::move(job), response);
  });
}

grpc::Status ClientServiceImpl::RetryJob(grpc::ServerContext* context,
                                         const v1::RetryJobRequest* request,
                                         v1::Job* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::Job> job = coordinator.RetryJob(request->job_id());
    if (job.ok()) {
      spdlog::info("retry of job {}: it is {}", request->job_id(),
                   JobStateName(job->state()));
    }
    return Reply(std::move(job), response);
  });
}

grpc::Status ClientServiceImpl::Export(
    grpc::ServerContext* context, const v1::ExportRequest* request,
    grpc::ServerWriter<v1::ExportChunk>* writer) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    // With a layout the lines are written here (dataset_builder.h), for
    // clients without Distillery's formats; without one, records go out.
    std::optional<DatasetBuilder> builder;
    if (request->has_layout()) {
      absl::StatusOr<DatasetBuilder> made =
          DatasetBuilder::Create(request->layout());
      if (!made.ok()) return ToGrpcStatus(made.status());
      builder.emplace(std::move(*made));
      if (request->layout().has_card()) {
        for (const std::string& id : request->job_ids()) {
          absl::StatusOr<v1::Job> job = coordinator.GetJob(id);
          if (!job.ok()) return ToGrpcStatus(job.status());
          builder->card().AddJob(*job);
        }
      }
    }
    // A chunk is one gRPC message: it goes out at 256 records or before the
    // next record would take it past the byte budget, whatever the prompts
    // and answers weigh.
    constexpr int kChunkRecords = 256;
    v1::ExportChunk chunk;
    std::vector<std::string> parts(builder ? builder->part_names().size() : 0);
    size_t chunk_bytes = 0;
    int chunk_records = 0;
    int64_t records = 0;
    grpc::Status failed = grpc::Status::OK;
    const auto write = [&] {
      for (std::string& part : parts) {
        chunk.add_parts(std::move(part));
        part.clear();
      }
      if (context->IsCancelled() || !writer->Write(chunk)) {
        failed =
            grpc::Status(grpc::StatusCode::CANCELLED, "export: client gone");
        return false;
      }
      chunk.Clear();
      chunk_bytes = 0;
      chunk_records = 0;
      return true;
    };
    const auto flush = [&] { return chunk_records == 0 || write(); };
    const auto too_large = [&](const ExportRecordBytes& record, size_t bytes) {
      v1::Task task;
      task.ParseFromArray(record.task.data(),
                          static_cast<int>(record.task.size()));
      failed = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("export: the record of job ", std::string(record.job_id),
                       " prompt ", task.prompt_seq(), " sample ",
                       task.sample(), " is ", bytes,
                       " bytes, more than one message may hold (",
                       options_.max_chunk_bytes,
                       "); raise the coordinator's --max-message-mb"));
      return false;
    };
    ExportCounts counts;
    absl::Status s = coordinator.ExportBytes(
        *request,
        [&](const ExportRecordBytes& bytes) {
          ++records;
          if (builder) {
            absl::StatusOr<v1::ExportRecord> record = bytes.Parse();
            if (!record.ok()) {
              failed = ToGrpcStatus(record.status());
              return false;
            }
            const int i = builder->PartOf(*record);
            const size_t mark = parts[i].size();
            builder->Append(*record, i, &parts[i]);
            const size_t line = parts[i].size() - mark;
            if (line > options_.max_chunk_bytes) {
              return too_large(bytes, line);
            }
            if (chunk_records > 0 &&
                chunk_bytes + line > options_.max_chunk_bytes) {
              // The line goes in the next chunk.
              std::string next = parts[i].substr(mark);
              parts[i].resize(mark);
              if (!write()) return false;
              parts[i] = std::move(next);
            }
            chunk_bytes += line;
          } else {
            const size_t entry = RepeatedEntryBytes(bytes.ByteSize());
            if (entry > options_.max_chunk_bytes) {
              return too_large(bytes, entry);
            }
            if (chunk_bytes + entry > options_.max_chunk_bytes && !flush()) {
              return false;
            }
            // The record goes out as the store's bytes, never parsed: an
            // entry of `records` (field 1) kept among the chunk's unknown
            // fields, which serialise as they are. On the wire it is the
            // same as a typed entry, and clients read it as one.
            bytes.AppendTo(
                chunk.GetReflection()
                    ->MutableUnknownFields(&chunk)
                    ->AddLengthDelimited(v1::ExportChunk::kRecordsFieldNumber));
            chunk_bytes += entry;
          }
          return ++chunk_records < kChunkRecords || flush();
        },
        &counts);
    if (!s.ok()) return ToGrpcStatus(s);
    if (!failed.ok()) return failed;
    // The last chunk says what the export held and left out.
    v1::ExportSummary* summary = chunk.mutable_summary();
    summary->set_records(records);
    summary->set_duplicates_left_out(counts.duplicates_left_out);
    summary->set_near_duplicates_left_out(counts.near_duplicates_left_out);
    if (builder) {
      for (int64_t n : builder->part_records()) summary->add_part_records(n);
      if (request->layout().has_card()) {
        summary->set_card_markdown(builder->RenderCard(*request, *summary));
      }
    }
    // The card can be a few KB: a nearly full chunk goes out first, and the
    // summary alone after it.
    if (chunk_records > 0 &&
        chunk_bytes + summary->ByteSizeLong() + 64 > options_.max_chunk_bytes) {
      v1::ExportSummary last = std::move(*summary);
      chunk.clear_summary();
      if (!write()) return failed;
      *chunk.mutable_summary() = std::move(last);
    }
    if (!write()) return failed;
    return grpc::Status::OK;
  });
}

grpc::Status ClientServiceImpl::ResumeTeacher(
    grpc::ServerContext* context, const v1::ResumeTeacherRequest* request,
    v1::ResumeTeacherResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::TeacherStatus> status =
        coordinator.ResumeTeacher(request->teacher());
    if (!status.ok()) return ToGrpcStatus(status.status());
    spdlog::info("teacher {} resumed", request->teacher());
    *response->mutable_status() = std::move(*status);
    return grpc::Status::OK;
  });
}

grpc::Status ClientServiceImpl::ResumeJob(grpc::ServerContext* context,
                                          const v1::ResumeJobRequest* request,
                                          v1::Job* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::Job> job =
        coordinator.ResumeJob(request->job_id(), request->budget_usd());
    if (job.ok()) {
      spdlog::info("job {} resumed with a budget of ${:.4f}",
                   request->job_id(), job->spec().budget_usd());
    }
    return Reply(std::move(job), response);
  });
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext* context,
                                         const v1::RegisterRequest* request,
                                         v1::RegisterResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    *response = coordinator.Register(*request);
    spdlog::info("worker {} registered", response->worker_id());
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::Lease(grpc::ServerContext* context,
                                      const v1::LeaseRequest* request,
                                      v1::LeaseResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    return Reply(coordinator.Lease(*request), response);
  });
}

grpc::Status WorkerServiceImpl::Report(grpc::ServerContext* context,
                                       const v1::ReportRequest* request,
                                       v1::ReportResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::ReportResponse> report = coordinator.Report(*request);
    if (!report.ok()) {
      spdlog::error("report from {} not committed: {}", request->worker_id(),
                    std::string(report.status().message()));
    }
    return Reply(std::move(report), response);
  });
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    *response = coordinator.Heartbeat(*request);
    return grpc::Status::OK;
  });
}

grpc::Status WorkerServiceImpl::LeaseBatchStep(
    grpc::ServerContext* context, const v1::LeaseBatchStepRequest* request,
    v1::LeaseBatchStepResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    return Reply(coordinator.LeaseBatchStep(*request), response);
  });
}

grpc::Status WorkerServiceImpl::ReportBatchStep(
    grpc::ServerContext* context, const v1::BatchStepReport* request,
    v1::BatchStepReportResponse* response) {
  return guard_.Authorized(*context, [&](Coordinator& coordinator) {
    absl::StatusOr<v1::BatchStepReportResponse> report =
        coordinator.ReportBatchStep(*request);
    if (!report.ok()) {
      spdlog::error("batch report from {} not committed: {}",
                    request->worker_id(),
                    std::string(report.status().message()));
    }
    return Reply(std::move(report), response);
  });
}

}  // namespace distillery
