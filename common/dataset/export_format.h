// Dataset formats: turn one exported record (prompt + answer) into one JSONL
// line that a fine-tuning run reads directly.
//   openai   {"messages":[...,{"role":"assistant","content":..,"reasoning":..}]}
//   sharegpt {"conversations":[{"from":"system|human|gpt","value":..}]}
//   raw      every field, with provenance (teacher, model, parameters, usage,
//            finish reason, timestamps, request key, duplicate-of)
#ifndef DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_
#define DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

enum class ExportFormat { kOpenAi, kShareGpt, kRaw };

// Parses a --format value; INVALID_ARGUMENT names the accepted ones.
absl::StatusOr<ExportFormat> ParseExportFormat(std::string_view name);

// One line of JSON, without the trailing newline.
std::string FormatRecord(const v1::ExportRecord& record, ExportFormat format);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_
