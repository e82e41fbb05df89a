// The one reading of a coordinator address, shared by the CLI and the
// worker: what a user may type for --coordinator (or DISTILLERY_COORDINATOR)
// and the gRPC target it means.
#ifndef DISTILLERY_COMMON_RPC_COORDINATOR_ADDRESS_H_
#define DISTILLERY_COMMON_RPC_COORDINATOR_ADDRESS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace distillery {

// The coordinator's port when an address gives none.
inline constexpr int kDefaultCoordinatorPort = 7070;

// Normalises a coordinator address to the "HOST:PORT" gRPC target:
//   HOST            -> HOST:7070 (never gRPC's silent default of 443)
//   HOST:PORT, [V6]:PORT, [V6], V6 (bare IPv6) -> with the port, bracketed
//   http://HOST[:PORT][/] -> the same, plaintext (the scheme is dropped)
// https:// is refused (TLS is chosen with --tls-ca, not by a scheme), and
// so are other schemes, paths, empty hosts and ports outside 1..65535:
// INVALID_ARGUMENT naming the address and what to write instead.
absl::StatusOr<std::string> NormalizeCoordinatorAddress(std::string_view text);

// "cannot reach the coordinator at TARGET (is it running? set --coordinator
// or DISTILLERY_COORDINATOR)": what a client says when it cannot connect.
std::string CannotReachCoordinator(const std::string& target);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RPC_COORDINATOR_ADDRESS_H_
