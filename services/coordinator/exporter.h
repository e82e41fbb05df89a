// Export: streams the records of finished tasks, job by job in submission
// order, applying the request's filters, the repeat check and export-time
// near-duplicate removal. It reads the store directly, never the
// scheduler's state, so an export runs without the coordinator's lock and
// does not slow leasing or commits. Its working state (keys emitted, LSH
// buckets) lives in the store's scratch space under an export id, so memory
// stays flat however large the export. Records go out as the bytes the
// store holds (ExportRecordBytes): the parts a filter needs are read from
// them, the rest is never parsed. Thread-safe: each call is independent.
#ifndef DISTILLERY_SERVICES_COORDINATOR_EXPORTER_H_
#define DISTILLERY_SERVICES_COORDINATOR_EXPORTER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/store/store.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

// What an export left out by its repeat and near-duplicate checks.
struct ExportCounts {
  int64_t duplicates_left_out = 0;       // duplicate_of, or a repeated answer
  int64_t near_duplicates_left_out = 0;  // near_dup_threshold
};

// One record of an export as bytes: the stored serialisations of its task,
// prompt and answer, which are the fields of a v1::ExportRecord, so that a
// record streamed out is never parsed and serialised again. The views are
// valid during the emit call only.
struct ExportRecordBytes {
  std::string_view job_id;
  std::string_view task;                   // a serialised v1::Task
  std::string_view prompt;                 // a serialised v1::Prompt
  std::optional<std::string_view> answer;  // none for a failed task

  // The serialised v1::ExportRecord, appended to `out`.
  void AppendTo(std::string* out) const;
  // The bytes AppendTo appends.
  size_t ByteSize() const;
  // The record parsed, for callers that read its fields; DATA_LOSS when a
  // part does not parse.
  absl::StatusOr<v1::ExportRecord> Parse() const;
};

using ExportEmit = std::function<bool(const ExportRecordBytes&)>;

// Streams the records of `jobs` (as the coordinator holds them now), each
// in submission order (prompt, then sample), keeping those that pass the
// request's filters. Unless include_duplicates, a stored answer is emitted
// once per export: identical answers (duplicate_of) and cache hits of an
// answer already emitted (a repeated prompt) are left out. Stops early, OK,
// when `emit` returns false. `counts` (when given) says what was left out.
absl::Status ExportJobs(Store& store, const v1::ExportRequest& request,
                        const std::vector<v1::Job>& jobs,
                        const ExportEmit& emit,
                        ExportCounts* counts = nullptr);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_EXPORTER_H_
