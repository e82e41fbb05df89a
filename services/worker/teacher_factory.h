// Builds a worker's teachers from profiles: each profile's key is resolved
// (environment or file) and its teacher made by common/teacher's
// MakeTeacherWithKey. A profile whose key is not available, or whose api no
// format speaks, is skipped with a warning, so one worker config serves a
// fleet where only some hosts hold some keys. A profile whose API has a
// batch API gets one too (MakeBatchApi), for the worker's batch steps.
// Thread-safe: BuildWorkerTeachers reads only its arguments and the
// environment.
#ifndef DISTILLERY_SERVICES_WORKER_TEACHER_FACTORY_H_
#define DISTILLERY_SERVICES_WORKER_TEACHER_FACTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "common/config/teachers.h"
#include "common/http/http_client.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/teacher.h"
#include "services/worker/worker.h"

namespace distillery {

struct WorkerTeacherSet {
  std::vector<std::unique_ptr<Teacher>> owned;
  std::vector<std::unique_ptr<BatchApi>> owned_batch_apis;
  std::vector<WorkerTeacher> teachers;  // point into `owned`
};

// `only`, when not empty, keeps just that profile.
WorkerTeacherSet BuildWorkerTeachers(
    const std::vector<TeacherProfile>& profiles, HttpClient& http,
    const std::string& only = "");

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_WORKER_TEACHER_FACTORY_H_
