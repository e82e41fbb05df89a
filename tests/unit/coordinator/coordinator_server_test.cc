// The start-up warning of a coordinator that serves unauthenticated callers
// on an address other hosts may reach; the housekeeping thread, which
// expires leases on the server's clock and stops at once on Shutdown.
#include "services/coordinator/coordinator_server.h"

#include <stdlib.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/clock_driver.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

CoordinatorServerOptions Listening(const std::string& address) {
  CoordinatorServerOptions options;
  options.listen = address;
  return options;
}

TEST(ExposureWarningTest, LoopbackAndUnixSocketsNeedNoWarning) {
  for (const char* address : {"127.0.0.1:7070", "127.0.0.2:0", "localhost:7070",
                              "[::1]:7070", "unix:/tmp/distillery.sock"}) {
    EXPECT_THAT(ExposureWarning(Listening(address)), IsEmpty()) << address;
  }
}

TEST(ExposureWarningTest, OpenNonLoopbackAddressesAreNamedWithWhatIsOpen) {
  for (const char* address : {"0.0.0.0:7070", "[::]:7070", "10.1.2.3:7070",
                              "coordinator:7070", ":7070"}) {
    const std::string warning = ExposureWarning(Listening(address));
    EXPECT_THAT(warning, HasSubstr("UNAUTHENTICATED")) << address;
    EXPECT_THAT(warning, HasSubstr(address));
    EXPECT_THAT(warning, HasSubstr("client API"));
    EXPECT_THAT(warning, HasSubstr("worker API"));
    EXPECT_THAT(warning, HasSubstr("without TLS"));
  }
  CoordinatorServerOptions half = Listening("0.0.0.0:7070");
  half.client_token = "t";
  EXPECT_THAT(ExposureWarning(half), HasSubstr("worker API"));
  EXPECT_THAT(ExposureWarning(half), Not(HasSubstr("client API")));
}

TEST(ExposureWarningTest, TokensWithoutTlsStillWarnAboutCleartext) {
  CoordinatorServerOptions options = Listening("0.0.0.0:7070");
  options.client_token = "c";
  options.worker_token = "w";
  EXPECT_THAT(ExposureWarning(options), HasSubstr("without TLS"));
  EXPECT_THAT(ExposureWarning(options), Not(HasSubstr("UNAUTHENTICATED")));
  options.tls.cert_file = "server.crt";
  EXPECT_THAT(ExposureWarning(options), IsEmpty());
}

TEST(ExposureWarningTest, MutualTlsAuthenticatesEveryCaller) {
  CoordinatorServerOptions options = Listening("0.0.0.0:7070");
  options.tls.cert_file = "server.crt";
  options.tls.client_ca_file = "ca.crt";
  EXPECT_THAT(ExposureWarning(options), IsEmpty());
}

TEST(CoordinatorServerTest, HousekeepingExpiresLeasesOnTheServersClock) {
  std::string pattern = ::testing::TempDir() + "coordinator_server_test.XXXXXX";
  const std::string dir = mkdtemp(pattern.data());
  FakeClock clock;
  CoordinatorServerOptions options = Listening("127.0.0.1:0");
  options.data_dir = dir;
  options.clock = &clock;
  options.coordinator.lease_duration = std::chrono::seconds(10);
  TeacherProfile sim;
  sim.name = "sim";
  sim.base_url = "http://127.0.0.1:9/v1";
  options.teachers = {sim};
  {
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    Coordinator& coordinator = (*server)->coordinator();
    v1::JobSpec spec;
    spec.set_teacher("sim");
    spec.set_model("gpt-test");
    spec.set_samples(1);
    absl::StatusOr<std::unique_ptr<Submission>> sub =
        coordinator.BeginSubmission(spec);
    ASSERT_TRUE(sub.ok()) << sub.status();
    google::protobuf::RepeatedPtrField<std::string> lines;
    lines.Add("{\"prompt\": \"p0\"}");
    ASSERT_TRUE((*sub)->AddLines(lines).ok());
    ASSERT_TRUE((*sub)->Commit().ok());
    v1::RegisterRequest reg;
    reg.set_name("w");
    v1::LeaseRequest lease;
    lease.set_worker_id(coordinator.Register(reg).worker_id());
    lease.set_max_tasks(1);
    lease.add_teachers("sim");
    ASSERT_EQ(coordinator.Lease(lease)->tasks_size(), 1);
    auto leases = [&] {
      return coordinator.Snapshot().leases_by_teacher["sim"];
    };
    ASSERT_EQ(leases(), 1);

    // Short of the lease's deadline, housekeeping keeps it.
    const TimePoint deadline = clock.Now() + options.coordinator.lease_duration;
    ASSERT_TRUE(testing::RunClockUntil(clock, [&] {
      return clock.Now() >= deadline - std::chrono::milliseconds(200);
    }));
    EXPECT_EQ(leases(), 1);
    // At it, housekeeping (nothing else runs) returns the task.
    ASSERT_TRUE(testing::RunClockUntil(clock, [&] { return leases() == 0; }));
    EXPECT_GE(clock.Now(), deadline);
    EXPECT_LE(clock.Now(), deadline + std::chrono::milliseconds(200));
    // Shutdown wakes the housekeeping thread without moving the clock (the
    // join would hang otherwise).
    const TimePoint before = clock.Now();
    (*server)->Shutdown(std::chrono::seconds(1));
    EXPECT_EQ(clock.Now(), before);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace distillery
