// Teacher profiles: which teacher APIs a cluster may call, where they live,
// how a worker finds its key, and their limits. Read from a YAML file by the
// coordinator and by every worker; API keys are never in the file itself.
#ifndef DISTILLERY_COMMON_CONFIG_TEACHERS_H_
#define DISTILLERY_COMMON_CONFIG_TEACHERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace distillery {

struct TeacherProfile {
  std::string name;
  std::string api = "openai";  // the only wire API so far
  std::string base_url;        // includes the version, e.g. .../v1
  // Where a worker finds the key: an environment variable, or a file (for
  // Docker secrets). Neither set: no key (local servers, the simulator).
  std::string api_key_env;
  std::string api_key_file;
  // "max_completion_tokens" (OpenAI) or "max_tokens" (most compatibles).
  std::string max_tokens_field = "max_completion_tokens";
  // Cluster-wide limits, per limit window (60 s for real APIs; shorter for
  // simulators in tests). -1 (left out of the file): learned from the
  // teacher's headers and 429s; 0: no limit.
  int64_t rpm = -1;
  int64_t tpm = -1;
  int64_t limit_window_s = 60;
  // Concurrent requests, cluster-wide; 0: no limit.
  int max_concurrency = 0;
  int max_attempts = 5;      // per task, counting the first
  int64_t connect_timeout_ms = 10'000;
  int64_t idle_timeout_ms = 120'000;
  int64_t total_timeout_ms = 900'000;
};

// Parses the teachers file. Errors name the file, the profile and the field.
absl::StatusOr<std::vector<TeacherProfile>> LoadTeachersFile(
    const std::string& path);
absl::StatusOr<std::vector<TeacherProfile>> ParseTeachersYaml(
    const std::string& yaml_text, const std::string& origin);

// Finds the profile named `name`, or NOT_FOUND listing the known names.
absl::StatusOr<TeacherProfile> FindTeacher(
    const std::vector<TeacherProfile>& profiles, const std::string& name);

// Reads the profile's API key from its environment variable or file. The
// returned error names where it looked, never a key.
absl::StatusOr<std::string> ResolveApiKey(const TeacherProfile& profile);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_CONFIG_TEACHERS_H_
