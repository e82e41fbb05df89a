#include "common/metrics/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace distillery {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Values computed on scrape by the registered Collectors.
class CallbackCollectable : public prometheus::Collectable {
 public:
  int64_t Add(metrics::Collector collector) {
    absl::MutexLock lock(&mu_);
    const int64_t id = next_id_++;
    collectors_[id] = std::move(collector);
    return id;
  }
  void Remove(int64_t id) {
    absl::MutexLock lock(&mu_);
    collectors_.erase(id);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    absl::MutexLock lock(&mu_);
    std::vector<prometheus::MetricFamily> out;
    for (const auto& [id, collector] : collectors_) {
      for (metrics::Family& f : collector()) {
        prometheus::MetricFamily family;
        family.name = std::move(f.name);
        family.help = std::move(f.help);
        family.type = f.counter ? prometheus::MetricType::Counter
                                : prometheus::MetricType::Gauge;
        for (metrics::Sample& s : f.samples) {
          prometheus::ClientMetric metric;
          for (auto& [name, value] : s.labels) {
            metric.label.push_back({name, value});
          }
          if (f.counter) {
            metric.counter.value = s.value;
          } else {
            metric.gauge.value = s.value;
          }
          family.metric.push_back(std::move(metric));
        }
        out.push_back(std::move(family));
      }
    }
    return out;
  }

 private:
  // Held while collecting, so a collector is never removed mid-call.
  mutable absl::Mutex mu_;
  std::map<int64_t, metrics::Collector> collectors_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// Families by the role that records them: a process exposes the common
// ones and its role's (see ProcessStarted), so a worker serves no empty
// coordinator series and the other way round.
struct Families {
  std::shared_ptr<prometheus::Registry> registry =
      std::make_shared<prometheus::Registry>();
  std::shared_ptr<prometheus::Registry> worker_registry =
      std::make_shared<prometheus::Registry>();
  std::shared_ptr<prometheus::Registry> coordinator_registry =
      std::make_shared<prometheus::Registry>();
  std::shared_ptr<CallbackCollectable> callbacks =
      std::make_shared<CallbackCollectable>();

  prometheus::Family<prometheus::Gauge>& build_info =
      BuildGauge()
          .Name("distillery_build_info")
          .Help("1 for each running Distillery process, labelled by role")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& start_time =
      BuildGauge()
          .Name("process_start_time_seconds")
          .Help("Start time of the process since the Unix epoch, in seconds")
          .Register(*registry);

  // Configuration, exposed by every role.
  prometheus::Family<prometheus::Gauge>& limit_rpm =
      BuildGauge()
          .Name("distillery_teacher_limit_requests_per_minute")
          .Help("A teacher profile's configured request limit, cluster-wide, "
                "converted to per minute from rpm per limit_window_s (-1: "
                "none configured, learned from the teacher; 0: no limit)")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& limit_tpm =
      BuildGauge()
          .Name("distillery_teacher_limit_tokens_per_minute")
          .Help("A teacher profile's configured token limit, cluster-wide, "
                "converted to per minute from tpm per limit_window_s (-1: "
                "none configured, learned from the teacher; 0: no limit)")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& limit_concurrency =
      BuildGauge()
          .Name("distillery_teacher_limit_concurrency")
          .Help("A teacher profile's configured limit of concurrent "
                "requests, cluster-wide (0: no limit)")
          .Register(*registry);
  // Worker.
  prometheus::Family<prometheus::Counter>& teacher_requests =
      BuildCounter()
          .Name("distillery_teacher_requests_total")
          .Help("Teacher request attempts by HTTP status class (none: no "
                "response) and outcome (ok or the failure kind)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Histogram>& teacher_latency =
      BuildHistogram()
          .Name("distillery_teacher_request_duration_seconds")
          .Help("Teacher request attempt latency, until the whole answer")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Histogram>& ttft =
      BuildHistogram()
          .Name("distillery_teacher_time_to_first_token_seconds")
          .Help("Time to the first token of an answer (equals the request "
                "duration while requests are not streamed)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Counter>& tokens =
      BuildCounter()
          .Name("distillery_tokens_total")
          .Help("Tokens paid for, by kind: prompt, completion, reasoning "
                "(part of completion), cached (part of prompt)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Counter>& cost =
      BuildCounter()
          .Name("distillery_cost_usd_total")
          .Help("Spend on teacher answers in US dollars, from the profile's "
                "pricing (0 when a model has no price)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Gauge>& in_flight =
      BuildGauge()
          .Name("distillery_teacher_requests_in_flight")
          .Help("Teacher requests in flight from this worker")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Counter>& retries =
      BuildCounter()
          .Name("distillery_teacher_retries_total")
          .Help("Failed attempts scheduled for a retry, by reason "
                "(rate_limited: a 429; retryable: 5xx, timeouts, ...)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Counter>& retry_wait =
      BuildCounter()
          .Name("distillery_teacher_retry_wait_seconds_total")
          .Help("Time tasks spent waiting for a retry (backoff or "
                "retry-after), by reason")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Gauge>& share_rpm =
      BuildGauge()
          .Name("distillery_worker_share_requests_per_minute")
          .Help("This worker's share of a teacher's request budget, from the "
                "coordinator's last heartbeat answer (0: none enforced)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Gauge>& share_tpm =
      BuildGauge()
          .Name("distillery_worker_share_tokens_per_minute")
          .Help("This worker's share of a teacher's token budget (0: none "
                "enforced)")
          .Register(*worker_registry);
  prometheus::Family<prometheus::Gauge>& share_concurrency =
      BuildGauge()
          .Name("distillery_worker_share_concurrency")
          .Help("Requests this worker may have in flight to a teacher under "
                "its share (0: no cluster-wide cap)")
          .Register(*worker_registry);

  // Coordinator.
  prometheus::Family<prometheus::Counter>& tasks =
      BuildCounter()
          .Name("distillery_tasks_settled_total")
          .Help("Tasks settled by the coordinator, by outcome: answered, "
                "duplicate, cache_hit (no request sent), failed (dead letter)")
          .Register(*coordinator_registry);
  prometheus::Family<prometheus::Counter>& checks =
      BuildCounter()
          .Name("distillery_answers_checked_total")
          .Help("Answers checked by a job's --verify as they were committed, "
                "by result: verified, rejected, no_reference")
          .Register(*coordinator_registry);
  prometheus::Family<prometheus::Counter>& schema_failures =
      BuildCounter()
          .Name("distillery_schema_failures_total")
          .Help("Answers of --json-schema jobs that did not parse or did not "
                "match the schema, and were asked again or dead-lettered")
          .Register(*coordinator_registry);
  prometheus::Family<prometheus::Counter>& lease_expiries =
      BuildCounter()
          .Name("distillery_lease_expiries_total")
          .Help("Leases that expired and returned their task to the pool")
          .Register(*coordinator_registry);
  prometheus::Family<prometheus::Counter>& reports =
      BuildCounter()
          .Name("distillery_reported_results_total")
          .Help("Task results reported by workers: accepted, or ignored "
                "(the task was already done)")
          .Register(*coordinator_registry);
  prometheus::Counter& prompts_submitted =
      BuildCounter()
          .Name("distillery_prompts_submitted_total")
          .Help("Prompts accepted by submissions")
          .Register(*coordinator_registry)
          .Add({});
  prometheus::Counter& records_exported =
      BuildCounter()
          .Name("distillery_records_exported_total")
          .Help("Records sent by exports")
          .Register(*coordinator_registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& rejected_calls =
      BuildCounter()
          .Name("distillery_rejected_calls_total")
          .Help("gRPC calls refused by the coordinator: unauthenticated "
                "(token missing or wrong) or over a limit")
          .Register(*coordinator_registry);
  prometheus::Family<prometheus::Counter>& refused_results =
      BuildCounter()
          .Name("distillery_refused_results_total")
          .Help("Reported results not used because the reporting worker "
                "never held the task: unknown_worker or not_holder")
          .Register(*coordinator_registry);
  prometheus::Family<prometheus::Counter>& store_errors =
      BuildCounter()
          .Name("distillery_store_errors_total")
          .Help("Store reads or writes that failed, by what the coordinator "
                "was doing (the operation failed and was retried or "
                "reported, never taken as an empty answer)")
          .Register(*coordinator_registry);
};

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return *buckets;
}

// The series of one family, by label values, looked up in the family once.
// Family::Add builds a std::map of labels and hashes it on every call (about
// ten allocations per event, several events per teacher answer); a series,
// once added, lives as long as its family (nothing here removes one), so
// its address can be kept. Thread-safe.
template <typename T>
class SeriesCache {
 public:
  SeriesCache(prometheus::Family<T>& family, std::vector<std::string> names)
      : family_(family), names_(std::move(names)) {}

  // `values` match the names given to the constructor, in order.
  T& Get(std::initializer_list<std::string_view> values) {
    // Each value prefixed by its length, so no two lists share a key; the
    // buffer is reused, so a lookup that hits allocates nothing.
    thread_local std::string key;
    key.clear();
    for (std::string_view v : values) {
      const size_t n = v.size();
      key.append(reinterpret_cast<const char*>(&n), sizeof(n));
      key.append(v);
    }
    absl::MutexLock lock(&mu_);
    auto it = series_.find(key);
    if (it != series_.end()) return *it->second;
    prometheus::Labels labels;
    size_t i = 0;
    for (std::string_view v : values) labels.emplace(names_[i++], v);
    T* series;
    if constexpr (std::is_same_v<T, prometheus::Histogram>) {
      series = &family_.Add(labels, LatencyBuckets());
    } else {
      series = &family_.Add(labels);
    }
    series_.emplace(key, series);
    return *series;
  }

 private:
  prometheus::Family<T>& family_;
  const std::vector<std::string> names_;
  absl::Mutex mu_;
  std::unordered_map<std::string, T*> series_ ABSL_GUARDED_BY(mu_);
};

// The per-event series, cached (see SeriesCache).
struct Series {
  explicit Series(Families& f)
      : teacher_requests(f.teacher_requests,
                         {"teacher", "model", "status_class", "outcome"}),
        teacher_latency(f.teacher_latency, {"teacher", "model"}),
        ttft(f.ttft, {"teacher", "model"}),
        tokens(f.tokens, {"teacher", "model", "kind"}),
        cost(f.cost, {"teacher", "model"}),
        in_flight(f.in_flight, {"teacher"}),
        retries(f.retries, {"teacher", "model", "reason"}),
        retry_wait(f.retry_wait, {"teacher", "model", "reason"}),
        tasks(f.tasks, {"teacher", "model", "outcome"}),
        checks(f.checks, {"teacher", "model", "result"}),
        schema_failures(f.schema_failures, {"teacher", "model"}),
        lease_expiries(f.lease_expiries, {"teacher"}),
        reports(f.reports, {"result"}),
        rejected_calls(f.rejected_calls, {"service", "reason"}),
        refused_results(f.refused_results, {"reason"}),
        store_errors(f.store_errors, {"operation"}) {}

  SeriesCache<prometheus::Counter> teacher_requests;
  SeriesCache<prometheus::Histogram> teacher_latency;
  SeriesCache<prometheus::Histogram> ttft;
  SeriesCache<prometheus::Counter> tokens;
  SeriesCache<prometheus::Counter> cost;
  SeriesCache<prometheus::Gauge> in_flight;
  SeriesCache<prometheus::Counter> retries;
  SeriesCache<prometheus::Counter> retry_wait;
  SeriesCache<prometheus::Counter> tasks;
  SeriesCache<prometheus::Counter> checks;
  SeriesCache<prometheus::Counter> schema_failures;
  SeriesCache<prometheus::Counter> lease_expiries;
  SeriesCache<prometheus::Counter> reports;
  SeriesCache<prometheus::Counter> rejected_calls;
  SeriesCache<prometheus::Counter> refused_results;
  SeriesCache<prometheus::Counter> store_errors;
};

Families& F() {
  static Families* families = new Families();
  return *families;
}

Series& S() {
  static Series* series = new Series(F());
  return *series;
}

std::string_view StatusClass(int http_status) {
  switch (http_status / 100) {
    case 1:
      return "1xx";
    case 2:
      return "2xx";
    case 3:
      return "3xx";
    case 4:
      return "4xx";
    case 5:
      return "5xx";
  }
  if (http_status <= 0) return "none";
  thread_local std::string other;
  other = absl::StrCat(http_status / 100, "xx");
  return other;
}

// The role ProcessStarted named; "" until then (tests): every family.
ABSL_CONST_INIT absl::Mutex role_mu(absl::kConstInit);
std::string& Role() ABSL_EXCLUSIVE_LOCKS_REQUIRED(role_mu) {
  static std::string* role = new std::string();
  return *role;
}

std::vector<std::shared_ptr<prometheus::Registry>> ExposedRegistries() {
  std::string role;
  {
    absl::MutexLock lock(&role_mu);
    role = Role();
  }
  std::vector<std::shared_ptr<prometheus::Registry>> out = {F().registry};
  if (role != "coordinator") out.push_back(F().worker_registry);
  if (role != "worker") out.push_back(F().coordinator_registry);
  return out;
}

// The registries of the process's role, chosen on each scrape, so that it
// does not matter whether ProcessStarted ran before the exposer started.
class RoleCollectable : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    for (const auto& registry : ExposedRegistries()) {
      for (prometheus::MetricFamily& f : registry->Collect()) {
        out.push_back(std::move(f));
      }
    }
    return out;
  }
};

std::shared_ptr<RoleCollectable> RoleFamilies() {
  static auto* families = new std::shared_ptr<RoleCollectable>(
      std::make_shared<RoleCollectable>());
  return *families;
}

}  // namespace

struct MetricsExposer::Impl {
  std::unique_ptr<prometheus::Exposer> exposer;
};

MetricsExposer::MetricsExposer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
MetricsExposer::~MetricsExposer() = default;

int MetricsExposer::port() const {
  std::vector<int> ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& address) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  impl->exposer->RegisterCollectable(RoleFamilies());
  impl->exposer->RegisterCollectable(F().callbacks);
  return std::unique_ptr<MetricsExposer>(new MetricsExposer(std::move(impl)));
}

namespace metrics {

void ProcessStarted(const std::string& role) {
  {
    absl::MutexLock lock(&role_mu);
    Role() = role;
  }
  F().build_info.Add({{"role", role}}).Set(1);
  F().start_time.Add({}).Set(
      std::chrono::duration<double>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void TeacherRequest(const std::string& teacher, const std::string& model,
                    int http_status, const std::string& outcome,
                    double latency_seconds) {
  S().teacher_requests.Get({teacher, model, StatusClass(http_status), outcome})
      .Increment();
  S().teacher_latency.Get({teacher, model}).Observe(latency_seconds);
}

void TimeToFirstToken(const std::string& teacher, const std::string& model,
                      double seconds) {
  S().ttft.Get({teacher, model}).Observe(seconds);
}

void Tokens(const std::string& teacher, const std::string& model,
            const std::string& kind, int64_t n) {
  // Created even at zero, so every kind has a series once a model answers.
  S().tokens.Get({teacher, model, kind})
      .Increment(static_cast<double>(std::max<int64_t>(n, 0)));
}

void CostUsd(const std::string& teacher, const std::string& model,
             double usd) {
  S().cost.Get({teacher, model})
      .Increment(std::max(usd, 0.0));
}

void InFlight(const std::string& teacher, int64_t delta) {
  S().in_flight.Get({teacher})
      .Increment(static_cast<double>(delta));
}

void Retry(const std::string& teacher, const std::string& model,
           const std::string& reason, double wait_seconds) {
  S().retries.Get({teacher, model, reason}).Increment();
  S().retry_wait.Get({teacher, model, reason})
      .Increment(std::max(wait_seconds, 0.0));
}

void TeacherLimits(const std::string& teacher, int64_t rpm, int64_t tpm,
                   int64_t window_seconds, int64_t max_concurrency) {
  // Limits are per window; the series are per minute, whatever the window.
  const double per_minute = window_seconds > 0 ? 60.0 / window_seconds : 1.0;
  auto rate = [per_minute](int64_t limit) {
    return limit <= 0 ? static_cast<double>(limit) : limit * per_minute;
  };
  F().limit_rpm.Add({{"teacher", teacher}}).Set(rate(rpm));
  F().limit_tpm.Add({{"teacher", teacher}}).Set(rate(tpm));
  F().limit_concurrency.Add({{"teacher", teacher}})
      .Set(static_cast<double>(max_concurrency));
}

void BudgetShare(const std::string& teacher, double requests_per_minute,
                 double tokens_per_minute, int64_t max_concurrency) {
  F().share_rpm.Add({{"teacher", teacher}}).Set(requests_per_minute);
  F().share_tpm.Add({{"teacher", teacher}}).Set(tokens_per_minute);
  F().share_concurrency.Add({{"teacher", teacher}})
      .Set(static_cast<double>(max_concurrency));
}

void TaskSettled(const std::string& teacher, const std::string& model,
                 const std::string& outcome) {
  S().tasks.Get({teacher, model, outcome}).Increment();
}

void InitTaskSeries(const std::string& teacher, const std::string& model) {
  for (const char* outcome : {"answered", "duplicate", "cache_hit", "failed"}) {
    S().tasks.Get({teacher, model, outcome});
  }
  S().lease_expiries.Get({teacher});
}

void AnswerChecked(const std::string& teacher, const std::string& model,
                   const std::string& result) {
  S().checks.Get({teacher, model, result}).Increment();
}

void SchemaFailure(const std::string& teacher, const std::string& model) {
  S().schema_failures.Get({teacher, model}).Increment();
}

void LeaseExpired(const std::string& teacher) {
  S().lease_expiries.Get({teacher}).Increment();
}

void ReportedResults(int64_t accepted, int64_t ignored) {
  S().reports.Get({"accepted"}).Increment(static_cast<double>(accepted));
  S().reports.Get({"ignored"}).Increment(static_cast<double>(ignored));
}

void PromptsSubmitted(int64_t n) {
  F().prompts_submitted.Increment(static_cast<double>(n));
}

void RecordsExported(int64_t n) {
  F().records_exported.Increment(static_cast<double>(n));
}

void RejectedCall(const std::string& service, const std::string& reason) {
  S().rejected_calls.Get({service, reason}).Increment();
}

void RefusedResult(const std::string& reason) {
  S().refused_results.Get({reason}).Increment();
}

void StoreError(const std::string& operation) {
  S().store_errors.Get({operation}).Increment();
}

CollectorHandle::~CollectorHandle() { F().callbacks->Remove(id_); }

std::unique_ptr<CollectorHandle> AddCollector(Collector collector) {
  return std::make_unique<CollectorHandle>(
      F().callbacks->Add(std::move(collector)));
}

std::string TextExposition() {
  std::vector<prometheus::MetricFamily> families = RoleFamilies()->Collect();
  for (prometheus::MetricFamily& f : F().callbacks->Collect()) {
    families.push_back(std::move(f));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace metrics
}  // namespace distillery
