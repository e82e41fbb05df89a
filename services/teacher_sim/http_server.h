// HttpServer: teacher-sim's HTTP/1.1 front end. It owns the sockets and event
// loops and passes each parsed request to a handler; it knows nothing about
// OpenAI. The implementation (http_server.cc) is the only translation unit
// that includes Boost.Beast, which is slow to compile, so this header stays
// free of Boost.
//
// Asynchronous throughout: one Asio io_context per thread, connections spread
// round-robin across them, keep-alive honoured, response delays on timers.
// Thousands of connections can wait at once without a thread each.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_HTTP_SERVER_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/teacher_sim/sim_http.h"

namespace distillery::teacher_sim {

class HttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";  // a name or an IPv4/IPv6 literal
    uint16_t port = 0;               // 0: any free port
    int threads = 1;                 // event loop threads, >= 1
    // Requests with larger bodies get 413 and the connection is closed.
    uint64_t max_body_bytes = 64 << 20;
    // An idle keep-alive connection is closed after this long.
    Duration idle_timeout = std::chrono::seconds(300);
  };
  // Called on an event loop thread, concurrently from several threads when
  // threads > 1; must be thread-safe and must not block.
  using Handler = std::function<SimResponse(const SimRequest&)>;

  // Binds, listens and starts the event loop threads. Returns UNAVAILABLE if
  // the address cannot be resolved or bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const Options& options, Handler handler);

  // Stops and joins, as Stop().
  virtual ~HttpServer() = default;

  // The bound port (the real one when Options::port was 0).
  virtual uint16_t port() const = 0;

  // Stops accepting, drops open connections and in-flight delayed answers,
  // and joins the threads. Idempotent. Not to be called from a handler.
  virtual void Stop() = 0;
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_HTTP_SERVER_H_
