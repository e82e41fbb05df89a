// The plain HTTP request and response that pass between teacher-sim's
// network layer (http_server.h, the only Beast code) and its request logic
// (sim_handler.h), so the logic is tested without sockets.
// Thread-safe: plain values.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_HTTP_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_HTTP_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/clock.h"

namespace distillery::teacher_sim {

using SimHeaders = std::vector<std::pair<std::string, std::string>>;

struct SimRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. "/v1/chat/completions"
  SimHeaders headers;  // names lower-cased
  std::string body;

  // The value of the first header named `name` (lower-case), or "".
  std::string_view Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

// How the server misbehaves at the connection level while sending a
// response (see fault_injector.h); each closes the connection after it.
enum class WireFault {
  kNone,
  kReset,     // no response: the connection is reset (RST)
  kTruncate,  // headers with the full content-length, half the body, close
  kPad,       // padding lines (`pad`) sent one per `pad_interval`, then the
              // body; content-length counts them
};

struct SimResponse {
  int status = 200;
  // Sent as given; the server adds server, connection and content-length
  // (or, for a text/event-stream body, chunked transfer-encoding).
  SimHeaders headers;
  std::string body;
  // How long the server waits (on a timer, never blocking a thread) before
  // sending the response.
  Duration delay{0};
  WireFault wire_fault = WireFault::kNone;
  std::string pad;  // one padding line, e.g. "\n" or ": keep-alive\n\n"
  int pad_count = 0;
  Duration pad_interval{0};

  std::string_view Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_HTTP_H_
