#include "common/dataset/export_filter.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/json_depth.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

absl::Status CheckBounds(const char* name, int64_t min, int64_t max) {
  if (min < 0 || max < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("export: ", name, " bounds must not be negative"));
  }
  if (max > 0 && min > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export: min ", name, " (", min, ") is above max ", name, " (", max,
        ")"));
  }
  return absl::OkStatus();
}

bool InBounds(int64_t v, int64_t min, int64_t max) {
  return v >= min && (max == 0 || v <= max);
}

}  // namespace

const std::vector<std::string>& KnownFinishReasons() {
  // OpenAI and OpenAI-compatible servers (vLLM's "abort"), DeepSeek's
  // "insufficient_system_resource", then Anthropic's stop_reason values.
  static const std::vector<std::string> kReasons = {
      "stop",        "length",        "content_filter",
      "tool_calls",  "function_call", "abort",
      "insufficient_system_resource", "end_turn",      "max_tokens",
      "stop_sequence", "tool_use",    "pause_turn",    "refusal"};
  return kReasons;
}

absl::StatusOr<ExportFilter> ExportFilter::Create(
    const v1::ExportRequest& request) {
  const std::vector<std::string>& known = KnownFinishReasons();
  for (const std::string& r : request.finish_reasons()) {
    if (std::find(known.begin(), known.end(), r) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--finish-reason: no teacher reports '", r, "'; known: ",
          absl::StrJoin(known, ", "), "; 'any' keeps every answer"));
    }
  }
  if (absl::Status s =
          CheckBounds("chars", request.min_chars(), request.max_chars());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckBounds("tokens", request.min_tokens(), request.max_tokens());
      !s.ok()) {
    return s;
  }
  if (!(request.near_dup_threshold() >= 0 &&
        request.near_dup_threshold() <= 1)) {
    return absl::InvalidArgumentError(
        "export: near-duplicate threshold must be in [0, 1]");
  }
  for (const auto& [name, has, value] :
       {std::tuple{"--min-pass-rate", request.has_min_pass_rate(),
                   request.min_pass_rate()},
        std::tuple{"--max-pass-rate", request.has_max_pass_rate(),
                   request.max_pass_rate()}}) {
    if (has && !(value >= 0 && value <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be in [0, 1], got ", value));
    }
  }
  if (request.has_min_pass_rate() && request.has_max_pass_rate() &&
      request.min_pass_rate() > request.max_pass_rate()) {
    return absl::InvalidArgumentError(
        "--min-pass-rate is above --max-pass-rate: nothing would be kept");
  }
  if (request.failed_only() &&
      (request.verified_only() || request.has_min_pass_rate() ||
       request.has_max_pass_rate())) {
    return absl::InvalidArgumentError(
        "--verified-only and the pass-rate filters keep answers; dead "
        "letters (--failed-only) have none");
  }
  ExportFilter f;
  f.finish_reasons_.assign(request.finish_reasons().begin(),
                           request.finish_reasons().end());
  f.teachers_.assign(request.teachers().begin(), request.teachers().end());
  f.models_.assign(request.models().begin(), request.models().end());
  f.min_chars_ = request.min_chars();
  f.max_chars_ = request.max_chars();
  f.min_tokens_ = request.min_tokens();
  f.max_tokens_ = request.max_tokens();
  for (const v1::MetadataMatch& m : request.metadata()) {
    if (m.key().empty()) {
      return absl::InvalidArgumentError("export: empty metadata key");
    }
    f.metadata_.emplace_back(m.key(), m.value());
  }
  return f;
}

bool ExportFilter::MatchesJob(const v1::JobSpec& spec) const {
  return (teachers_.empty() || Contains(teachers_, spec.teacher())) &&
         (models_.empty() || Contains(models_, spec.model()));
}

bool ExportFilter::MatchesPrompt(const v1::Prompt& prompt) const {
  if (metadata_.empty()) return true;
  // Metadata too deep to re-write (stored before submission refused it) is
  // not matched: dump() below would recurse through it.
  if (prompt.metadata_json().empty() ||
      !CheckJsonDepth(prompt.metadata_json()).ok()) {
    return false;
  }
  const nlohmann::json meta = nlohmann::json::parse(
      prompt.metadata_json(), nullptr, /*allow_exceptions=*/false);
  if (!meta.is_object()) return false;
  for (const auto& [key, value] : metadata_) {
    auto it = meta.find(key);
    if (it == meta.end()) return false;
    const std::string actual =
        it->is_string() ? it->get<std::string>() : it->dump();
    if (actual != value) return false;
  }
  return true;
}

bool ExportFilter::MatchesAnswer(const v1::Answer& answer) const {
  if (!finish_reasons_.empty() &&
      !Contains(finish_reasons_, answer.finish_reason())) {
    return false;
  }
  if ((min_chars_ > 0 || max_chars_ > 0) &&
      !InBounds(CountChars(answer.content()), min_chars_, max_chars_)) {
    return false;
  }
  if ((min_tokens_ > 0 || max_tokens_ > 0) &&
      !InBounds(AnswerTokens(answer), min_tokens_, max_tokens_)) {
    return false;
  }
  return true;
}

int64_t CountChars(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

int64_t AnswerTokens(const v1::Answer& answer) {
  return std::max<int64_t>(
      0, answer.usage().completion_tokens() - answer.usage().reasoning_tokens());
}

absl::StatusOr<v1::MetadataMatch> ParseMetadataMatch(std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metadata '", std::string(text), "': expected KEY=VALUE"));
  }
  v1::MetadataMatch m;
  m.set_key(std::string(text.substr(0, eq)));
  m.set_value(std::string(text.substr(eq + 1)));
  return m;
}

}  // namespace distillery
