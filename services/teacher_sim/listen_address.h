// Parsing and printing of teacher-sim's --listen HOST:PORT. IPv6 hosts are
// bracketed ("[::1]:8080").
// Thread-safe: a value and pure functions.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_LISTEN_ADDRESS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_LISTEN_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace distillery::teacher_sim {

struct ListenAddress {
  std::string host;   // without brackets
  uint16_t port = 0;  // 0: any free port
};

// Returns INVALID_ARGUMENT unless `text` is HOST:PORT with a non-empty host
// and a port in 0..65535.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// "host:port", bracketing hosts that contain ':'.
std::string FormatHostPort(std::string_view host, uint16_t port);

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_LISTEN_ADDRESS_H_
