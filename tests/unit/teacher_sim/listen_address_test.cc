// Tests of teacher-sim's --listen parsing.
#include "services/teacher_sim/listen_address.h"

#include "gtest/gtest.h"

namespace distillery::teacher_sim {
namespace {

TEST(SimListenAddressTest, ParsesHostAndPort) {
  auto a = ParseListenAddress("127.0.0.1:8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  a = ParseListenAddress("localhost:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port, 0);
  a = ParseListenAddress("[::1]:65535");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 65535);
}

TEST(SimListenAddressTest, RejectsMalformedAddresses) {
  for (const char* bad : {"", "8080", "host", ":80", "host:", "host:x",
                          "host:65536", "host:-1", "::1:80", "host:80x"}) {
    EXPECT_EQ(ParseListenAddress(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(SimListenAddressTest, FormatsWithBracketsForIpv6) {
  EXPECT_EQ(FormatHostPort("127.0.0.1", 80), "127.0.0.1:80");
  EXPECT_EQ(FormatHostPort("::1", 80), "[::1]:80");
}

}  // namespace
}  // namespace distillery::teacher_sim
