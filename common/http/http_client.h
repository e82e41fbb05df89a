// HttpClient: the seam between Distillery and the network. The worker talks
// to teachers only through this interface; tests substitute a fake or wrap
// the real one to inject faults.
//
// An HTTP error status (429, 500, ...) is a response, not a failure: Send
// reports it as an OK HttpResponse and the teacher adapter classifies it.
// Only transport problems come back as a non-OK Status.
#ifndef DISTILLERY_COMMON_HTTP_HTTP_CLIENT_H_
#define DISTILLERY_COMMON_HTTP_HTTP_CLIENT_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "common/base/clock.h"

namespace distillery {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  HttpHeaders headers;  // e.g. {"Content-Type", "application/json"}
  std::string body;
  // Time allowed to establish the connection.
  Duration connect_timeout = std::chrono::seconds(10);
  // Longest silence allowed between received bytes. Servers that pad with
  // blank lines or SSE comments keep a request alive.
  Duration idle_timeout = std::chrono::seconds(120);
  // Time allowed for the whole exchange; generous, since long reasoning
  // answers take minutes.
  Duration total_timeout = std::chrono::minutes(15);
  // A response body larger than this fails with RESOURCE_EXHAUSTED.
  size_t max_response_bytes = 16 << 20;
};

struct HttpResponse {
  int status = 0;
  // Header names are lower-cased; values are trimmed.
  HttpHeaders headers;
  std::string body;
  Duration elapsed{0};

  // The value of the first header named `name` (lower-case), or "".
  std::string_view Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

class HttpClient {
 public:
  using Callback = std::function<void(absl::StatusOr<HttpResponse>)>;
  virtual ~HttpClient() = default;

  // Starts `request` and calls `done` exactly once, on the client's own event
  // loop thread, with the response or a transport error:
  //   UNAVAILABLE        connection refused or reset, DNS failure, bad TLS;
  //                      refused and DNS failure also IsUnreachable
  //   DEADLINE_EXCEEDED  connect, idle or total timeout
  //   RESOURCE_EXHAUSTED body over max_response_bytes
  //   INVALID_ARGUMENT   malformed URL
  // Thread-safe. `done` must not block.
  virtual void Send(HttpRequest request, Callback done) = 0;
};

// The type URL of the payload that marks an UNAVAILABLE as "no connection
// could be made at all" (refused, host not found): the request never reached
// a server, and none will until someone starts it or fixes the address. A
// reset or a TLS failure mid-way is plain UNAVAILABLE.
inline constexpr absl::string_view kUnreachablePayload =
    "type.distillery/http.unreachable";

inline absl::Status UnreachableError(absl::string_view message) {
  absl::Status status = absl::UnavailableError(message);
  status.SetPayload(kUnreachablePayload, absl::Cord("1"));
  return status;
}

inline bool IsUnreachable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kUnreachablePayload).has_value();
}

}  // namespace distillery

#endif  // DISTILLERY_COMMON_HTTP_HTTP_CLIENT_H_
