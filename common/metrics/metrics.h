// Metrics: the one module that includes prometheus-cpp. Code elsewhere
// records events through the small functions below; a process that wants
// /metrics starts a MetricsExposer. Names follow Prometheus conventions
// (distillery_ prefix, _total counters, base units), labelled by teacher and
// model, never by prompt. Thread-safe.
#ifndef DISTILLERY_COMMON_METRICS_METRICS_H_
#define DISTILLERY_COMMON_METRICS_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace distillery {

// Serves the process's metrics at http://ADDRESS/metrics until destroyed.
class MetricsExposer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Start(
      const std::string& address);
  ~MetricsExposer();

 private:
  struct Impl;
  explicit MetricsExposer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace metrics {

// A teacher request ended: outcome is "ok" or a failure kind
// ("retryable", "rate_limited", "permanent", "teacher_down").
void TeacherRequest(const std::string& teacher, const std::string& outcome,
                    double latency_seconds);
// Tokens paid for, by kind: prompt, completion, reasoning, cached.
void Tokens(const std::string& teacher, const std::string& kind, int64_t n);
// Requests in flight from this worker to a teacher.
void InFlight(const std::string& teacher, int64_t delta);
// Coordinator: a task settled; outcome is "answered", "cache_hit",
// "duplicate" or "failed".
void TaskSettled(const std::string& outcome);
// Coordinator: a lease expired and its task went back to the pool.
void LeaseExpired();
// Coordinator: prompts accepted by submissions; records exported.
void PromptsSubmitted(int64_t n);
void RecordsExported(int64_t n);

}  // namespace metrics
}  // namespace distillery

#endif  // DISTILLERY_COMMON_METRICS_METRICS_H_
