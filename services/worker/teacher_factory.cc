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
    set.teachers.push_back(WorkerTeacher{profile, set.owned.back().get()});
  }
  return set;
}

}  // namespace distillery
