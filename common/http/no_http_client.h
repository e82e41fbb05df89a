// NoHttpClient: an HttpClient that sends nothing. Every request fails at
// once with FAILED_PRECONDITION. For code that builds requests without
// sending them (the coordinator measures batch lines with the same builder
// the workers send them with, and holds no key).
// Thread-safe: stateless.
#ifndef DISTILLERY_COMMON_HTTP_NO_HTTP_CLIENT_H_
#define DISTILLERY_COMMON_HTTP_NO_HTTP_CLIENT_H_

#include <memory>
#include <utility>

#include "common/http/http_client.h"

namespace distillery {

class NoHttpClient : public HttpClient {
 public:
  void Send(HttpRequest request, Callback done) override {
    (void)request;
    done(absl::FailedPreconditionError("this process sends no HTTP requests"));
  }
};

inline std::unique_ptr<HttpClient> MakeNoHttpClient() {
  return std::make_unique<NoHttpClient>();
}

}  // namespace distillery

#endif  // DISTILLERY_COMMON_HTTP_NO_HTTP_CLIENT_H_
