#include "services/coordinator/coordinator_metrics.h"

#include <algorithm>
#include <string>

#include "common/job/job_state.h"

namespace distillery {
namespace {

using metrics::Family;
using metrics::Sample;

Family Gauge(std::string name, std::string help) {
  Family f;
  f.name = std::move(name);
  f.help = std::move(help);
  return f;
}

}  // namespace

std::vector<Family> CoordinatorFamilies(const CoordinatorSnapshot& snapshot,
                                        const StoreStats& store,
                                        Duration live_within) {
  Family tasks = Gauge("distillery_job_tasks",
                       "Tasks of a job by state: pending, done (answered, "
                       "from cache included), failed (dead letters)");
  Family state = Gauge("distillery_job_state",
                       "1 for the state a job is in, 0 for the others");
  Family cache_hits = Gauge("distillery_job_cache_hits",
                            "Tasks of a job answered from the cache");
  Family duplicates = Gauge("distillery_job_duplicate_answers",
                            "Answers of a job identical to an earlier answer");
  Family requests = Gauge("distillery_job_teacher_requests",
                          "Answered teacher requests paid for by a job");
  Family tokens = Gauge("distillery_job_tokens",
                        "Tokens paid for by a job, by kind");
  Family cost = Gauge("distillery_job_cost_usd",
                      "Spend of a job in US dollars (0 without pricing)");
  Family created = Gauge("distillery_job_created_timestamp_seconds",
                         "When a job was submitted, since the Unix epoch");
  Family progress =
      Gauge("distillery_job_last_progress_timestamp_seconds",
            "When a task of the job last settled (or the job started or the "
            "coordinator restarted), since the Unix epoch");
  for (const CoordinatorSnapshot::JobView& view : snapshot.jobs) {
    const v1::Job& job = view.job;
    const v1::JobCounters& c = job.counters();
    const std::map<std::string, std::string> labels = {
        {"job_id", job.id()},
        {"teacher", job.spec().teacher()},
        {"model", job.spec().model()}};
    auto with = [&labels](const std::string& name, const std::string& value) {
      std::map<std::string, std::string> l = labels;
      l[name] = value;
      return l;
    };
    const int64_t pending = c.tasks_total() - c.tasks_done() - c.tasks_failed();
    tasks.samples.push_back({with("state", "pending"),
                             static_cast<double>(std::max<int64_t>(pending, 0))});
    tasks.samples.push_back(
        {with("state", "done"), static_cast<double>(c.tasks_done())});
    tasks.samples.push_back(
        {with("state", "failed"), static_cast<double>(c.tasks_failed())});
    for (v1::JobState s : AllJobStates()) {
      state.samples.push_back(
          {with("state", JobStateName(s)), job.state() == s ? 1.0 : 0.0});
    }
    cache_hits.samples.push_back({labels, static_cast<double>(c.cache_hits())});
    duplicates.samples.push_back(
        {labels, static_cast<double>(c.duplicate_answers())});
    requests.samples.push_back(
        {labels, static_cast<double>(c.teacher_requests())});
    for (auto [kind, n] : {std::pair{"prompt", c.prompt_tokens()},
                           std::pair{"completion", c.completion_tokens()},
                           std::pair{"reasoning", c.reasoning_tokens()},
                           std::pair{"cached", c.cached_tokens()}}) {
      tokens.samples.push_back({with("kind", kind), static_cast<double>(n)});
    }
    cost.samples.push_back({labels, c.cost_usd()});
    created.samples.push_back({labels, job.created_ms() / 1000.0});
    progress.samples.push_back({labels, view.last_progress_ms / 1000.0});
  }

  Family leases = Gauge("distillery_leases_active",
                        "Tasks leased to workers and not yet reported");
  for (const auto& [teacher, n] : snapshot.leases_by_teacher) {
    leases.samples.push_back({{{"teacher", teacher}}, static_cast<double>(n)});
  }

  // The budget the coordinator divides among workers, per minute (limits
  // are per window; 0: no limit known or configured).
  Family effective_rpm = Gauge(
      "distillery_teacher_effective_requests_per_minute",
      "A teacher's cluster-wide request limit in force: configured, "
      "announced by the teacher or learned from 429s (0: none)");
  Family effective_tpm =
      Gauge("distillery_teacher_effective_tokens_per_minute",
            "A teacher's cluster-wide token limit in force (0: none)");
  Family learning = Gauge("distillery_teacher_limit_learning",
                          "1 while a teacher's limit is unknown (not enforced until a 429)");
  Family paused = Gauge("distillery_teacher_paused",
                        "1 while a teacher is paused cluster-wide (key or "
                        "quota refused, model or endpoint not found, or the "
                        "teacher unreachable)");
  Family teacher_live = Gauge(
      "distillery_teacher_live_workers",
      "Workers serving a teacher and heard from within three heartbeat "
      "intervals (0: its jobs wait for a worker with its key)");
  for (const v1::TeacherStatus& t : snapshot.teachers) {
    const double per_minute = t.window_ms() > 0 ? 60000.0 / t.window_ms() : 0;
    const std::map<std::string, std::string> labels = {{"teacher", t.name()}};
    effective_rpm.samples.push_back({labels, t.effective_rpm() * per_minute});
    effective_tpm.samples.push_back({labels, t.effective_tpm() * per_minute});
    learning.samples.push_back({labels, t.learning() ? 1.0 : 0.0});
    paused.samples.push_back({labels, t.paused() ? 1.0 : 0.0});
    teacher_live.samples.push_back(
        {labels, static_cast<double>(t.live_workers())});
  }

  // The batch path, per teacher with a batch API.
  Family batches = Gauge("distillery_batches",
                         "A teacher's provider batches by state (creating, "
                         "open, cancelling, ended, failed)");
  Family batch_tasks = Gauge("distillery_batch_tasks",
                             "Tasks waiting in a teacher's open batches");
  Family batch_age = Gauge(
      "distillery_batch_oldest_open_age_seconds",
      "Age of a teacher's oldest batch not yet ended (0: none open)");
  Family batch_requests = Gauge(
      "distillery_batch_requests",
      "Requests of a teacher's batches by outcome since the coordinator "
      "started: succeeded, errored (sent again), not_run (expired or "
      "cancelled: sent again), dead (dead-lettered)");
  for (const CoordinatorSnapshot::TeacherBatchView& b : snapshot.batches) {
    for (const auto& [s, n] : b.batches_by_state) {
      batches.samples.push_back(
          {{{"teacher", b.teacher}, {"state", s}}, static_cast<double>(n)});
    }
    batch_tasks.samples.push_back(
        {{{"teacher", b.teacher}}, static_cast<double>(b.tasks_in_batches)});
    batch_age.samples.push_back(
        {{{"teacher", b.teacher}}, b.oldest_open_age_seconds});
    for (const auto& [outcome, n] : b.requests_by_outcome) {
      batch_requests.samples.push_back(
          {{{"teacher", b.teacher}, {"outcome", outcome}},
           static_cast<double>(n)});
    }
  }

  const double live_seconds = std::chrono::duration<double>(live_within).count();
  Family live = Gauge("distillery_workers_live",
                      "Workers heard from within three heartbeat intervals");
  Family age = Gauge("distillery_worker_last_seen_age_seconds",
                     "Seconds since the coordinator last heard from a worker "
                     "(workers heard from in the last hour)");
  int live_count = 0;
  for (const CoordinatorSnapshot::WorkerView& w : snapshot.workers) {
    if (w.last_seen_age_seconds <= live_seconds) ++live_count;
    if (w.last_seen_age_seconds <= 3600) {
      age.samples.push_back({{{"worker", w.id}}, w.last_seen_age_seconds});
    }
  }
  live.samples.push_back({{}, static_cast<double>(live_count)});

  std::vector<Family> out = {tasks,         state,         cache_hits,
                             duplicates,    requests,      tokens,
                             cost,          created,       progress,
                             leases,        live,          age,
                             effective_rpm, effective_tpm, learning,
                             paused,        teacher_live,  batches,
                             batch_tasks,   batch_age,     batch_requests};
  auto add_store = [&out](const char* name, const char* help, int64_t value) {
    if (value < 0) return;  // the engine did not say
    Family f = Gauge(name, help);
    f.samples.push_back({{}, static_cast<double>(value)});
    out.push_back(std::move(f));
  };
  add_store("distillery_rocksdb_sst_files_bytes",
            "Size of RocksDB's table files, all column families",
            store.sst_bytes);
  add_store("distillery_rocksdb_live_data_bytes",
            "RocksDB's estimate of its live data", store.live_data_bytes);
  add_store("distillery_rocksdb_memtable_bytes",
            "RocksDB's in-memory write buffers", store.memtable_bytes);
  add_store("distillery_rocksdb_block_cache_bytes",
            "RocksDB's block cache use (table blocks, and the memtables "
            "charged to it)",
            store.block_cache_bytes);
  add_store("distillery_rocksdb_table_readers_bytes",
            "Memory RocksDB's open table files hold outside the block cache",
            store.table_readers_bytes);
  add_store("distillery_rocksdb_pending_compaction_bytes",
            "Bytes RocksDB estimates compaction must rewrite",
            store.pending_compaction_bytes);
  add_store("distillery_rocksdb_delayed_write_rate_bytes_per_second",
            "Write rate RocksDB holds writes to while stalling (0: no stall)",
            store.delayed_write_rate);
  add_store("distillery_rocksdb_write_stopped",
            "1 while RocksDB stops writes (a hard stall)", store.write_stopped);
  add_store("distillery_rocksdb_estimated_keys",
            "RocksDB's estimate of its keys, all column families",
            store.estimated_keys);
  return out;
}

std::unique_ptr<metrics::CollectorHandle> RegisterCoordinatorMetrics(
    Coordinator& coordinator, Store& store, Duration live_within) {
  return metrics::AddCollector([&coordinator, &store, live_within] {
    return CoordinatorFamilies(coordinator.Snapshot(), store.Stats(),
                               live_within);
  });
}

}  // namespace distillery
