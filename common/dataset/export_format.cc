#include "common/dataset/export_format.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/json_depth.h"
#include "common/base/status_macros.h"
#include "common/base/json_string.h"
#include "common/dedup/keys.h"
#include "common/teacher/logprobs_codec.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace distillery {
namespace {

// The lines are written straight into the output string: building an
// nlohmann tree per record (a copy of every string, a node per value) and
// dumping it cost several microseconds a record, and export runs on the
// coordinator's cores. The bytes are exactly those the tree's
// dump(-1, ' ', false, error_handler_t::replace) wrote, so files from before
// and after are interchangeable: AppendJsonString escapes as nlohmann does,
// keys come in the order the tree kept them (ordered_json), and the few
// values that are JSON text (metadata, reasoning blocks) or doubles still go
// through nlohmann (metadata in the usual case is only copied: see
// CanonicalJsonCopier). export_format_reference_test.cc holds the tree-building
// code and compares the two.
using json = nlohmann::ordered_json;

// Stored text is valid UTF-8 (prompts are checked on submit, answers come
// from JSON), but replace rather than throw if that ever breaks.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Appends `key` (a literal that needs no escaping) with its quotes and colon.
void AppendKey(std::string_view key, std::string* out) {
  out->push_back('"');
  out->append(key);
  out->append("\":", 2);
}

void AppendInt(int64_t value, std::string* out) { absl::StrAppend(out, value); }

void AppendBool(bool value, std::string* out) {
  out->append(value ? "true" : "false");
}

// nlohmann's shortest round-trip form ("0.5", "1.0", "1e-05"; null when not
// finite), which no standard formatter reproduces.
void AppendDouble(double value, std::string* out) {
  out->append(Dump(json(value)));
}

// Copies JSON text that nlohmann would parse and dump back unchanged but for
// its insignificant whitespace, dropping that whitespace: the common case of
// metadata, for which parsing into a tree costs more than the rest of the
// line. It accepts only what it can vouch for, and gives up (returns false,
// leaving *out extended with junk for the caller to cut) on anything else:
//   - whitespace is what nlohmann skips (space, \t, \n, \r), no BOM;
//   - strings have no backslash escape, and AppendJsonEscaped leaves them as
//     they are (no control byte, valid UTF-8), so the dump writes them back
//     verbatim, and an object's keys compare as their raw bytes;
//   - objects have no repeated key (ordered_json keeps the first place and
//     the last value);
//   - numbers are integers of at most 18 digits, not -0: they fit int64 and
//     uint64, and nlohmann writes the same digits back (no float form);
//   - literals are true, false, null; nesting is at most kMaxDepth deep.
class CanonicalJsonCopier {
 public:
  CanonicalJsonCopier(std::string_view text, std::string* out)
      : text_(text), out_(out) {}

  // Copies the whole text; false if it is not one value in the accepted form.
  bool Copy() {
    if (!Value(0)) return false;
    SkipWhitespace();
    return i_ == text_.size();
  }

 private:
  static constexpr int kMaxDepth = 32;
  static constexpr size_t kMaxDigits = 18;

  void SkipWhitespace() {
    while (i_ < text_.size() && (text_[i_] == ' ' || text_[i_] == '\t' ||
                                 text_[i_] == '\n' || text_[i_] == '\r')) {
      ++i_;
    }
  }

  // Consumes `c` after optional whitespace.
  bool Expect(char c) {
    SkipWhitespace();
    if (i_ == text_.size() || text_[i_] != c) return false;
    ++i_;
    return true;
  }

  bool Value(int depth) {
    SkipWhitespace();
    if (i_ == text_.size() || depth > kMaxDepth) return false;
    switch (text_[i_]) {
      case '{':
        return Object(depth);
      case '[':
        return Array(depth);
      case '"':
        return String(nullptr);
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Integer();
    }
  }

  bool Object(int depth) {
    ++i_;
    out_->push_back('{');
    SkipWhitespace();
    if (i_ < text_.size() && text_[i_] == '}') {
      ++i_;
      out_->push_back('}');
      return true;
    }
    std::vector<std::string_view> keys;
    while (true) {
      SkipWhitespace();
      std::string_view key;
      if (i_ == text_.size() || text_[i_] != '"' || !String(&key)) return false;
      for (std::string_view seen : keys) {
        if (seen == key) return false;
      }
      keys.push_back(key);
      if (!Expect(':')) return false;
      out_->push_back(':');
      if (!Value(depth + 1)) return false;
      SkipWhitespace();
      if (i_ == text_.size()) return false;
      const char c = text_[i_++];
      out_->push_back(c);
      if (c == '}') return true;
      if (c != ',') return false;
    }
  }

  bool Array(int depth) {
    ++i_;
    out_->push_back('[');
    SkipWhitespace();
    if (i_ < text_.size() && text_[i_] == ']') {
      ++i_;
      out_->push_back(']');
      return true;
    }
    while (true) {
      if (!Value(depth + 1)) return false;
      SkipWhitespace();
      if (i_ == text_.size()) return false;
      const char c = text_[i_++];
      out_->push_back(c);
      if (c == ']') return true;
      if (c != ',') return false;
    }
  }

  // At a '"'. Sets *body (if given) to the bytes between the quotes.
  bool String(std::string_view* body) {
    const size_t start = i_ + 1;
    const size_t end = text_.find('"', start);
    if (end == std::string_view::npos) return false;
    const std::string_view inside = text_.substr(start, end - start);
    if (inside.find('\\') != std::string_view::npos) return false;
    out_->push_back('"');
    const size_t mark = out_->size();
    AppendJsonEscaped(inside, out_);
    if (std::string_view(*out_).substr(mark) != inside) return false;
    out_->push_back('"');
    if (body != nullptr) *body = inside;
    i_ = end + 1;
    return true;
  }

  bool Literal(std::string_view word) {
    if (text_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    out_->append(word);
    return true;
  }

  bool Integer() {
    const size_t start = i_;
    if (text_[i_] == '-') ++i_;
    const size_t digits_start = i_;
    while (i_ < text_.size() && text_[i_] >= '0' && text_[i_] <= '9') ++i_;
    const size_t digits = i_ - digits_start;
    if (digits == 0 || digits > kMaxDigits) return false;
    if (text_[digits_start] == '0' && (digits > 1 || digits_start > start)) {
      return false;  // a leading zero, or -0
    }
    if (i_ < text_.size() &&
        (text_[i_] == '.' || text_[i_] == 'e' || text_[i_] == 'E')) {
      return false;
    }
    out_->append(text_.substr(start, i_ - start));
    return true;
  }

  const std::string_view text_;
  std::string* const out_;
  size_t i_ = 0;
};

// The JSON text `text` (the metadata, the reasoning blocks) as the tree held
// it: nlohmann's parse and dump ("<discarded>" when it does not parse).
// Returns whether it parsed to anything but null. The caller has checked
// that `text` nests no deeper than kMaxJsonDepth: dump() recurses a level at
// a time.
bool AppendJsonText(std::string_view text, std::string* out) {
  const size_t mark = out->size();
  if (CanonicalJsonCopier(text, out).Copy()) {
    return std::string_view(*out).substr(mark) != "null";
  }
  out->resize(mark);
  const json value = json::parse(text.begin(), text.end(), nullptr,
                                 /*allow_exceptions=*/false);
  out->append(Dump(value));
  return !value.is_null();
}

// The prompt's metadata as AppendJsonText writes it; null when there is
// none, or when it nests deeper than kMaxJsonDepth. Submission refuses such
// metadata, but a job stored before it did may hold some: its records are
// still exported (the answers were paid for), without the metadata, and the
// line is named on stderr. Returns whether it wrote anything but null.
bool AppendMetadataValue(const v1::Prompt& prompt, std::string* out) {
  if (prompt.metadata_json().empty()) {
    out->append("null");
    return false;
  }
  if (absl::Status s = CheckJsonDepth(prompt.metadata_json()); !s.ok()) {
    spdlog::warn("line {}: metadata not exported: {}", prompt.line(),
                 std::string(s.message()));
    out->append("null");
    return false;
  }
  return AppendJsonText(prompt.metadata_json(), out);
}

void AppendMetadata(const v1::Prompt& prompt, std::string* out) {
  AppendMetadataValue(prompt, out);
}

// ,"metadata":... unless the metadata is empty or null (openai, sharegpt).
void AppendOptionalMetadata(const v1::Prompt& prompt, std::string* out) {
  if (prompt.metadata_json().empty()) return;
  const size_t mark = out->size();
  out->append(",\"metadata\":");
  if (!AppendMetadataValue(prompt, out)) out->resize(mark);
}

// Stored JSON text (tool calls, tools) re-written compactly; null when it
// is somehow not JSON or nests too deep (the export must not fail).
void AppendStoredJson(const std::string& text, std::string* out) {
  if (text.empty() || !CheckJsonDepth(text).ok()) {
    out->append("null");
    return;
  }
  const json value = json::parse(text, nullptr, false);
  out->append(value.is_discarded() ? "null" : Dump(value));
}

// ,"tool_calls":[...] (an assistant turn's calls) and ,"tool_call_id":..
// (a tool turn's), OpenAI's fine-tuning form, when the turn has them.
void AppendToolFields(const v1::ChatMessage& m, std::string* out) {
  if (!m.tool_calls_json().empty()) {
    out->append(",\"tool_calls\":");
    AppendStoredJson(m.tool_calls_json(), out);
  }
  if (!m.tool_call_id().empty()) {
    out->append(",\"tool_call_id\":");
    AppendJsonString(m.tool_call_id(), out);
  }
}

// A turn's content: its text, or null for an assistant turn that only
// calls tools.
void AppendTurnContent(const std::string& content, bool calls_tools,
                       std::string* out) {
  if (calls_tools && content.empty()) {
    out->append("null");
  } else {
    AppendJsonString(content, out);
  }
}

// [{"role":..,"content":..},...] without the closing bracket, so the openai
// line can add the assistant turn.
void AppendOpenMessages(const v1::Prompt& prompt, std::string* out) {
  out->push_back('[');
  bool first = true;
  for (const v1::ChatMessage& m : prompt.messages()) {
    if (!first) out->push_back(',');
    first = false;
    out->append("{\"role\":");
    AppendJsonString(m.role(), out);
    out->append(",\"content\":");
    AppendTurnContent(m.content(), !m.tool_calls_json().empty(), out);
    AppendToolFields(m, out);
    out->push_back('}');
  }
}

// AssistantText as a JSON string, without building it. Escaping its pieces
// one by one gives the same bytes as escaping the whole: the pieces the
// layout adds begin and end with ASCII, and an incomplete UTF-8 sequence
// before an ASCII byte becomes one U+FFFD whether the text ends there or not.
void AppendAssistantText(const v1::Answer& answer, ReasoningLayout layout,
                         std::string* out) {
  out->push_back('"');
  if (layout == ReasoningLayout::kThinkTags && !answer.reasoning().empty()) {
    out->append("<think>\\n");
    AppendJsonEscaped(answer.reasoning(), out);
    out->append("\\n</think>\\n");
  }
  AppendJsonEscaped(answer.content(), out);
  out->push_back('"');
}

// ,"reasoning":.. in the reasoning field layout when there is any.
void AppendReasoningField(const v1::Answer& answer, ReasoningLayout layout,
                          std::string* out) {
  if (layout == ReasoningLayout::kField && !answer.reasoning().empty()) {
    out->append(",\"reasoning\":");
    AppendJsonString(answer.reasoning(), out);
  }
}

// {"messages":[...,{"role":"assistant","content":..}]} with, for `chat`, the
// reasoning under `reasoning_key` (field layout) and the metadata. `openai`
// is exactly what OpenAI's fine-tuning upload accepts: no other keys.
void AppendMessagesLine(const v1::ExportRecord& r, ReasoningLayout layout,
                        std::string_view reasoning_key, bool chat,
                        std::string* out) {
  out->append("{\"messages\":");
  AppendOpenMessages(r.prompt(), out);
  if (r.prompt().messages_size() > 0) out->push_back(',');
  out->append("{\"role\":\"assistant\",\"content\":");
  const v1::Answer& a = r.answer();
  if (!a.tool_calls_json().empty() && a.content().empty() &&
      (layout != ReasoningLayout::kThinkTags || a.reasoning().empty())) {
    out->append("null");
  } else {
    AppendAssistantText(a, layout, out);
  }
  if (!a.tool_calls_json().empty()) {
    out->append(",\"tool_calls\":");
    AppendStoredJson(a.tool_calls_json(), out);
  }
  if (chat && layout == ReasoningLayout::kField && !a.reasoning().empty()) {
    out->push_back(',');
    AppendJsonString(reasoning_key, out);
    out->push_back(':');
    AppendJsonString(a.reasoning(), out);
  }
  out->append("}]");
  // The line's tools at the top level, as OpenAI's fine-tuning reads them.
  if (!r.prompt().tools_json().empty()) {
    out->append(",\"tools\":");
    AppendStoredJson(r.prompt().tools_json(), out);
  }
  if (chat) AppendOptionalMetadata(r.prompt(), out);
  out->push_back('}');
}

// ShareGPT's function_call value, as LLaMA-Factory reads it: JSON text of
// {"name","arguments":{...}} for one call, a list of them for several.
std::string ShareGptFunctionCall(const std::string& tool_calls_json) {
  if (!CheckJsonDepth(tool_calls_json).ok()) return "[]";
  const json calls = json::parse(tool_calls_json, nullptr, false);
  if (!calls.is_array()) return "[]";
  json out = json::array();
  for (const json& call : calls) {
    if (!call.is_object()) continue;
    const json function = call.value("function", json::object());
    json arguments = json::parse(function.value("arguments", std::string("{}")),
                                 nullptr, false);
    if (arguments.is_discarded()) arguments = json::object();
    out.push_back({{"name", function.value("name", std::string())},
                   {"arguments", std::move(arguments)}});
  }
  return Dump(out.size() == 1 ? out[0] : out);
}

// ShareGPT's "tools" value: JSON text of the function definitions, without
// OpenAI's {"type":"function"} wrapper.
std::string ShareGptTools(const std::string& tools_json) {
  if (!CheckJsonDepth(tools_json).ok()) return "[]";
  const json tools = json::parse(tools_json, nullptr, false);
  if (!tools.is_array()) return "[]";
  json out = json::array();
  for (const json& tool : tools) {
    if (tool.is_object() && tool.contains("function")) {
      out.push_back(tool["function"]);
    }
  }
  return Dump(out);
}

void AppendShareGptTurn(const char* from, const std::string& value,
                        std::string* out) {
  out->append("{\"from\":\"");
  out->append(from);
  out->append("\",\"value\":");
  AppendJsonString(value, out);
  out->push_back('}');
}

// Tool use goes as LLaMA-Factory reads it: an assistant turn's calls as a
// function_call turn (its text, if any, left out: the turns must alternate),
// tool results as one observation turn (several results of parallel calls:
// a JSON list of their texts), and the line's tools as JSON text.
void AppendShareGptLine(const v1::ExportRecord& r, ReasoningLayout layout,
                        std::string* out) {
  out->append("{\"conversations\":[");
  const auto& messages = r.prompt().messages();
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    if (m.role() == "tool") {
      std::vector<std::string> results = {m.content()};
      while (i + 1 < messages.size() && messages[i + 1].role() == "tool") {
        results.push_back(messages[++i].content());
      }
      AppendShareGptTurn(
          "observation",
          results.size() == 1 ? results[0] : Dump(json(results)), out);
    } else if (!m.tool_calls_json().empty()) {
      AppendShareGptTurn("function_call",
                         ShareGptFunctionCall(m.tool_calls_json()), out);
    } else {
      const char* from = m.role() == "system"      ? "system"
                         : m.role() == "assistant" ? "gpt"
                                                   : "human";
      AppendShareGptTurn(from, m.content(), out);
    }
    out->push_back(',');
  }
  if (!r.answer().tool_calls_json().empty()) {
    out->append("{\"from\":\"function_call\",\"value\":");
    AppendJsonString(ShareGptFunctionCall(r.answer().tool_calls_json()), out);
  } else {
    out->append("{\"from\":\"gpt\",\"value\":");
    AppendAssistantText(r.answer(), layout, out);
  }
  AppendReasoningField(r.answer(), layout, out);
  out->append("}]");
  if (!r.prompt().tools_json().empty()) {
    out->append(",\"tools\":");
    AppendJsonString(ShareGptTools(r.prompt().tools_json()), out);
  }
  AppendOptionalMetadata(r.prompt(), out);
  out->push_back('}');
}

// "tokens":[...],"logprobs":[...],"top_logprobs":[[[token,logprob],...],...]
// from an answer's stored logprobs (empty lists when it has none; a warning
// when they cannot be read).
void AppendLogprobArrays(const v1::ExportRecord& r, std::string* out) {
  std::vector<TokenLogprob> tokens;
  if (!r.answer().logprobs().empty()) {
    absl::StatusOr<std::vector<TokenLogprob>> decoded =
        DecodeLogprobs(r.answer().logprobs());
    if (decoded.ok()) {
      tokens = *std::move(decoded);
    } else {
      spdlog::warn("line {} sample {}: {}", r.prompt().line(), r.task().sample(),
                   std::string(decoded.status().message()));
    }
  }
  out->append("\"tokens\":[");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(tokens[i].token, out);
  }
  out->append("],\"logprobs\":[");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendDouble(tokens[i].logprob, out);
  }
  out->append("],\"top_logprobs\":[");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->push_back('[');
    for (size_t j = 0; j < tokens[i].top.size(); ++j) {
      if (j > 0) out->push_back(',');
      out->push_back('[');
      AppendJsonString(tokens[i].top[j].first, out);
      out->push_back(',');
      AppendDouble(tokens[i].top[j].second, out);
      out->push_back(']');
    }
    out->push_back(']');
  }
  out->push_back(']');
}

// {"messages":[..., assistant],"tokens":..,"logprobs":..,"top_logprobs":..}:
// what a logit-distillation run (DistillKit, EasyDistill) reads.
void AppendLogprobsLine(const v1::ExportRecord& r, std::string* out) {
  out->append("{\"messages\":");
  AppendOpenMessages(r.prompt(), out);
  if (r.prompt().messages_size() > 0) out->push_back(',');
  out->append("{\"role\":\"assistant\",\"content\":");
  AppendJsonString(r.answer().content(), out);
  out->append("}],");
  AppendLogprobArrays(r, out);
  out->push_back('}');
}

void AppendMessages(const v1::Prompt& prompt, std::string* out) {
  AppendOpenMessages(prompt, out);
  out->push_back(']');
}

// The request key (or a duplicate's) in hex; "" is null.
void AppendOptionalKey(const std::string& key, std::string* out) {
  if (key.empty()) {
    out->append("null");
  } else {
    AppendJsonString(HexKey(key), out);
  }
}

// The stored thinking blocks as a JSON array (null when there are none, or
// when what was stored is somehow not JSON or nests too deep to re-write:
// the export must not fail).
void AppendReasoningBlocks(const v1::Answer& a, std::string* out) {
  if (a.reasoning_blocks().empty() ||
      !CheckJsonDepth(a.reasoning_blocks()).ok()) {
    out->append("null");
    return;
  }
  const json blocks = json::parse(a.reasoning_blocks(), nullptr, false);
  out->append(blocks.is_discarded() ? "null" : Dump(blocks));
}

void AppendParams(const v1::SamplingParams& p, std::string* out) {
  out->push_back('{');
  bool first = true;
  const auto key = [&](std::string_view name) {
    if (!first) out->push_back(',');
    first = false;
    AppendKey(name, out);
  };
  if (p.max_tokens() > 0) {
    key("max_tokens");
    AppendInt(p.max_tokens(), out);
  }
  if (p.has_temperature()) {
    key("temperature");
    AppendDouble(p.temperature(), out);
  }
  if (p.has_top_p()) {
    key("top_p");
    AppendDouble(p.top_p(), out);
  }
  if (p.has_seed()) {
    key("seed");
    AppendInt(p.seed(), out);
  }
  if (p.stop_size() > 0) {
    key("stop");
    out->push_back('[');
    for (int i = 0; i < p.stop_size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(p.stop(i), out);
    }
    out->push_back(']');
  }
  if (p.top_logprobs() > 0) {
    key("top_logprobs");
    AppendInt(p.top_logprobs(), out);
  }
  out->push_back('}');
}

void AppendRawLine(const v1::ExportRecord& r, std::string* out) {
  const v1::Answer& a = r.answer();
  const v1::Task& t = r.task();
  out->append("{\"job_id\":");
  AppendJsonString(r.job_id(), out);
  out->append(",\"prompt_id\":");
  AppendJsonString(r.prompt().id(), out);
  out->append(",\"line\":");
  AppendInt(r.prompt().line(), out);
  out->append(",\"sample\":");
  AppendInt(t.sample(), out);
  out->append(",\"messages\":");
  AppendMessages(r.prompt(), out);
  out->append(",\"metadata\":");
  AppendMetadata(r.prompt(), out);
  out->append(",\"state\":");
  out->append(t.state() == v1::TASK_STATE_DONE ? "\"done\"" : "\"failed\"");
  out->append(",\"content\":");
  AppendJsonString(a.content(), out);
  out->append(",\"reasoning\":");
  AppendJsonString(a.reasoning(), out);
  out->append(",\"reasoning_blocks\":");
  AppendReasoningBlocks(a, out);
  out->append(",\"finish_reason\":");
  AppendJsonString(a.finish_reason(), out);
  out->append(",\"teacher\":");
  AppendJsonString(a.teacher(), out);
  out->append(",\"model\":");
  AppendJsonString(a.model(), out);
  out->append(",\"params\":");
  AppendParams(a.params(), out);
  out->append(",\"usage\":{\"prompt_tokens\":");
  AppendInt(a.usage().prompt_tokens(), out);
  out->append(",\"completion_tokens\":");
  AppendInt(a.usage().completion_tokens(), out);
  out->append(",\"reasoning_tokens\":");
  AppendInt(a.usage().reasoning_tokens(), out);
  out->append(",\"cached_tokens\":");
  AppendInt(a.usage().cached_tokens(), out);
  out->append("},\"cost_usd\":");
  AppendDouble(a.cost_usd(), out);
  out->append(",\"provider_id\":");
  AppendJsonString(a.provider_id(), out);
  out->append(",\"received_ms\":");
  AppendInt(a.received_ms(), out);
  out->append(",\"latency_ms\":");
  AppendInt(a.latency_ms(), out);
  out->append(",\"worker\":");
  AppendJsonString(a.worker(), out);
  out->append(",\"request_key\":");
  AppendJsonString(HexKey(t.request_key()), out);
  out->append(",\"from_cache\":");
  AppendBool(t.from_cache(), out);
  out->append(",\"duplicate_of\":");
  AppendOptionalKey(a.duplicate_of(), out);
  out->append(",\"near_duplicate_of\":");
  AppendOptionalKey(a.near_duplicate_of(), out);
  out->append(",\"attempts\":");
  AppendInt(t.attempts(), out);
  out->append(",\"error\":");
  AppendJsonString(t.last_error(), out);
  // --verify: true, false, or null (not checked, or no reference).
  out->append(",\"verified\":");
  out->append(t.verify_state() == v1::VERIFY_STATE_VERIFIED   ? "true"
              : t.verify_state() == v1::VERIFY_STATE_REJECTED ? "false"
                                                              : "null");
  out->append(",\"extracted_answer\":");
  if (t.verify_state() == v1::VERIFY_STATE_UNCHECKED) {
    out->append("null");
  } else {
    AppendJsonString(t.extracted_answer(), out);
  }
  // Tool use and logprobs only when the record has them: a record of a job
  // without them is as it always was.
  if (!r.prompt().tools_json().empty()) {
    out->append(",\"tools\":");
    AppendStoredJson(r.prompt().tools_json(), out);
  }
  if (!a.tool_calls_json().empty()) {
    out->append(",\"tool_calls\":");
    AppendStoredJson(a.tool_calls_json(), out);
  }
  if (!a.logprobs().empty()) {
    out->append(",\"logprobs\":{");
    AppendLogprobArrays(r, out);
    out->push_back('}');
  }
  if (a.choice_index() > 0) {
    out->append(",\"choice_index\":");
    AppendInt(a.choice_index(), out);
  }
  if (r.has_contamination()) {
    out->append(",\"contamination\":{\"benchmark_line\":");
    AppendInt(r.contamination().benchmark_line(), out);
    out->append(",\"ngram\":");
    AppendJsonString(r.contamination().ngram(), out);
    out->push_back('}');
  }
  out->push_back('}');
}

void AppendErrorLine(const v1::ExportRecord& r, std::string* out) {
  const v1::Task& t = r.task();
  out->append("{\"job_id\":");
  AppendJsonString(r.job_id(), out);
  out->append(",\"prompt_id\":");
  AppendJsonString(r.prompt().id(), out);
  out->append(",\"line\":");
  AppendInt(r.prompt().line(), out);
  out->append(",\"sample\":");
  AppendInt(t.sample(), out);
  out->append(",\"attempts\":");
  AppendInt(t.attempts(), out);
  out->append(",\"error\":");
  AppendJsonString(t.last_error(), out);
  out->append(",\"request_key\":");
  AppendJsonString(HexKey(t.request_key()), out);
  out->append(",\"messages\":");
  AppendMessages(r.prompt(), out);
  out->append(",\"metadata\":");
  AppendMetadata(r.prompt(), out);
  out->push_back('}');
}

// A guess at the line's length, so it is allocated once: the text, plus a
// little for keys and escapes.
size_t LineSizeHint(const v1::ExportRecord& r) {
  size_t size = 64 + r.prompt().metadata_json().size() +
                r.answer().content().size() + 2 * r.answer().reasoning().size();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    size += 32 + m.role().size() + m.content().size();
  }
  return size + size / 16;
}

}  // namespace

absl::StatusOr<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "openai") return ExportFormat::kOpenAi;
  if (name == "chat") return ExportFormat::kChat;
  if (name == "sharegpt") return ExportFormat::kShareGpt;
  if (name == "raw") return ExportFormat::kRaw;
  if (name == "errors") return ExportFormat::kErrors;
  if (name == "logprobs") return ExportFormat::kLogprobs;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown export format '", std::string(name),
                   "'; use openai, chat, sharegpt, raw, logprobs or errors"));
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

void AppendRecord(const v1::ExportRecord& record, ExportFormat format,
                  ReasoningLayout layout, std::string_view reasoning_key,
                  std::string* out) {
  out->reserve(out->size() + LineSizeHint(record));
  switch (format) {
    case ExportFormat::kOpenAi:
    case ExportFormat::kChat:
      AppendMessagesLine(record, layout, reasoning_key,
                         format == ExportFormat::kChat, out);
      return;
    case ExportFormat::kShareGpt:
      AppendShareGptLine(record, layout, out);
      return;
    case ExportFormat::kRaw:
      AppendRawLine(record, out);
      return;
    case ExportFormat::kErrors:
      AppendErrorLine(record, out);
      return;
    case ExportFormat::kLogprobs:
      AppendLogprobsLine(record, out);
      return;
  }
}

void AppendRecord(const v1::ExportRecord& record, const RecordLayout& layout,
                  std::string* out) {
  AppendRecord(record, layout.format, layout.reasoning, layout.reasoning_key,
               out);
}

void AppendRecord(const v1::ExportRecord& record, ExportFormat format,
                  ReasoningLayout layout, std::string* out) {
  AppendRecord(record, format, layout, kDefaultReasoningKey, out);
}

std::string FormatRecord(const v1::ExportRecord& record, ExportFormat format,
                         ReasoningLayout layout,
                         std::string_view reasoning_key) {
  std::string line;
  AppendRecord(record, format, layout, reasoning_key, &line);
  return line;
}

absl::StatusOr<RecordLayout> ParseRecordLayout(std::string_view format,
                                               std::string_view reasoning,
                                               std::string_view reasoning_key) {
  RecordLayout layout;
  ASSIGN_OR_RETURN(layout.format, ParseExportFormat(format));
  if (reasoning.empty()) {
    // OpenAI's fine-tuning format has no key for a trace.
    layout.reasoning = layout.format == ExportFormat::kOpenAi
                           ? ReasoningLayout::kDrop
                           : ReasoningLayout::kField;
  } else {
    ASSIGN_OR_RETURN(layout.reasoning, ParseReasoningLayout(reasoning));
  }
  if (layout.format == ExportFormat::kOpenAi &&
      layout.reasoning == ReasoningLayout::kField) {
    return absl::InvalidArgumentError(
        "--reasoning field: OpenAI's fine-tuning format has no key for a "
        "reasoning trace; use --reasoning think-tags (inline) or drop, or "
        "--format chat (the trace under --reasoning-key)");
  }
  if (reasoning_key.empty()) reasoning_key = kDefaultReasoningKey;
  const bool word = std::all_of(reasoning_key.begin(), reasoning_key.end(),
                                [](char c) {
                                  return (c >= 'a' && c <= 'z') ||
                                         (c >= 'A' && c <= 'Z') ||
                                         (c >= '0' && c <= '9') || c == '_';
                                });
  if (!word || reasoning_key.size() > 64 || reasoning_key == "role" ||
      reasoning_key == "content") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--reasoning-key '", std::string(reasoning_key),
        "': use a key of letters, digits and '_' other than role and content "
        "(e.g. reasoning_content, thinking)"));
  }
  layout.reasoning_key = std::string(reasoning_key);
  return layout;
}

}  // namespace distillery
