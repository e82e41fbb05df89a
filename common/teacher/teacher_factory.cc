#include "common/teacher/teacher_factory.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/teacher/anthropic_messages_format.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/openai_chat_format.h"

namespace distillery {

absl::StatusOr<std::shared_ptr<const WireFormat>> MakeWireFormat(
    const TeacherProfile& profile) {
  return MakeWireFormat(profile, profile.stream);
}

absl::StatusOr<std::shared_ptr<const WireFormat>> MakeWireFormat(
    const TeacherProfile& profile, bool stream) {
  if (profile.api == "openai") {
    ChatBodyOptions options;
    options.max_tokens_field = profile.max_tokens_field;
    options.default_max_tokens = profile.default_max_tokens;
    options.stream = stream;
    options.response_format_json = profile.response_format_json;
    return std::make_shared<const OpenAiChatFormat>(std::move(options));
  }
  if (profile.api == "anthropic") {
    AnthropicMessagesOptions options;
    options.anthropic_version = profile.anthropic_version;
    // 0 in a profile means "the API's default"; Anthropic requires a limit.
    if (profile.default_max_tokens > 0) {
      options.body.default_max_tokens = profile.default_max_tokens;
    }
    options.body.thinking_budget_tokens = profile.thinking_budget_tokens;
    options.body.stream = stream;
    return std::make_shared<const AnthropicMessagesFormat>(std::move(options));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("teacher '", profile.name, "': api '", profile.api,
                   "' is not one of: openai, anthropic"));
}

HttpTeacherOptions HttpTeacherOptionsFor(const TeacherProfile& profile,
                                         std::string api_key) {
  HttpTeacherOptions options;
  options.base_url = profile.base_url;
  options.api_key = std::move(api_key);
  options.connect_timeout =
      std::chrono::milliseconds(profile.connect_timeout_ms);
  options.idle_timeout = std::chrono::milliseconds(profile.idle_timeout_ms);
  options.total_timeout = std::chrono::milliseconds(profile.total_timeout_ms);
  options.max_response_bytes = static_cast<size_t>(profile.max_response_bytes);
  return options;
}

absl::StatusOr<std::unique_ptr<Teacher>> MakeTeacher(
    const TeacherProfile& profile, std::string api_key, HttpClient& http) {
  absl::StatusOr<std::shared_ptr<const WireFormat>> format =
      MakeWireFormat(profile);
  if (!format.ok()) return format.status();
  return std::make_unique<HttpTeacher>(
      http, *std::move(format),
      HttpTeacherOptionsFor(profile, std::move(api_key)));
}

absl::StatusOr<std::unique_ptr<BatchApi>> MakeBatchApi(
    const TeacherProfile& profile, std::string api_key, HttpClient& http) {
  const bool openai = profile.api == "openai";
  if (openai && profile.variant != "openai" && profile.variant != "sim") {
    return absl::InvalidArgumentError(
        absl::StrCat("teacher '", profile.name, "': variant '",
                     profile.variant, "' has no batch API"));
  }
  absl::StatusOr<std::shared_ptr<const WireFormat>> format =
      MakeWireFormat(profile, /*stream=*/false);
  if (!format.ok()) return format.status();
  HttpTeacherOptions options =
      HttpTeacherOptionsFor(profile, std::move(api_key));
  absl::Status valid = ValidateHttpTeacherOptions(options);
  if (valid.ok()) valid = (*format)->Validate();
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "teacher '", profile.name, "': ", valid.message()));
  }
  if (openai) {
    return std::make_unique<OpenAiBatchApi>(http, *std::move(format),
                                            std::move(options));
  }
  return std::make_unique<AnthropicBatchApi>(http, *std::move(format),
                                             std::move(options));
}

absl::StatusOr<std::unique_ptr<Teacher>> MakeTeacherWithKey(
    const TeacherProfile& profile, HttpClient& http) {
  absl::StatusOr<std::string> key = ResolveApiKey(profile);
  if (!key.ok()) return key.status();
  return MakeTeacher(profile, *std::move(key), http);
}

}  // namespace distillery
