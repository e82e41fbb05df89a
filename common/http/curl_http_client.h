// CurlHttpClient: the real HttpClient. libcurl's multi interface driven by a
// Boost.Asio event loop on one thread that the client owns, so one client
// holds thousands of requests in flight over a few reused (keep-alive or
// HTTP/2-multiplexed) connections. See DESIGN.md, decision 5.
//
// Neither curl nor Asio appears in this header: they stay in
// curl_http_client.cc, so including it costs callers nothing.
#ifndef DISTILLERY_COMMON_HTTP_CURL_HTTP_CLIENT_H_
#define DISTILLERY_COMMON_HTTP_CURL_HTTP_CLIENT_H_

#include <memory>
#include <optional>
#include <string>

#include "common/http/http_client.h"

namespace distillery {

struct CurlHttpClientOptions {
  // Upper bound on open connections across all hosts; 0 means unlimited.
  // Requests beyond the cap queue inside curl until a connection frees up
  // (the queueing time counts against the total timeout only).
  int max_connections = 256;
  // Upper bound on open connections to one host:port; 0 means unlimited.
  int max_connections_per_host = 64;
  // Streams per HTTP/2 connection (curl's default is 100).
  int max_concurrent_streams = 100;
  // Offer HTTP/2 on https:// URLs (negotiated with ALPN) and multiplex
  // requests over it. Plain http:// always uses HTTP/1.1 with keep-alive.
  bool enable_http2 = true;
  // Sent unless the request carries its own User-Agent.
  std::string user_agent = "distillery";
  // CA bundle for TLS verification; empty means the system default.
  std::string ca_file;
  // Proxy for every request. Unset: curl follows http_proxy, https_proxy
  // and no_proxy from the environment. Empty: never use a proxy.
  std::optional<std::string> proxy;
};

// Thread-safe: Send() may be called from any thread. Callbacks run on the
// client's loop thread and must neither block nor throw.
//
// Destroying the client stops the loop after completing every request still
// in flight with CANCELLED (on the loop thread); a Send() that races with
// destruction gets CANCELLED on the caller's thread. The client must not be
// destroyed from its own callback.
class CurlHttpClient : public HttpClient {
 public:
  explicit CurlHttpClient(CurlHttpClientOptions options = {});
  ~CurlHttpClient() override;

  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  void Send(HttpRequest request, Callback done) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_HTTP_CURL_HTTP_CLIENT_H_
