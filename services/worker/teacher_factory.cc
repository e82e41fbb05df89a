#include "services/worker/teacher_factory.h"

#include <spdlog/spdlog.h>

#include "common/teacher/teacher_factory.h"

namespace distillery {

WorkerTeacherSet BuildWorkerTeachers(
    const std::vector<TeacherProfile>& profiles, HttpClient& http,
    const std::string& only) {
  WorkerTeacherSet set;
  for (const TeacherProfile& profile : profiles) {
    if (!only.empty() && profile.name != only) continue;
    absl::StatusOr<std::unique_ptr<Teacher>> teacher =
        MakeTeacherWithKey(profile, http);
    if (!teacher.ok()) {
      spdlog::warn("skipping teacher '{}': {}", profile.name,
                   std::string(teacher.status().message()));
      continue;
    }
    set.owned.push_back(*std::move(teacher));
    WorkerTeacher worker_teacher{profile, set.owned.back().get()};
    if (HasBatchApi(profile)) {
      absl::StatusOr<std::string> key = ResolveApiKey(profile);
      absl::StatusOr<std::unique_ptr<BatchApi>> batch =
          key.ok() ? MakeBatchApi(profile, *key, http)
                   : absl::StatusOr<std::unique_ptr<BatchApi>>(key.status());
      if (batch.ok()) {
        set.owned_batch_apis.push_back(*std::move(batch));
        worker_teacher.batch = set.owned_batch_apis.back().get();
      } else {
        spdlog::warn("teacher '{}': no batch steps: {}", profile.name,
                     std::string(batch.status().message()));
      }
    }
    set.teachers.push_back(std::move(worker_teacher));
  }
  return set;
}

}  // namespace distillery
