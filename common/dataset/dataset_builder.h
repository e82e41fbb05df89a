// Dataset builder: turns exported records into dataset lines, each appended
// to the buffer of its split part (split.h), and collects the facts of the
// dataset card (dataset_card.h) on the way. The one path from records to a
// dataset: the CLI runs it on its side, and the coordinator runs it for
// clients that ask it to format the export (ExportRequest.layout: the Python
// client).
// Thread-compatible: one export's object, used by one thread.
#ifndef DISTILLERY_COMMON_DATASET_DATASET_BUILDER_H_
#define DISTILLERY_COMMON_DATASET_DATASET_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dataset/dataset_card.h"
#include "common/dataset/export_format.h"
#include "common/dataset/split.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

class DatasetBuilder {
 public:
  // INVALID_ARGUMENT names the bad format (unset: openai), reasoning
  // layout, reasoning key, split or card option.
  static absl::StatusOr<DatasetBuilder> Create(const v1::ExportLayout& layout);

  // The split parts' names ("train" alone without a split), in order.
  const std::vector<std::string>& part_names() const { return part_names_; }
  bool split() const { return split_.has_value(); }
  const RecordLayout& record_layout() const { return record_layout_; }

  // Appends the record's line and "\n" to (*parts)[i], i its part (parts
  // holds one buffer per part), and counts it. Returns i.
  int Add(const v1::ExportRecord& record, std::vector<std::string>* parts);
  // Add in two steps, for a caller that measures the line: the record's
  // part, then its line (and "\n") appended to that part's `buffer`.
  int PartOf(const v1::ExportRecord& record) const;
  void Append(const v1::ExportRecord& record, int part, std::string* buffer);

  const std::vector<int64_t>& part_records() const { return part_records_; }
  int64_t records() const { return records_; }
  // Exported records whose answer has a reasoning trace the layout dropped.
  int64_t traces_dropped() const { return traces_dropped_; }

  // The card's facts: jobs are added by the caller, records by Add.
  DatasetCard& card() { return card_; }
  // The README.md text, given what the coordinator's summary said.
  std::string RenderCard(const v1::ExportRequest& request,
                         const v1::ExportSummary& summary) const;

 private:
  DatasetBuilder() = default;

  v1::ExportLayout layout_;
  RecordLayout record_layout_;
  std::optional<SplitSpec> split_;
  std::vector<std::string> part_names_;
  std::vector<int64_t> part_records_;
  int64_t records_ = 0;
  int64_t traces_dropped_ = 0;
  bool want_card_ = false;
  DatasetCard card_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_DATASET_BUILDER_H_
