// Dataset formats: turn one exported record (prompt + answer) into one JSONL
// line that a fine-tuning run reads directly.
//   openai   {"messages":[...,{"role":"assistant","content":..,"reasoning":..}]}
//   sharegpt {"conversations":[{"from":"system|human|gpt","value":..}]}
//   raw      every field, with provenance (teacher, model, parameters, usage,
//            finish reason, timestamps, request key, duplicate-of)
//   errors   dead letters: one failed task a line, with prompt id, line,
//            messages, attempts and the last error
// The reasoning layout (openai and sharegpt) places the teacher's reasoning
// trace: in a "reasoning" field of the assistant message, inline before the
// answer as "<think>\nREASONING\n</think>\nANSWER" (DeepSeek-R1 style, for
// models trained to think aloud), or nowhere.
// Stored JSON text (metadata, reasoning blocks) nesting deeper than
// kMaxJsonDepth (json_depth.h) is not re-written: it is null (openai and
// sharegpt leave the metadata out), and a warning names the prompt's line.
#ifndef DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_
#define DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

enum class ExportFormat { kOpenAi, kShareGpt, kRaw, kErrors };
enum class ReasoningLayout { kField, kThinkTags, kDrop };

// Parse --format and --reasoning values; INVALID_ARGUMENT names the accepted
// ones.
absl::StatusOr<ExportFormat> ParseExportFormat(std::string_view name);
absl::StatusOr<ReasoningLayout> ParseReasoningLayout(std::string_view name);

// The assistant message's text under `layout`: the answer, with the
// reasoning inline in think tags for kThinkTags when there is any.
std::string AssistantText(const v1::Answer& answer, ReasoningLayout layout);

// One line of JSON, without the trailing newline.
std::string FormatRecord(const v1::ExportRecord& record, ExportFormat format,
                         ReasoningLayout layout = ReasoningLayout::kField);

// FormatRecord's line appended to *out, which saves a caller that collects
// many lines in one buffer a string per record.
void AppendRecord(const v1::ExportRecord& record, ExportFormat format,
                  ReasoningLayout layout, std::string* out);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_
