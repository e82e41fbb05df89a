#include "services/coordinator/batch_book.h"

#include <algorithm>

namespace distillery {

OpenBatch& BatchBook::Add(v1::BatchRecord record) {
  const std::string id = record.summary().id();
  OpenBatch& batch = open_[id];
  batch.record = std::move(record);
  batch.index.clear();
  for (int i = 0; i < batch.record.tasks_size(); ++i) {
    batch.index[batch.record.tasks(i).custom_id()] = i;
  }
  return batch;
}

OpenBatch* BatchBook::Find(const std::string& batch_id) {
  auto it = open_.find(batch_id);
  return it == open_.end() ? nullptr : &it->second;
}

OpenBatch* BatchBook::ByStepLease(int64_t lease_id) {
  if (lease_id == 0) return nullptr;
  for (auto& [id, batch] : open_) {
    if (batch.step_lease == lease_id) return &batch;
  }
  return nullptr;
}

void BatchBook::End(const std::string& batch_id, const std::string& job_id,
                    v1::BatchSummary summary, const std::string& teacher) {
  open_.erase(batch_id);
  AddEnded(job_id, std::move(summary), teacher);
}

void BatchBook::AddEnded(const std::string& job_id, v1::BatchSummary summary,
                         const std::string& teacher) {
  ended_[job_id].push_back(std::move(summary));
  if (!teacher.empty()) teacher_of_job_[job_id] = teacher;
}

std::vector<std::pair<std::string, v1::BatchSummary>> BatchBook::AllByTeacher()
    const {
  std::vector<std::pair<std::string, v1::BatchSummary>> out;
  for (const auto& [job_id, summaries] : ended_) {
    auto teacher = teacher_of_job_.find(job_id);
    if (teacher == teacher_of_job_.end()) continue;
    for (const v1::BatchSummary& s : summaries) out.emplace_back(teacher->second, s);
  }
  for (const auto& [id, batch] : open_) {
    out.emplace_back(batch.record.teacher(), batch.record.summary());
  }
  return out;
}

std::vector<v1::BatchSummary> BatchBook::SummariesOf(
    const std::string& job_id) const {
  std::vector<v1::BatchSummary> out;
  if (auto it = ended_.find(job_id); it != ended_.end()) out = it->second;
  for (const auto& [id, batch] : open_) {
    if (batch.record.job_id() == job_id) out.push_back(batch.record.summary());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_ms() != b.created_ms() ? a.created_ms() < b.created_ms()
                                            : a.id() < b.id();
  });
  return out;
}

int64_t BatchBook::OpenTasksOf(const std::string& job_id) const {
  int64_t n = 0;
  for (const auto& [id, batch] : open_) {
    if (batch.record.job_id() != job_id) continue;
    for (const v1::BatchTask& t : batch.record.tasks()) n += t.settled() ? 0 : 1;
  }
  return n;
}

bool BatchBook::AnyOpenFor(const std::string& teacher) const {
  for (const auto& [id, batch] : open_) {
    if (batch.record.teacher() == teacher &&
        batch.record.summary().state() != v1::BATCH_STATE_CREATING) {
      return true;
    }
  }
  return false;
}

bool BatchBook::RenewStep(int64_t lease_id, const std::string& worker_id,
                          TimePoint deadline) {
  OpenBatch* batch = ByStepLease(lease_id);
  if (batch == nullptr || batch->step_worker != worker_id) return false;
  batch->step_deadline = deadline;
  return true;
}

void BatchBook::ObserveDuration(const std::string& teacher, double seconds) {
  TeacherBatches& t = teachers_[teacher];
  ++t.observed;
  // A running mean over the last ~8 batches: recent ones say most.
  const double weight = 1.0 / std::min<int64_t>(t.observed, 8);
  t.mean_duration_s += weight * (seconds - t.mean_duration_s);
}

}  // namespace distillery
