// The start-up warning of a coordinator that serves unauthenticated callers
// on an address other hosts may reach.
#include "services/coordinator/coordinator_server.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace distillery
