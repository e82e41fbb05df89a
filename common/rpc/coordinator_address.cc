#include "common/rpc/coordinator_address.h"

#include <cctype>

#include "absl/strings/str_cat.h"

namespace distillery {
namespace {

// (This Abseil's string_view is not std::string_view: std::string here.)
absl::Status Bad(std::string_view text, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "coordinator address '", std::string(text), "': ", why));
}

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)); }

bool IsPort(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  int port = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= 65535;
}

}  // namespace

absl::StatusOr<std::string> NormalizeCoordinatorAddress(std::string_view text) {
  std::string_view rest = text;
  while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
  while (!rest.empty() && IsSpace(rest.back())) rest.remove_suffix(1);
  if (rest.empty()) return Bad(text, "empty; expected HOST[:PORT]");
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    std::string name(rest.substr(0, scheme));
    for (char& c : name) c = std::tolower(static_cast<unsigned char>(c));
    if (name == "https") {
      return Bad(text,
                 "https:// is not how TLS is chosen here: give HOST:PORT and "
                 "--tls-ca FILE (the coordinator speaks gRPC, not HTTP)");
    }
    if (name != "http") {
      return Bad(text, absl::StrCat("unknown scheme '", name,
                                    "://'; expected HOST[:PORT]"));
    }
    rest.remove_prefix(scheme + 3);
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  }
  if (rest.find('/') != std::string_view::npos) {
    return Bad(text, "a coordinator address has no path; expected HOST[:PORT]");
  }
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return Bad(text, "unclosed '['");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Bad(text, "expected ':PORT' after ']'");
      port = after.substr(1);
      if (port.empty()) return Bad(text, "empty port after ':'");
    }
  } else if (const size_t colon = rest.rfind(':');
             colon != std::string_view::npos &&
             rest.find(':') == colon) {  // one colon: HOST:PORT
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return Bad(text, "empty port after ':'");
  }  // several colons without brackets: a bare IPv6 address
  if (host.empty()) return Bad(text, "no host; expected HOST[:PORT]");
  if (!port.empty() && !IsPort(port)) {
    return Bad(text, absl::StrCat("port '", std::string(port),
                                  "' is not a number from 1 to 65535"));
  }
  const bool v6 = host.find(':') != std::string_view::npos;
  return absl::StrCat(v6 ? "[" : "", std::string(host), v6 ? "]" : "", ":",
                      port.empty() ? std::to_string(kDefaultCoordinatorPort)
                                   : std::string(port));
}

std::string CannotReachCoordinator(const std::string& target) {
  return absl::StrCat("cannot reach the coordinator at ", target,
                      " (is it running? set --coordinator or "
                      "DISTILLERY_COORDINATOR)");
}

}  // namespace distillery
