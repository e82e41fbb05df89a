#include "common/dataset/export_format.h"

#include "absl/strings/str_cat.h"
#include "common/dedup/keys.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

// ordered_json keeps fields in the order written: role before content.
using json = nlohmann::ordered_json;

// Stored text is valid UTF-8 (prompts are checked on submit, answers come
// from JSON), but replace rather than throw if that ever breaks.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json Metadata(const v1::Prompt& prompt) {
  if (prompt.metadata_json().empty()) return nullptr;
  return json::parse(prompt.metadata_json(), nullptr, /*allow_exceptions=*/false);
}

json OpenAiLine(const v1::ExportRecord& r, ReasoningLayout layout) {
  json messages = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  json assistant = {{"role", "assistant"},
                    {"content", AssistantText(r.answer(), layout)}};
  if (layout == ReasoningLayout::kField && !r.answer().reasoning().empty()) {
    assistant["reasoning"] = r.answer().reasoning();
  }
  messages.push_back(std::move(assistant));
  json line = {{"messages", std::move(messages)}};
  if (json meta = Metadata(r.prompt()); !meta.is_null()) {
    line["metadata"] = std::move(meta);
  }
  return line;
}

json ShareGptLine(const v1::ExportRecord& r, ReasoningLayout layout) {
  json turns = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    const char* from = m.role() == "system"      ? "system"
                       : m.role() == "assistant" ? "gpt"
                                                 : "human";
    turns.push_back({{"from", from}, {"value", m.content()}});
  }
  json gpt = {{"from", "gpt"}, {"value", AssistantText(r.answer(), layout)}};
  if (layout == ReasoningLayout::kField && !r.answer().reasoning().empty()) {
    gpt["reasoning"] = r.answer().reasoning();
  }
  turns.push_back(std::move(gpt));
  json line = {{"conversations", std::move(turns)}};
  if (json meta = Metadata(r.prompt()); !meta.is_null()) {
    line["metadata"] = std::move(meta);
  }
  return line;
}

// The stored thinking blocks as a JSON array (null when there are none, or
// when what was stored is somehow not JSON: the export must not fail).
json ReasoningBlocks(const v1::Answer& a) {
  if (a.reasoning_blocks().empty()) return nullptr;
  json blocks = json::parse(a.reasoning_blocks(), nullptr, false);
  return blocks.is_discarded() ? json(nullptr) : blocks;
}

json RawLine(const v1::ExportRecord& r) {
  const v1::Answer& a = r.answer();
  json messages = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  json params = json::object();
  if (a.params().max_tokens() > 0) params["max_tokens"] = a.params().max_tokens();
  if (a.params().has_temperature()) params["temperature"] = a.params().temperature();
  if (a.params().has_top_p()) params["top_p"] = a.params().top_p();
  if (a.params().has_seed()) params["seed"] = a.params().seed();
  if (a.params().stop_size() > 0) {
    params["stop"] = json(std::vector<std::string>(a.params().stop().begin(),
                                                   a.params().stop().end()));
  }
  json line = {
      {"job_id", r.job_id()},
      {"prompt_id", r.prompt().id()},
      {"line", r.prompt().line()},
      {"sample", r.task().sample()},
      {"messages", std::move(messages)},
      {"metadata", Metadata(r.prompt())},
      {"state", r.task().state() == v1::TASK_STATE_DONE ? "done" : "failed"},
      {"content", a.content()},
      {"reasoning", a.reasoning()},
      {"reasoning_blocks", ReasoningBlocks(a)},
      {"finish_reason", a.finish_reason()},
      {"teacher", a.teacher()},
      {"model", a.model()},
      {"params", std::move(params)},
      {"usage",
       {{"prompt_tokens", a.usage().prompt_tokens()},
        {"completion_tokens", a.usage().completion_tokens()},
        {"reasoning_tokens", a.usage().reasoning_tokens()},
        {"cached_tokens", a.usage().cached_tokens()}}},
      {"cost_usd", a.cost_usd()},
      {"provider_id", a.provider_id()},
      {"received_ms", a.received_ms()},
      {"latency_ms", a.latency_ms()},
      {"worker", a.worker()},
      {"request_key", HexKey(r.task().request_key())},
      {"from_cache", r.task().from_cache()},
      {"duplicate_of",
       a.duplicate_of().empty() ? json(nullptr) : json(HexKey(a.duplicate_of()))},
      {"near_duplicate_of", a.near_duplicate_of().empty()
                                ? json(nullptr)
                                : json(HexKey(a.near_duplicate_of()))},
      {"attempts", r.task().attempts()},
      {"error", r.task().last_error()},
  };
  return line;
}

json ErrorLine(const v1::ExportRecord& r) {
  json messages = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  return {
      {"job_id", r.job_id()},
      {"prompt_id", r.prompt().id()},
      {"line", r.prompt().line()},
      {"sample", r.task().sample()},
      {"attempts", r.task().attempts()},
      {"error", r.task().last_error()},
      {"request_key", HexKey(r.task().request_key())},
      {"messages", std::move(messages)},
      {"metadata", Metadata(r.prompt())},
  };
}

}  // namespace

absl::StatusOr<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "openai") return ExportFormat::kOpenAi;
  if (name == "sharegpt") return ExportFormat::kShareGpt;
  if (name == "raw") return ExportFormat::kRaw;
  if (name == "errors") return ExportFormat::kErrors;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown export format '", std::string(name),
                   "'; use openai, sharegpt, raw or errors"));
}

absl::StatusOr<ReasoningLayout> ParseReasoningLayout(std::string_view name) {
  if (name == "field") return ReasoningLayout::kField;
  if (name == "think-tags") return ReasoningLayout::kThinkTags;
  if (name == "drop") return ReasoningLayout::kDrop;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reasoning layout '", std::string(name),
                   "'; use field, think-tags or drop"));
}

std::string AssistantText(const v1::Answer& answer, ReasoningLayout layout) {
  if (layout != ReasoningLayout::kThinkTags || answer.reasoning().empty()) {
    return answer.content();
  }
  return absl::StrCat("<think>\n", answer.reasoning(), "\n</think>\n",
                      answer.content());
}

std::string FormatRecord(const v1::ExportRecord& record, ExportFormat format,
                         ReasoningLayout layout) {
  switch (format) {
    case ExportFormat::kOpenAi:
      return Dump(OpenAiLine(record, layout));
    case ExportFormat::kShareGpt:
      return Dump(ShareGptLine(record, layout));
    case ExportFormat::kRaw:
      return Dump(RawLine(record));
    case ExportFormat::kErrors:
      return Dump(ErrorLine(record));
  }
  return "";
}

}  // namespace distillery
