// Export: streams the records of finished tasks, job by job in submission
// order, applying the request's filters, the repeat check and export-time
// near-duplicate removal. It reads the store directly, never the
// scheduler's state, so an export runs without the coordinator's lock and
// does not slow leasing or commits. Its working state (keys emitted, LSH
// buckets) lives in the store's scratch space under an export id, so memory
// stays flat however large the export. Thread-safe: each call is
// independent.
#ifndef DISTILLERY_SERVICES_COORDINATOR_EXPORTER_H_
#define DISTILLERY_SERVICES_COORDINATOR_EXPORTER_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "common/store/store.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

// What an export left out by its repeat and near-duplicate checks.
struct ExportCounts {
  int64_t duplicates_left_out = 0;       // duplicate_of, or a repeated answer
  int64_t near_duplicates_left_out = 0;  // near_dup_threshold
};

// Streams the records of `jobs` (as the coordinator holds them now), each
// in submission order (prompt, then sample), keeping those that pass the
// request's filters. Unless include_duplicates, a stored answer is emitted
// once per export: identical answers (duplicate_of) and cache hits of an
// answer already emitted (a repeated prompt) are left out. Stops early, OK,
// when `emit` returns false. `counts` (when given) says what was left out.
absl::Status ExportJobs(Store& store, const v1::ExportRequest& request,
                        const std::vector<v1::Job>& jobs,
                        const std::function<bool(v1::ExportRecord&&)>& emit,
                        ExportCounts* counts = nullptr);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_EXPORTER_H_
