// Metrics: the one module that includes prometheus-cpp. Code elsewhere
// records events through the small functions below, and state that is
// cheaper to read than to track (job counters, live workers, RocksDB
// properties) through a Collector called on each scrape. A process that
// wants /metrics starts a MetricsExposer.
//
// Names follow Prometheus conventions: a distillery_ prefix, _total counters,
// _seconds and _bytes base units. Labels are teacher, model and job_id where
// they help, never a prompt (unbounded cardinality, and private text). The
// label is job_id, not job: Prometheus sets `job` on every scraped series.
// The metric list with its labels is in docs/DESIGN-NOTES.md ("Metrics").
// Thread-safe.
#ifndef DISTILLERY_COMMON_METRICS_METRICS_H_
#define DISTILLERY_COMMON_METRICS_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace distillery {

// Serves the process's metrics at http://ADDRESS/metrics until destroyed.
// Destruction blocks for up to ~2 s (the embedded web server's shutdown).
class MetricsExposer {
 public:
  // ADDRESS is HOST:PORT; port 0 picks a free one (see port()).
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Start(
      const std::string& address);
  ~MetricsExposer();
  int port() const;

 private:
  struct Impl;
  explicit MetricsExposer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace metrics {

// --- Process ----------------------------------------------------------------

// distillery_build_info{role} = 1 and process_start_time_seconds. Call once
// from main(), before MetricsExposer::Start; `role` is "coordinator",
// "worker" or "cli". A coordinator exposes no worker families and a worker
// no coordinator families; any other role (and a process that never calls
// this, such as a test) exposes both.
void ProcessStarted(const std::string& role);

// --- Worker: teacher calls ---------------------------------------------------

// A teacher request (one attempt) ended. `http_status` is 0 when no response
// arrived; `outcome` is "ok" or a failure kind ("retryable", "rate_limited",
// "permanent", "teacher_down").
void TeacherRequest(const std::string& teacher, const std::string& model,
                    int http_status, const std::string& outcome,
                    double latency_seconds);
// Time until the first byte of the answer. Requests are not streamed yet, so
// callers pass the whole latency; the family exists so dashboards need not
// change when streaming arrives.
void TimeToFirstToken(const std::string& teacher, const std::string& model,
                      double seconds);
// Tokens paid for, by kind: prompt, completion, reasoning (part of
// completion), cached (part of prompt).
void Tokens(const std::string& teacher, const std::string& model,
            const std::string& kind, int64_t n);
void CostUsd(const std::string& teacher, const std::string& model, double usd);
// Requests in flight from this worker to a teacher.
void InFlight(const std::string& teacher, int64_t delta);
// A failed attempt will be retried after `wait_seconds`; `reason` is
// "rate_limited" (429) or "retryable".
void Retry(const std::string& teacher, const std::string& model,
           const std::string& reason, double wait_seconds);
// The configured limits of a teacher profile, cluster-wide: rpm and tpm per
// window of `window_seconds` (-1: not configured, learned; 0: no limit),
// exposed per minute.
void TeacherLimits(const std::string& teacher, int64_t rpm, int64_t tpm,
                   int64_t window_seconds, int64_t max_concurrency);
// The worker's share of a teacher's cluster-wide budget, as last granted
// (rates per minute; 0: not enforced).
void BudgetShare(const std::string& teacher, double requests_per_minute,
                 double tokens_per_minute, int64_t max_concurrency);

// --- Coordinator: events ------------------------------------------------------

// A task settled; outcome is "answered", "duplicate" (answered with a text
// seen before), "cache_hit" (answered without a request) or "failed" (dead
// letter).
void TaskSettled(const std::string& teacher, const std::string& model,
                 const std::string& outcome);
// An answer checked by its job's --verify; result is "verified",
// "rejected" or "no_reference".
void AnswerChecked(const std::string& teacher, const std::string& model,
                   const std::string& result);
// An answer of a --json-schema job that did not parse or match.
void SchemaFailure(const std::string& teacher, const std::string& model);
// Creates a teacher/model's task series at zero, so rates and alerts see
// them before the first event.
void InitTaskSeries(const std::string& teacher, const std::string& model);
// A lease expired and its task went back to the pool.
void LeaseExpired(const std::string& teacher);
// Worker reports: results accepted, and results ignored (the task was
// already done: a late or repeated report).
void ReportedResults(int64_t accepted, int64_t ignored);
// Prompts accepted by submissions; records sent by exports.
void PromptsSubmitted(int64_t n);
void RecordsExported(int64_t n);
// A gRPC call refused before it ran: `service` "client" or "worker",
// `reason` "token_missing", "token_wrong", "submissions_in_flight",
// "prompt_too_long".
void RejectedCall(const std::string& service, const std::string& reason);
// A reported result was not used: the worker is unknown ("unknown_worker")
// or never held the task's lease ("not_holder").
void RefusedResult(const std::string& reason);
// A store read or write failed while the coordinator was `operation`
// ("lease_scan", "lease_read", "retry", "export").
void StoreError(const std::string& operation);

// --- Values read at scrape time ------------------------------------------

struct Sample {
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Family {
  std::string name;
  std::string help;
  bool counter = false;  // a gauge unless set
  std::vector<Sample> samples;
};
using Collector = std::function<std::vector<Family>()>;

// Keeps a collector registered; unregisters it when destroyed. Do not
// destroy it while holding a lock the collector takes.
class CollectorHandle {
 public:
  explicit CollectorHandle(int64_t id) : id_(id) {}
  ~CollectorHandle();
  CollectorHandle(const CollectorHandle&) = delete;
  CollectorHandle& operator=(const CollectorHandle&) = delete;

 private:
  int64_t id_;
};

// `collector` runs on the exposer's thread on every scrape.
std::unique_ptr<CollectorHandle> AddCollector(Collector collector);

// Everything this process exposes, in the text exposition format (what
// /metrics serves). For tests and debugging.
std::string TextExposition();

}  // namespace metrics
}  // namespace distillery

#endif  // DISTILLERY_COMMON_METRICS_METRICS_H_
