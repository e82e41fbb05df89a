#include "services/worker/teacher_factory.h"

#include <spdlog/spdlog.h>

#include "common/teacher/openai_teacher.h"

namespace distillery {

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
    OpenAiTeacherOptions options;
    options.base_url = profile.base_url;
    options.api_key = std::move(*key);
    options.max_tokens_field = profile.max_tokens_field;
    options.connect_timeout =
        std::chrono::milliseconds(profile.connect_timeout_ms);
    options.idle_timeout = std::chrono::milliseconds(profile.idle_timeout_ms);
    options.total_timeout = std::chrono::milliseconds(profile.total_timeout_ms);
    set.owned.push_back(std::make_unique<OpenAiTeacher>(http, options));
    set.teachers.push_back(WorkerTeacher{profile, set.owned.back().get()});
  }
  return set;
}

}  // namespace distillery
