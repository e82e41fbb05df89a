// StoreWrapper: a Store that forwards every call to another one. Subclass it
// and override the calls to change, as LevelDB's EnvWrapper is used: tests
// inject faults this way (fail a read or a write on cue) while everything
// else runs on the real store. Thread-safe if the wrapped store is and the
// overrides are.
#ifndef DISTILLERY_COMMON_STORE_STORE_WRAPPER_H_
#define DISTILLERY_COMMON_STORE_STORE_WRAPPER_H_

#include "common/store/store.h"

namespace distillery {

class StoreWrapper : public Store {
 public:
  // `target` must outlive the wrapper.
  explicit StoreWrapper(Store& target) : target_(target) {}
  Store& target() { return target_; }

  absl::Status Apply(const StoreBatch& batch) override {
    return target_.Apply(batch);
  }
  absl::StatusOr<std::optional<v1::Job>> GetJob(
      const std::string& job_id) override {
    return target_.GetJob(job_id);
  }
  absl::StatusOr<std::vector<v1::Job>> ListJobs() override {
    return target_.ListJobs();
  }
  absl::Status DeleteJob(const std::string& job_id) override {
    return target_.DeleteJob(job_id);
  }
  absl::StatusOr<std::optional<v1::Prompt>> GetPrompt(
      const std::string& job_id, int64_t seq) override {
    return target_.GetPrompt(job_id, seq);
  }
  absl::StatusOr<std::optional<v1::Task>> GetTask(const std::string& job_id,
                                                  int64_t seq,
                                                  int sample) override {
    return target_.GetTask(job_id, seq, sample);
  }
  absl::Status ScanTasks(
      const std::string& job_id, int64_t from_seq, int from_sample,
      const std::function<bool(const v1::Task&)>& fn) override {
    return target_.ScanTasks(job_id, from_seq, from_sample, fn);
  }
  absl::StatusOr<std::optional<v1::Answer>> GetAnswer(
      const std::string& request_key) override {
    return target_.GetAnswer(request_key);
  }
  absl::StatusOr<std::vector<std::optional<v1::Answer>>> GetAnswers(
      const std::vector<std::string>& request_keys) override {
    return target_.GetAnswers(request_keys);
  }
  absl::Status ScanTaskRecords(
      const std::string& job_id,
      const std::function<bool(const StoredTask&)>& fn) override {
    return target_.ScanTaskRecords(job_id, fn);
  }
  absl::StatusOr<std::vector<std::optional<v1::Prompt>>> GetPrompts(
      const std::string& job_id, const std::vector<int64_t>& seqs) override {
    return target_.GetPrompts(job_id, seqs);
  }
  absl::StatusOr<bool> HasAnswer(const std::string& request_key) override {
    return target_.HasAnswer(request_key);
  }
  absl::StatusOr<std::optional<std::string>> FindContent(
      const std::string& content_hash) override {
    return target_.FindContent(content_hash);
  }
  absl::StatusOr<std::optional<std::string>> FindLsh(
      const std::string& band_key) override {
    return target_.FindLsh(band_key);
  }
  absl::StatusOr<std::optional<std::string>> FindScratch(
      const std::string& key) override {
    return target_.FindScratch(key);
  }
  absl::Status DeleteScratch(const std::string& begin,
                             const std::string& end) override {
    return target_.DeleteScratch(begin, end);
  }
  absl::StatusOr<std::vector<v1::BatchRecord>> ListBatches() override {
    return target_.ListBatches();
  }
  absl::StatusOr<int64_t> NextSequence(const std::string& name) override {
    return target_.NextSequence(name);
  }
  StoreStats Stats() override { return target_.Stats(); }

 private:
  Store& target_;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_STORE_STORE_WRAPPER_H_
