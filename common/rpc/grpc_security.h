// Security of Distillery's gRPC endpoints: TLS (and mutual TLS) credentials
// from PEM files, bearer tokens read from files or the environment, a
// channel that sends its token on every call, and the server-side token
// check. MakeChannel is also the one channel factory: every client channel
// (worker, CLI, embedded cluster) gets its message limits and reconnect
// backoff there. No flag parsing here; the mains and the CLI fill the
// options.
#ifndef DISTILLERY_COMMON_RPC_GRPC_SECURITY_H_
#define DISTILLERY_COMMON_RPC_GRPC_SECURITY_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/rpc/message_limits.h"

namespace distillery {

// Reads a secret (token, key) from a file; trailing whitespace and newlines
// are dropped. NOT_FOUND or INVALID_ARGUMENT (empty) on failure; the error
// names the file, never its content.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// The token from `token_file` when set, else from the environment variable
// `env_var` (may be unset: returns ""). Errors from ReadSecretFile.
absl::StatusOr<std::string> ResolveToken(const std::string& token_file,
                                         const char* env_var);

struct ClientSecurityOptions {
  std::string tls_ca_file;    // set: TLS, the server must chain to this CA
  std::string tls_cert_file;  // client certificate for mutual TLS (and key)
  std::string tls_key_file;
  // Name to verify the server certificate against, when it differs from the
  // host in the address (e.g. 127.0.0.1 for a certificate for "coordinator").
  std::string tls_server_name;
  std::string token;  // bearer token sent on every call; "" for none
  // Largest message this client sends; set it to the coordinator's
  // --max-message-mb (a larger message fails RESOURCE_EXHAUSTED before it
  // leaves). Whatever the coordinator sends is received, up to
  // kMaxMessageBytesCeiling.
  int max_send_message_bytes = kDefaultMaxMessageBytes;
};

// Reconnect backoff of every channel: gRPC's defaults grow to 120 s, so a
// coordinator back from a restart would wait that long for its workers.
inline constexpr int kInitialReconnectBackoffMs = 200;
inline constexpr int kMinConnectTimeoutMs = 1000;  // MIN_RECONNECT_BACKOFF
inline constexpr int kMaxReconnectBackoffMs = 2000;

// A channel to `address` with TLS when tls_ca_file is set (plaintext
// otherwise) and `authorization: Bearer TOKEN` on every call when a token
// is set, the message limits above and a reconnect backoff capped at
// kMaxReconnectBackoffMs. INVALID_ARGUMENT or NOT_FOUND for unreadable
// files or a certificate without its key.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const ClientSecurityOptions& options);

struct ServerTlsOptions {
  std::string cert_file;       // set (with key_file): serve TLS only
  std::string key_file;
  std::string client_ca_file;  // set: require client certificates from it
};

// TLS server credentials when cert_file is set, else insecure ones.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options);

// Checks `authorization` metadata against an expected bearer token, in time
// independent of where a wrong token differs. Thread-safe (immutable).
class BearerTokenCheck {
 public:
  // An empty `token` accepts every call.
  explicit BearerTokenCheck(std::string token) : token_(std::move(token)) {}
  bool enabled() const { return !token_.empty(); }
  // `header` is the authorization value, or nullptr when absent. OK, or
  // UNAUTHENTICATED with `*reason` set to "missing" or "wrong".
  absl::Status Check(const absl::string_view* header,
                     std::string* reason) const;

 private:
  const std::string token_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RPC_GRPC_SECURITY_H_
