// The thin gRPC layer over Coordinator, against a real in-process gRPC
// server on 127.0.0.1 (port 0) and a Coordinator on a temp RocksDB store
// with a FakeClock: absl statuses reach the client with their code and
// message, the bearer token guards every call, and a watch ends when its
// job settles.
#include "services/coordinator/grpc_services.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/coordinator_steps.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

TEST(ToGrpcStatusTest, KeepsTheCodeAndTheMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::NotFoundError("no job 'x'"), grpc::StatusCode::NOT_FOUND},
      {absl::InvalidArgumentError("bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::ResourceExhaustedError("full"),
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::FailedPreconditionError("again"),
       grpc::StatusCode::FAILED_PRECONDITION},
      {absl::UnavailableError("away"), grpc::StatusCode::UNAVAILABLE},
      {absl::UnauthenticatedError("who"), grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [status, code] : cases) {
    grpc::Status g = ToGrpcStatus(status);
    EXPECT_EQ(g.error_code(), code) << status;
    EXPECT_EQ(g.error_message(), std::string(status.message()));
  }
}

class GrpcServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "grpc_services_test.XXXXXX";
    dir_ = mkdtemp(pattern.data());
    absl::StatusOr<std::unique_ptr<Store>> store = OpenRocksDbStore(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    TeacherProfile sim;
    sim.name = "sim";
    sim.base_url = "http://127.0.0.1:9/v1";
    CoordinatorOptions options;
    options.max_prompt_bytes = 64;  // the one limit of a prompt line
    coordinator_ = std::make_unique<Coordinator>(
        *store_, std::vector<TeacherProfile>{sim}, clock_, options);
    ASSERT_TRUE(coordinator_->Recover().ok());
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  // Serves both services (with the given tokens) on 127.0.0.1, port 0.
  void Serve(const std::string& client_token = "",
             const std::string& worker_token = "") {
    ClientServiceOptions options;
    options.token = client_token;
    client_service_ =
        std::make_unique<ClientServiceImpl>(*coordinator_, options);
    worker_service_ =
        std::make_unique<WorkerServiceImpl>(*coordinator_, worker_token);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(client_service_.get());
    builder.RegisterService(worker_service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
    client_ = v1::ClientService::NewStub(channel);
    worker_ = v1::WorkerService::NewStub(channel);
  }

  v1::Job Submit(int prompts) {
    v1::JobSpec spec;
    spec.set_teacher("sim");
    spec.set_model("gpt-test");
    spec.set_samples(1);
    absl::StatusOr<std::unique_ptr<Submission>> sub =
        coordinator_->BeginSubmission(spec);
    EXPECT_TRUE(sub.ok()) << sub.status();
    google::protobuf::RepeatedPtrField<std::string> lines;
    for (int i = 0; i < prompts; ++i) {
      lines.Add("{\"prompt\": \"p" + std::to_string(i) + "\"}");
    }
    EXPECT_TRUE((*sub)->AddLines(lines).ok());
    absl::StatusOr<v1::Job> job = (*sub)->Commit();
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  // A WatchJob stream, with the context it reads under.
  struct WatchStream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::Job>> reader;
  };
  std::unique_ptr<WatchStream> Watch(const std::string& job_id) {
    auto stream = std::make_unique<WatchStream>();
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    stream->reader = client_->WatchJob(&stream->context, request);
    return stream;
  }

  // Leases one task of teacher "sim" and reports an answer for it, straight
  // on the coordinator.
  void AnswerOneTask() {
    const std::string worker = testing::RegisterWorker(*coordinator_);
    absl::StatusOr<v1::LeaseResponse> leased =
        testing::LeaseTasks(*coordinator_, worker, 1);
    ASSERT_TRUE(leased.ok() && leased->tasks_size() == 1);
    v1::ReportRequest report;
    report.set_worker_id(worker);
    v1::TaskResult* result = report.add_results();
    *result = testing::ResultFor(leased->tasks(0));
    result->mutable_answer()->set_content("an answer");
    result->mutable_answer()->set_finish_reason("stop");
    ASSERT_TRUE(coordinator_->Report(report).ok());
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<ClientServiceImpl> client_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::ClientService::Stub> client_;
  std::unique_ptr<v1::WorkerService::Stub> worker_;
};

TEST_F(GrpcServicesTest, CoordinatorErrorsReachTheClientWithTheirCode) {
  Serve();
  grpc::ClientContext get;
  v1::GetJobRequest request;
  request.set_job_id("job-nope");
  v1::Job job;
  grpc::Status s = client_->GetJob(&get, request, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("job-nope"));

  // A report from a worker the coordinator does not know: register again.
  grpc::ClientContext report_context;
  v1::ReportRequest report;
  report.set_worker_id("w-unknown");
  v1::ReportResponse report_response;
  s = worker_->Report(&report_context, report, &report_response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("w-unknown"));
}

TEST_F(GrpcServicesTest, SubmitRefusesAnEmptyStreamAndAnOversizePrompt) {
  Serve();
  {
    grpc::ClientContext context;
    v1::SubmitResponse response;
    auto writer = client_->Submit(&context, &response);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("empty stream"));
  }
  grpc::ClientContext context;
  v1::SubmitResponse response;
  auto writer = client_->Submit(&context, &response);
  v1::SubmitRequest request;
  request.mutable_spec()->set_teacher("sim");
  request.mutable_spec()->set_model("gpt-test");
  request.add_lines("{\"prompt\": \"" + std::string(100, 'x') + "\"}");
  writer->Write(request);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(coordinator_->ListJobs().empty());
}

TEST_F(GrpcServicesTest, TokensGuardEachServiceApart) {
  Serve("client-secret", "worker-secret");
  v1::ListJobsResponse jobs;
  {
    grpc::ClientContext none;
    EXPECT_EQ(client_->ListJobs(&none, {}, &jobs).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext wrong;
    wrong.AddMetadata("authorization", "Bearer worker-secret");
    EXPECT_EQ(client_->ListJobs(&wrong, {}, &jobs).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext right;
    right.AddMetadata("authorization", "Bearer client-secret");
    EXPECT_TRUE(client_->ListJobs(&right, {}, &jobs).ok());
  }
  v1::RegisterRequest reg;
  reg.set_name("w");
  v1::RegisterResponse registered;
  {
    grpc::ClientContext wrong;
    wrong.AddMetadata("authorization", "Bearer client-secret");
    EXPECT_EQ(worker_->Register(&wrong, reg, &registered).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(registered.worker_id().empty());
  }
  grpc::ClientContext right;
  right.AddMetadata("authorization", "Bearer worker-secret");
  EXPECT_TRUE(worker_->Register(&right, reg, &registered).ok());
  EXPECT_FALSE(registered.worker_id().empty());
}

TEST_F(GrpcServicesTest, WatchEndsWhenTheJobSettles) {
  Serve();
  v1::Job job = Submit(2);
  const TimePoint start = clock_.Now();
  std::unique_ptr<WatchStream> watch = Watch(job.id());
  auto& reader = watch->reader;
  v1::Job seen;
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.state(), v1::JOB_STATE_RUNNING);
  // Cancelled while the watch waits for a change: the change ends it.
  ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
  while (reader->Read(&seen)) {
  }
  EXPECT_EQ(seen.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(reader->Finish().ok());
  // The update that settles the job is not held back by the pacing: the
  // clock never moved.
  EXPECT_EQ(clock_.Now(), start);
}

// Updates are paced (200 ms, on the coordinator's clock); the one that
// settles the job goes out at once.
TEST_F(GrpcServicesTest, WatchPacesUpdatesButNotTheOneThatSettlesTheJob) {
  Serve();
  v1::Job job = Submit(2);
  const TimePoint start = clock_.Now();
  std::unique_ptr<WatchStream> watch = Watch(job.id());
  auto& reader = watch->reader;
  v1::Job seen;
  ASSERT_TRUE(reader->Read(&seen));
  ASSERT_EQ(seen.counters().tasks_done(), 0);
  ASSERT_TRUE(clock_.WaitForWaiters(1)) << "the watch waits, paced";

  // One task answered: the job changes but does not settle.
  const int64_t awaits = clock_.awaits_started();
  ASSERT_NO_FATAL_FAILURE(AnswerOneTask());
  // The watch saw the change and went back to waiting out its pacing.
  ASSERT_TRUE(clock_.WaitForNextAwait(awaits));
  clock_.Advance(std::chrono::milliseconds(200));
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.counters().tasks_done(), 1);
  EXPECT_EQ(seen.state(), v1::JOB_STATE_RUNNING);

  ASSERT_TRUE(clock_.WaitForWaiters(1));
  ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&seen));
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(clock_.Now() - start, std::chrono::milliseconds(200))
      << "one pacing, for the update that did not settle the job";
}

TEST_F(GrpcServicesTest, WatchOfAnUnknownJobIsNotFound) {
  Serve();
  std::unique_ptr<WatchStream> watch = Watch("job-nope");
  auto& reader = watch->reader;
  v1::Job seen;
  EXPECT_FALSE(reader->Read(&seen));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServicesTest, WatchOfASettledJobSendsItOnceAndEnds) {
  Serve();
  v1::Job job = Submit(1);
  ASSERT_TRUE(coordinator_->CancelJob(job.id()).ok());
  const TimePoint start = clock_.Now();
  std::unique_ptr<WatchStream> watch = Watch(job.id());
  auto& reader = watch->reader;
  v1::Job seen;
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&seen));
  EXPECT_TRUE(reader->Finish().ok());
  // A settled job needs no pacing: the watch's clock did not move.
  EXPECT_EQ(clock_.Now(), start);
}

}  // namespace
}  // namespace distillery
