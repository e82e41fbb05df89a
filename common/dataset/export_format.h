// Dataset formats: turn one exported record (prompt + answer) into one JSONL
// line that a fine-tuning run reads directly.
//   openai   {"messages":[...,{"role":"assistant","content":..}]}: exactly
//            what OpenAI's fine-tuning upload accepts (no metadata; a trace
//            only inline in think tags, or dropped)
//   chat     Hugging Face / TRL / axolotl conversational datasets: openai's
//            messages, the trace under a key the model's chat template reads
//            ("reasoning_content" for Qwen3, DeepSeek and vLLM; "thinking"
//            for gpt-oss), and "metadata"
//   sharegpt {"conversations":[{"from":"system|human|gpt","value":..}]}
//   raw      every field, with provenance (teacher, model, parameters, usage,
//            finish reason, timestamps, request key, duplicate-of, and
//            --verify's verified and extracted_answer)
//   errors   dead letters: one failed task a line, with prompt id, line,
//            messages, attempts and the last error
//   logprobs {"messages":[...],"tokens":[..],"logprobs":[..],
//            "top_logprobs":[[[token,logprob],..],..]} for logit
//            distillation (a job with --logprobs K)
// Tool use (a line's tools, tool_calls and tool turns) is written as
// OpenAI's fine-tuning format has it in openai and chat (the assistant
// message's tool_calls, the line's tools at the top level), as
// LLaMA-Factory reads it in sharegpt (function_call and observation turns,
// "tools" as JSON text), and verbatim in raw, with the logprobs.
// The reasoning layout (openai, chat and sharegpt) places the teacher's
// reasoning trace: in a field of the assistant message (chat: the reasoning
// key; sharegpt: "reasoning"; openai has none), inline before the
// answer as "<think>\nREASONING\n</think>\nANSWER" (DeepSeek-R1 style, for
// models trained to think aloud), or nowhere.
// Stored JSON text (metadata, reasoning blocks) nesting deeper than
// kMaxJsonDepth (json_depth.h) is not re-written: it is null (chat and
// sharegpt leave the metadata out), and a warning names the prompt's line.
#ifndef DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_
#define DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

enum class ExportFormat { kOpenAi, kChat, kShareGpt, kRaw, kErrors, kLogprobs };
enum class ReasoningLayout { kField, kThinkTags, kDrop };

// The chat format's key for the trace unless told otherwise.
inline constexpr std::string_view kDefaultReasoningKey = "reasoning_content";

// How each record becomes a line: the --format, --reasoning and
// --reasoning-key of an export, checked together.
struct RecordLayout {
  ExportFormat format = ExportFormat::kOpenAi;
  ReasoningLayout reasoning = ReasoningLayout::kDrop;
  std::string reasoning_key = std::string(kDefaultReasoningKey);
};

// Parse --format and --reasoning values; INVALID_ARGUMENT names the accepted
// ones.
absl::StatusOr<ExportFormat> ParseExportFormat(std::string_view name);
absl::StatusOr<ReasoningLayout> ParseReasoningLayout(std::string_view name);

// The three together. An empty `reasoning` is the format's default: drop for
// openai, field for the others; openai with field is INVALID_ARGUMENT (its
// upload has no key for a trace). An empty `reasoning_key` is
// kDefaultReasoningKey; it must be letters, digits and '_', not role or
// content.
absl::StatusOr<RecordLayout> ParseRecordLayout(std::string_view format,
                                               std::string_view reasoning,
                                               std::string_view reasoning_key);

// The assistant message's text under `layout`: the answer, with the
// reasoning inline in think tags for kThinkTags when there is any.
std::string AssistantText(const v1::Answer& answer, ReasoningLayout layout);

// One line of JSON, without the trailing newline.
std::string FormatRecord(const v1::ExportRecord& record, ExportFormat format,
                         ReasoningLayout layout = ReasoningLayout::kField,
                         std::string_view reasoning_key = kDefaultReasoningKey);

// FormatRecord's line appended to *out, which saves a caller that collects
// many lines in one buffer a string per record.
void AppendRecord(const v1::ExportRecord& record, const RecordLayout& layout,
                  std::string* out);
void AppendRecord(const v1::ExportRecord& record, ExportFormat format,
                  ReasoningLayout layout, std::string_view reasoning_key,
                  std::string* out);
void AppendRecord(const v1::ExportRecord& record, ExportFormat format,
                  ReasoningLayout layout, std::string* out);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_EXPORT_FORMAT_H_
