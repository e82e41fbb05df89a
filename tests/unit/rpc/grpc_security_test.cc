// common/rpc/grpc_security against a real gRPC server on 127.0.0.1: the
// bearer token a channel sends on every call and the server-side check that
// accepts or refuses it, the channel's send limit, and the errors of secret
// files and credentials options (they name the file, never its content).
#include "common/rpc/grpc_security.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/testing/temp_dir.h"

namespace distillery {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using ::testing::Not;

// A health service behind BearerTokenCheck, as the coordinator's services
// are: refused calls get its status, accepted ones SERVING. Records the
// authorization header of the last call. Thread-safe.
class GuardedHealth final : public Health::Service {
 public:
  explicit GuardedHealth(std::string token) : check_(std::move(token)) {}

  grpc::Status Check(grpc::ServerContext* context, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    absl::string_view value;
    if (it != metadata.end()) value = {it->second.data(), it->second.size()};
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_header_ = it == metadata.end() ? "<none>" : std::string(value);
    }
    std::string reason;
    absl::Status s =
        check_.Check(it == metadata.end() ? nullptr : &value, &reason);
    if (!s.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                          std::string(s.message()) + " (" + reason + ")");
    }
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }

  std::string last_header() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_header_;
  }

 private:
  const BearerTokenCheck check_;
  std::mutex mu_;
  std::string last_header_;
};

// The service on 127.0.0.1, on a port the kernel picks.
class Server {
 public:
  explicit Server(const std::string& token) : service_(token) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(ServerTlsOptions{});
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port_, 0);
  }
  ~Server() {
    if (server_) server_->Shutdown();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  GuardedHealth& service() { return service_; }

 private:
  GuardedHealth service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// One Check through a channel made by MakeChannel with `options`.
grpc::Status CheckWith(const Server& server, ClientSecurityOptions options,
                       const std::string& service_name = "") {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(server.address(), options);
  EXPECT_TRUE(channel.ok()) << channel.status();
  if (!channel.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "");
  auto stub = Health::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  HealthCheckRequest request;
  request.set_service(service_name);
  HealthCheckResponse response;
  grpc::Status s = stub->Check(&context, request, &response);
  if (s.ok()) EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  return s;
}

ClientSecurityOptions WithToken(const std::string& token) {
  ClientSecurityOptions options;
  options.token = token;
  return options;
}

TEST(GrpcSecurityTest, WithoutATokenTheServerAcceptsEveryCall) {
  Server server("");
  EXPECT_TRUE(CheckWith(server, WithToken("")).ok());
  EXPECT_EQ(server.service().last_header(), "<none>");
  // A client that sends one anyway is served too.
  EXPECT_TRUE(CheckWith(server, WithToken("anything")).ok());
  EXPECT_EQ(server.service().last_header(), "Bearer anything");
}

TEST(GrpcSecurityTest, WithATokenOnlyTheRightBearerIsServed) {
  Server server("s3cret-token");
  grpc::Status right = CheckWith(server, WithToken("s3cret-token"));
  EXPECT_TRUE(right.ok()) << right.error_message();
  // The channel sends the token on every call, as a bearer.
  EXPECT_EQ(server.service().last_header(), "Bearer s3cret-token");

  grpc::Status missing = CheckWith(server, WithToken(""));
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("missing bearer token"));
  EXPECT_EQ(server.service().last_header(), "<none>");

  for (const char* wrong :
       {"s3cret-tokeN", "s3cret-token-and-more", "s3cret", "x"}) {
    grpc::Status s = CheckWith(server, WithToken(wrong));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong;
    EXPECT_THAT(s.error_message(), HasSubstr("wrong bearer token")) << wrong;
    // The refusal never echoes either token.
    EXPECT_THAT(s.error_message(), Not(HasSubstr("s3cret"))) << wrong;
  }
}

TEST(GrpcSecurityTest, BearerTokenCheckWantsTheBearerPrefix) {
  const BearerTokenCheck check("tok");
  EXPECT_TRUE(check.enabled());
  EXPECT_FALSE(BearerTokenCheck("").enabled());
  std::string reason;
  const absl::string_view good = "Bearer tok";
  EXPECT_TRUE(check.Check(&good, &reason).ok());
  const absl::string_view bare = "tok";
  EXPECT_EQ(check.Check(&bare, &reason).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(reason, "wrong");
  EXPECT_EQ(check.Check(nullptr, &reason).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(reason, "missing");
}

TEST(GrpcSecurityTest, ACallLargerThanTheSendLimitNeverLeaves) {
  Server server("");
  ClientSecurityOptions options;
  options.max_send_message_bytes = 64 << 10;
  grpc::Status big = CheckWith(server, options, std::string(100 << 10, 'x'));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << big.error_message();
  EXPECT_TRUE(CheckWith(server, options, std::string(1 << 10, 'x')).ok());
}

TEST(GrpcSecurityTest, SecretFilesAreTrimmedAndTheirErrorsNameThePath) {
  testing::TempDir dir("grpc_security_test");
  absl::StatusOr<std::string> secret =
      ReadSecretFile(dir.File("token", "tok-123 \r\n\n"));
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, "tok-123");

  const std::string blank = dir.File("blank", " \n");
  absl::StatusOr<std::string> empty = ReadSecretFile(blank);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr(blank));

  const std::string absent = dir.path() + "/absent";
  absl::StatusOr<std::string> missing = ReadSecretFile(absent);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(absent));
}

TEST(GrpcSecurityTest, ResolveTokenPrefersTheFileToTheEnvironment) {
  testing::TempDir dir("grpc_security_test");
  constexpr char kVar[] = "DISTILLERY_GRPC_SECURITY_TEST_TOKEN";
  setenv(kVar, "from-env", 1);
  EXPECT_EQ(*ResolveToken("", kVar), "from-env");
  EXPECT_EQ(*ResolveToken(dir.File("t", "from-file\n"), kVar), "from-file");
  EXPECT_FALSE(ResolveToken(dir.path() + "/absent", kVar).ok());
  unsetenv(kVar);
  EXPECT_EQ(*ResolveToken("", kVar), "");
}

TEST(GrpcSecurityTest, InconsistentTlsOptionsAreRefused) {
  testing::TempDir dir("grpc_security_test");
  const std::string pem = dir.File("x.pem", "not really a pem\n");
  ClientSecurityOptions cert_without_key;
  cert_without_key.tls_ca_file = pem;
  cert_without_key.tls_cert_file = pem;
  EXPECT_EQ(MakeChannel("127.0.0.1:1", cert_without_key).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientSecurityOptions cert_without_ca;
  cert_without_ca.tls_cert_file = pem;
  cert_without_ca.tls_key_file = pem;
  EXPECT_EQ(MakeChannel("127.0.0.1:1", cert_without_ca).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientSecurityOptions missing_ca;
  missing_ca.tls_ca_file = dir.path() + "/absent.pem";
  EXPECT_EQ(MakeChannel("127.0.0.1:1", missing_ca).status().code(),
            absl::StatusCode::kNotFound);

  ServerTlsOptions key_without_cert;
  key_without_cert.key_file = pem;
  EXPECT_EQ(MakeServerCredentials(key_without_cert).status().code(),
            absl::StatusCode::kInvalidArgument);
  ServerTlsOptions client_ca_without_tls;
  client_ca_without_tls.client_ca_file = pem;
  EXPECT_EQ(MakeServerCredentials(client_ca_without_tls).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace distillery
