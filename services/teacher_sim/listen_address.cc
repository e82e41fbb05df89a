#include "services/teacher_sim/listen_address.h"

#include <charconv>

namespace distillery::teacher_sim {
namespace {

// Debian's Abseil has its own string_view type, so std::string_view is
// joined by hand rather than with absl::StrCat.
absl::Status NotHostPort(std::string_view text, std::string_view why = "") {
  std::string message = "listen address '";
  message.append(text);
  message.append("' is not HOST:PORT");
  message.append(why);
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return NotHostPort(text);
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return NotHostPort(text, " (bracket IPv6 hosts, as [::1]:PORT)");
  }
  uint32_t port = 0;
  const char* end = port_text.data() + port_text.size();
  if (host.empty() || port_text.empty()) return NotHostPort(text);
  auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  if (ec != std::errc() || ptr != end || port > 65535) {
    return NotHostPort(text, " (port must be 0..65535)");
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

std::string FormatHostPort(std::string_view host, uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out.push_back('[');
    out.append(host);
    out.push_back(']');
  } else {
    out.append(host);
  }
  out.push_back(':');
  out.append(std::to_string(port));
  return out;
}

}  // namespace distillery::teacher_sim
