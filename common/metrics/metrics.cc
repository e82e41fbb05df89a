#include "common/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"

namespace distillery {
namespace {

struct Families {
  std::shared_ptr<prometheus::Registry> registry =
      std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& teacher_requests =
      prometheus::BuildCounter()
          .Name("distillery_teacher_requests_total")
          .Help("Teacher requests by outcome")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& teacher_latency =
      prometheus::BuildHistogram()
          .Name("distillery_teacher_request_duration_seconds")
          .Help("Teacher request latency")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& tokens =
      prometheus::BuildCounter()
          .Name("distillery_tokens_total")
          .Help("Tokens paid for, by kind")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& in_flight =
      prometheus::BuildGauge()
          .Name("distillery_teacher_requests_in_flight")
          .Help("Teacher requests in flight from this process")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& tasks =
      prometheus::BuildCounter()
          .Name("distillery_tasks_settled_total")
          .Help("Tasks settled by the coordinator, by outcome")
          .Register(*registry);
  prometheus::Counter& lease_expiries =
      prometheus::BuildCounter()
          .Name("distillery_lease_expiries_total")
          .Help("Leases that expired and returned their task")
          .Register(*registry)
          .Add({});
  prometheus::Counter& prompts_submitted =
      prometheus::BuildCounter()
          .Name("distillery_prompts_submitted_total")
          .Help("Prompts accepted by submissions")
          .Register(*registry)
          .Add({});
  prometheus::Counter& records_exported =
      prometheus::BuildCounter()
          .Name("distillery_records_exported_total")
          .Help("Records sent by exports")
          .Register(*registry)
          .Add({});
};

Families& F() {
  static Families* families = new Families();
  return *families;
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return *buckets;
}

}  // namespace

struct MetricsExposer::Impl {
  std::unique_ptr<prometheus::Exposer> exposer;
};

MetricsExposer::MetricsExposer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
MetricsExposer::~MetricsExposer() = default;

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& address) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  impl->exposer->RegisterCollectable(F().registry);
  return std::unique_ptr<MetricsExposer>(new MetricsExposer(std::move(impl)));
}

namespace metrics {

void TeacherRequest(const std::string& teacher, const std::string& outcome,
                    double latency_seconds) {
  F().teacher_requests.Add({{"teacher", teacher}, {"outcome", outcome}})
      .Increment();
  F().teacher_latency.Add({{"teacher", teacher}}, LatencyBuckets())
      .Observe(latency_seconds);
}

void Tokens(const std::string& teacher, const std::string& kind, int64_t n) {
  if (n <= 0) return;
  F().tokens.Add({{"teacher", teacher}, {"kind", kind}})
      .Increment(static_cast<double>(n));
}

void InFlight(const std::string& teacher, int64_t delta) {
  F().in_flight.Add({{"teacher", teacher}})
      .Increment(static_cast<double>(delta));
}

void TaskSettled(const std::string& outcome) {
  F().tasks.Add({{"outcome", outcome}}).Increment();
}

void LeaseExpired() { F().lease_expiries.Increment(); }

void PromptsSubmitted(int64_t n) {
  F().prompts_submitted.Increment(static_cast<double>(n));
}

void RecordsExported(int64_t n) {
  F().records_exported.Increment(static_cast<double>(n));
}

}  // namespace metrics
}  // namespace distillery
