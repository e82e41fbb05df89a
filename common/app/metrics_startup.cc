// StartMetrics (startup.h), apart from the rest of start-up so that only the
// binaries that serve /metrics link prometheus-cpp.
#include "common/app/startup.h"
#include "common/metrics/metrics.h"

namespace distillery {

absl::StatusOr<std::unique_ptr<MetricsExposer>> StartMetrics(
    const std::string& address, const std::string& role) {
  std::unique_ptr<MetricsExposer> exposer;
  if (!address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsExposer>> started =
        MetricsExposer::Start(address);
    if (!started.ok()) return started.status();
    exposer = std::move(*started);
  }
  metrics::ProcessStarted(role);
  return exposer;
}

}  // namespace distillery
