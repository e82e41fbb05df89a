#include "common/dataset/dataset_builder.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace distillery {

absl::StatusOr<DatasetBuilder> DatasetBuilder::Create(
    const v1::ExportLayout& layout) {
  DatasetBuilder b;
  b.layout_ = layout;
  // An unset format is the CLI's default.
  if (b.layout_.format().empty()) b.layout_.set_format("openai");
  ASSIGN_OR_RETURN(b.record_layout_,
                   ParseRecordLayout(b.layout_.format(), layout.reasoning(),
                                     layout.reasoning_key()));
  if (!layout.split().empty()) {
    ASSIGN_OR_RETURN(SplitSpec spec, ParseSplitSpec(layout.split()));
    for (const SplitSpec::Part& part : spec.parts) {
      b.part_names_.push_back(part.name);
    }
    b.split_ = std::move(spec);
  } else {
    b.part_names_.push_back("train");
  }
  b.part_records_.assign(b.part_names_.size(), 0);
  b.want_card_ = layout.has_card();
  if (b.want_card_) {
    RETURN_IF_ERROR(CheckCardOptions(layout.card(), b.part_names_));
  }
  return b;
}

int DatasetBuilder::Add(const v1::ExportRecord& record,
                        std::vector<std::string>* parts) {
  const int i = PartOf(record);
  Append(record, i, &(*parts)[i]);
  return i;
}

int DatasetBuilder::PartOf(const v1::ExportRecord& record) const {
  return split_ ? AssignSplit(*split_, record.prompt().id(),
                              layout_.split_seed())
                : 0;
}

void DatasetBuilder::Append(const v1::ExportRecord& record, int part,
                            std::string* buffer) {
  AppendRecord(record, record_layout_, buffer);
  buffer->push_back('\n');
  ++part_records_[part];
  ++records_;
  if (record_layout_.reasoning == ReasoningLayout::kDrop &&
      !record.answer().reasoning().empty()) {
    ++traces_dropped_;
  }
  if (want_card_) card_.AddRecord(record);
}

std::string DatasetBuilder::RenderCard(const v1::ExportRequest& request,
                                       const v1::ExportSummary& summary) const {
  DatasetCard::Export facts;
  facts.request = request;
  facts.request.clear_layout();
  facts.format = layout_.format();
  switch (record_layout_.reasoning) {
    case ReasoningLayout::kField:
      facts.reasoning = record_layout_.format == ExportFormat::kChat
                            ? absl::StrCat("in the assistant message's \"",
                                           record_layout_.reasoning_key, "\"")
                            : "in the assistant message's \"reasoning\"";
      break;
    case ReasoningLayout::kThinkTags:
      facts.reasoning = "inline before the answer in <think> tags";
      break;
    case ReasoningLayout::kDrop:
      facts.reasoning = "left out";
      break;
  }
  facts.part_names = part_names_;
  facts.part_records = part_records_;
  facts.duplicates_left_out = summary.duplicates_left_out();
  facts.near_duplicates_left_out = summary.near_duplicates_left_out();
  return card_.Render(layout_.card(), facts);
}

}  // namespace distillery
