#include "services/coordinator/coordinator_metrics.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>

namespace distillery {
namespace {

const metrics::Family* Find(const std::vector<metrics::Family>& families,
                            const std::string& name) {
  for (const metrics::Family& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

double Value(const metrics::Family& f,
             const std::map<std::string, std::string>& match) {
  for (const metrics::Sample& s : f.samples) {
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      ok &= it != s.labels.end() && it->second == v;
    }
    if (ok) return s.value;
  }
  return -1;
}

TEST(CoordinatorMetricsTest, TeacherBudgetsBecomePerMinuteGauges) {
  CoordinatorSnapshot snapshot;
  v1::TeacherStatus limited;
  limited.set_name("openai");
  limited.set_window_ms(10'000);  // 100 requests per 10 s: 600 per minute
  limited.set_effective_rpm(100);
  limited.set_effective_tpm(20'000);
  snapshot.teachers.push_back(limited);
  v1::TeacherStatus probing;
  probing.set_name("deepseek");
  probing.set_window_ms(60'000);
  probing.set_learning(true);
  probing.set_paused(true);
  snapshot.teachers.push_back(probing);

  const std::vector<metrics::Family> f =
      CoordinatorFamilies(snapshot, StoreStats(), std::chrono::seconds(10));
  const metrics::Family* rpm =
      Find(f, "distillery_teacher_effective_requests_per_minute");
  const metrics::Family* tpm =
      Find(f, "distillery_teacher_effective_tokens_per_minute");
  const metrics::Family* learning = Find(f, "distillery_teacher_limit_learning");
  const metrics::Family* paused = Find(f, "distillery_teacher_paused");
  ASSERT_TRUE(rpm && tpm && learning && paused);
  EXPECT_EQ(Value(*rpm, {{"teacher", "openai"}}), 600);
  EXPECT_EQ(Value(*tpm, {{"teacher", "openai"}}), 120'000);
  EXPECT_EQ(Value(*rpm, {{"teacher", "deepseek"}}), 0);
  EXPECT_EQ(Value(*learning, {{"teacher", "openai"}}), 0);
  EXPECT_EQ(Value(*learning, {{"teacher", "deepseek"}}), 1);
  EXPECT_EQ(Value(*paused, {{"teacher", "deepseek"}}), 1);
  EXPECT_EQ(Value(*paused, {{"teacher", "openai"}}), 0);
}

TEST(CoordinatorMetricsTest, JobsWorkersAndStoreBecomeFamilies) {
  CoordinatorSnapshot snapshot;
  v1::Job job;
  job.set_id("job-000001");
  job.mutable_spec()->set_teacher("sim");
  job.mutable_spec()->set_model("m");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_counters()->set_tasks_total(10);
  job.mutable_counters()->set_tasks_done(6);
  job.mutable_counters()->set_tasks_failed(1);
  job.mutable_counters()->set_cost_usd(0.25);
  snapshot.jobs.push_back({job, 5'000});
  snapshot.workers.push_back({"w1-a", 0.5});
  snapshot.workers.push_back({"w2-b", 30});
  snapshot.workers.push_back({"w3-c", 7200});
  snapshot.leases_by_teacher["sim"] = 3;
  StoreStats store;
  store.sst_bytes = 1000;
  store.write_stopped = 0;

  const std::vector<metrics::Family> f =
      CoordinatorFamilies(snapshot, store, std::chrono::seconds(10));
  const metrics::Family* tasks = Find(f, "distillery_job_tasks");
  ASSERT_NE(tasks, nullptr);
  EXPECT_EQ(Value(*tasks, {{"job_id", "job-000001"}, {"state", "pending"}}), 3);
  EXPECT_EQ(Value(*tasks, {{"state", "done"}, {"teacher", "sim"}}), 6);
  EXPECT_EQ(Value(*tasks, {{"state", "failed"}, {"model", "m"}}), 1);
  const metrics::Family* state = Find(f, "distillery_job_state");
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(Value(*state, {{"state", "running"}}), 1);
  EXPECT_EQ(Value(*state, {{"state", "completed"}}), 0);
  EXPECT_EQ(Value(*Find(f, "distillery_job_cost_usd"), {}), 0.25);
  EXPECT_EQ(Value(*Find(f, "distillery_job_last_progress_timestamp_seconds"), {}),
            5);
  EXPECT_EQ(Value(*Find(f, "distillery_workers_live"), {}), 1);
  const metrics::Family* age = Find(f, "distillery_worker_last_seen_age_seconds");
  ASSERT_NE(age, nullptr);
  EXPECT_EQ(age->samples.size(), 2u);  // the one gone for two hours is left out
  EXPECT_EQ(Value(*Find(f, "distillery_leases_active"), {{"teacher", "sim"}}), 3);
  EXPECT_EQ(Value(*Find(f, "distillery_rocksdb_sst_files_bytes"), {}), 1000);
  EXPECT_NE(Find(f, "distillery_rocksdb_write_stopped"), nullptr);
  // What the engine did not report is left out, not reported as -1.
  EXPECT_EQ(Find(f, "distillery_rocksdb_memtable_bytes"), nullptr);
}

// Issues 12 and 13: a job paused at its budget vanished from
// distillery_job_state. Every state of the proto enum (from its descriptor)
// has its series, and a job in it reads 1 there and 0 elsewhere.
TEST(CoordinatorMetricsTest, EveryJobStateHasItsSeries) {
  const google::protobuf::EnumDescriptor* d = v1::JobState_descriptor();
  for (int i = 0; i < d->value_count(); ++i) {
    const auto state = static_cast<v1::JobState>(d->value(i)->number());
    if (state == v1::JOB_STATE_UNSPECIFIED) continue;
    CoordinatorSnapshot snapshot;
    v1::Job job;
    job.set_id("job-000001");
    job.set_state(state);
    snapshot.jobs.push_back({job, 0});
    const std::vector<metrics::Family> f =
        CoordinatorFamilies(snapshot, StoreStats(), std::chrono::seconds(10));
    const metrics::Family* family = Find(f, "distillery_job_state");
    ASSERT_NE(family, nullptr);
    EXPECT_EQ(family->samples.size(), static_cast<size_t>(d->value_count() - 1));
    std::string lower = d->value(i)->name().substr(std::string("JOB_STATE_").size());
    for (char& c : lower) c = static_cast<char>(std::tolower(c));
    EXPECT_EQ(Value(*family, {{"state", lower}}), 1) << lower;
    double sum = 0;
    for (const metrics::Sample& s : family->samples) sum += s.value;
    EXPECT_EQ(sum, 1) << lower;
  }
}

TEST(CoordinatorMetricsTest, LiveWorkersPerTeacher) {
  CoordinatorSnapshot snapshot;
  v1::TeacherStatus served, orphan;
  served.set_name("sim");
  served.set_live_workers(2);
  orphan.set_name("offline");
  snapshot.teachers = {served, orphan};
  const std::vector<metrics::Family> f =
      CoordinatorFamilies(snapshot, StoreStats(), std::chrono::seconds(10));
  const metrics::Family* live = Find(f, "distillery_teacher_live_workers");
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(Value(*live, {{"teacher", "sim"}}), 2);
  EXPECT_EQ(Value(*live, {{"teacher", "offline"}}), 0);
}

TEST(CoordinatorMetricsTest, RocksDbStoreReportsItsProperties) {
  char tmpl[] = "/tmp/distillery-store-stats-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  absl::StatusOr<std::unique_ptr<Store>> store = OpenRocksDbStore(tmpl);
  ASSERT_TRUE(store.ok()) << store.status();
  StoreBatch batch;
  v1::Job job;
  job.set_id("job-1");
  batch.jobs.push_back(job);
  ASSERT_TRUE((*store)->Apply(batch).ok());
  const StoreStats stats = (*store)->Stats();
  EXPECT_GE(stats.sst_bytes, 0);
  EXPECT_GT(stats.memtable_bytes, 0);
  EXPECT_GE(stats.table_readers_bytes, 0);
  EXPECT_GE(stats.block_cache_bytes, 0);
  EXPECT_EQ(stats.write_stopped, 0);
  EXPECT_EQ(stats.delayed_write_rate, 0);
  EXPECT_GE(stats.estimated_keys, 1);
  store->reset();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace distillery
