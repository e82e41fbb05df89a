#include "services/worker/teacher_factory.h"

#include <spdlog/spdlog.h>

#include "common/teacher/anthropic_teacher.h"
#include "common/teacher/openai_teacher.h"

namespace distillery {

std::unique_ptr<Teacher> MakeTeacher(const TeacherProfile& profile,
                                     std::string api_key, HttpClient& http) {
  const auto connect = std::chrono::milliseconds(profile.connect_timeout_ms);
  const auto idle = std::chrono::milliseconds(profile.idle_timeout_ms);
  const auto total = std::chrono::milliseconds(profile.total_timeout_ms);
  if (profile.api == "anthropic") {
    AnthropicTeacherOptions options;
    options.base_url = profile.base_url;
    options.api_key = std::move(api_key);
    options.anthropic_version = profile.anthropic_version;
    if (profile.default_max_tokens > 0) {
      options.body.default_max_tokens = profile.default_max_tokens;
    }
    options.body.thinking_budget_tokens = profile.thinking_budget_tokens;
    options.body.stream = profile.stream;
    options.connect_timeout = connect;
    options.idle_timeout = idle;
    options.total_timeout = total;
    options.max_response_bytes = static_cast<size_t>(profile.max_response_bytes);
    return std::make_unique<AnthropicTeacher>(http, std::move(options));
  }
  OpenAiTeacherOptions options;
  options.base_url = profile.base_url;
  options.api_key = std::move(api_key);
  options.max_tokens_field = profile.max_tokens_field;
  options.default_max_tokens = profile.default_max_tokens;
  options.stream = profile.stream;
  options.response_format_json = profile.response_format_json;
  options.connect_timeout = connect;
  options.idle_timeout = idle;
  options.total_timeout = total;
  options.max_response_bytes = static_cast<size_t>(profile.max_response_bytes);
  return std::make_unique<OpenAiTeacher>(http, std::move(options));
}

WorkerTeacherSet BuildWorkerTeachers(const std::vector<TeacherProfile>& profiles,
                                     HttpClient& http, const std::string& only) {
  WorkerTeacherSet set;
  for (const TeacherProfile& profile : profiles) {
    if (!only.empty() && profile.name != only) continue;
    absl::StatusOr<std::string> key = ResolveApiKey(profile);
    if (!key.ok()) {
      spdlog::warn("skipping teacher '{}': {}", profile.name,
                   std::string(key.status().message()));
      continue;
    }
    set.owned.push_back(MakeTeacher(profile, std::move(*key), http));
    set.teachers.push_back(WorkerTeacher{profile, set.owned.back().get()});
  }
  return set;
}

}  // namespace distillery
