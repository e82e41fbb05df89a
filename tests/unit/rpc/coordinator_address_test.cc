#include "common/rpc/coordinator_address.h"

#include <gtest/gtest.h>

namespace distillery {
namespace {

std::string Normal(const std::string& text) {
  absl::StatusOr<std::string> target = NormalizeCoordinatorAddress(text);
  EXPECT_TRUE(target.ok()) << text << ": " << target.status();
  return target.ok() ? *target : "";
}

std::string Refused(const std::string& text) {
  absl::StatusOr<std::string> target = NormalizeCoordinatorAddress(text);
  EXPECT_FALSE(target.ok()) << text << " gave " << *target;
  if (target.ok()) return "";
  EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(target.status().message());
}

TEST(CoordinatorAddressTest, HostWithoutPortGetsTheCoordinatorsPortNot443) {
  EXPECT_EQ(Normal("localhost"), "localhost:7070");
  EXPECT_EQ(Normal("127.0.0.1"), "127.0.0.1:7070");
  EXPECT_EQ(Normal("coordinator.internal"), "coordinator.internal:7070");
  EXPECT_EQ(Normal(" 10.0.0.5 "), "10.0.0.5:7070");
}

TEST(CoordinatorAddressTest, HostAndPortAreKept) {
  EXPECT_EQ(Normal("127.0.0.1:7071"), "127.0.0.1:7071");
  EXPECT_EQ(Normal("localhost:1"), "localhost:1");
  EXPECT_EQ(Normal("[::1]:7000"), "[::1]:7000");
  EXPECT_EQ(Normal("[::1]"), "[::1]:7070");
  EXPECT_EQ(Normal("::1"), "[::1]:7070");
}

TEST(CoordinatorAddressTest, HttpUrlMeansPlaintextHostAndPort) {
  EXPECT_EQ(Normal("http://127.0.0.1:7070"), "127.0.0.1:7070");
  EXPECT_EQ(Normal("http://127.0.0.1:7070/"), "127.0.0.1:7070");
  EXPECT_EQ(Normal("HTTP://localhost"), "localhost:7070");
  EXPECT_EQ(Normal("http://[::1]:9"), "[::1]:9");
}

TEST(CoordinatorAddressTest, OtherFormsAreRefusedSayingWhatToWrite) {
  EXPECT_NE(Refused("https://coordinator:7070").find("--tls-ca"),
            std::string::npos);
  EXPECT_NE(Refused("grpc://x:1").find("unknown scheme 'grpc://'"),
            std::string::npos);
  EXPECT_NE(Refused("http://x:1/v1").find("no path"), std::string::npos);
  EXPECT_NE(Refused("x:0").find("port '0' is not a number from 1 to 65535"),
            std::string::npos);
  EXPECT_NE(Refused("x:70000").find("port '70000'"), std::string::npos);
  EXPECT_NE(Refused("x:abc").find("port 'abc'"), std::string::npos);
  EXPECT_NE(Refused("x:").find("empty port"), std::string::npos);
  EXPECT_NE(Refused(":7070").find("no host"), std::string::npos);
  EXPECT_NE(Refused("").find("empty"), std::string::npos);
  EXPECT_NE(Refused("[::1").find("unclosed"), std::string::npos);
  // The message names what was given.
  EXPECT_NE(Refused("x:abc").find("'x:abc'"), std::string::npos);
}

TEST(CoordinatorAddressTest, UnreachableMessageNamesTheTargetAndTheFix) {
  EXPECT_EQ(CannotReachCoordinator("127.0.0.1:7071"),
            "cannot reach the coordinator at 127.0.0.1:7071 (is it running? "
            "set --coordinator or DISTILLERY_COORDINATOR)");
}

}  // namespace
}  // namespace distillery
