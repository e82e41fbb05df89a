// RocksDB implementation of Store: one column family per record kind.
//   jobs     job id                      -> v1::Job
//   prompts  job id \0 be64(seq)         -> v1::Prompt
//   tasks    job id \0 be64(seq) be32(s) -> v1::Task
//   answers  request key                 -> v1::Answer
//   task_answers job id \0 be64(seq) be32(s) -> v1::Answer committed for that
//                task, without raw_body and minhash (export order)
//   content  content hash                -> request key of the first answer
//   lsh      band (1) band hash (8)      -> request key of the first answer
//   scratch  caller's key                -> caller's value (temporary)
//   meta     counter name                -> be64 value
//   batches  batch record id             -> v1::BatchRecord
#include <algorithm>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/store/store.h"
#include "common/store/wire_fields.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/write_batch.h"

namespace distillery {
namespace {

enum Family {
  kDefault, kJobs, kPrompts, kTasks, kAnswers, kContent, kMeta, kLsh, kScratch,
  kBatches, kTaskAnswers
};
const char* const kFamilyNames[] = {"default", "jobs",         "prompts",
                                    "tasks",   "answers",      "content",
                                    "meta",    "lsh",          "scratch",
                                    "batches", "task_answers"};
constexpr int kFamilyCount = 11;

// v1::Answer's raw_body and minhash (types.proto), which bulk reads and the
// export-order copies leave out.
constexpr int kAnswerRawBodyField = 6;
constexpr int kAnswerMinhashField = 17;

void PutBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

uint64_t GetBigEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string JobPrefix(const std::string& job_id) {
  std::string k = job_id;
  k.push_back('\0');
  return k;
}

// One job's keys in the families keyed by job: [prefix, end), and read
// options bounded to them (the bound lives as long as the range).
struct JobRange {
  explicit JobRange(const std::string& job_id)
      : prefix(JobPrefix(job_id)), end(job_id + '\1'), end_slice(end) {
    options.iterate_upper_bound = &end_slice;
  }
  JobRange(const JobRange&) = delete;
  JobRange& operator=(const JobRange&) = delete;

  const std::string prefix;
  const std::string end;
  const rocksdb::Slice end_slice;
  rocksdb::ReadOptions options;
};

std::string PromptKey(const std::string& job_id, int64_t seq) {
  std::string k = JobPrefix(job_id);
  PutBigEndian(&k, static_cast<uint64_t>(seq), 8);
  return k;
}

std::string TaskKey(const std::string& job_id, int64_t seq, int sample) {
  std::string k = PromptKey(job_id, seq);
  PutBigEndian(&k, static_cast<uint32_t>(sample), 4);
  return k;
}

absl::Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat("rocksdb ", what, ": ", s.ToString());
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
  if (s.IsIOError()) return absl::UnavailableError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

template <typename Proto>
absl::StatusOr<std::optional<Proto>> ParseValue(const rocksdb::Status& s,
                                                const std::string& value,
                                                const char* what) {
  if (s.IsNotFound()) return std::optional<Proto>();
  if (!s.ok()) return FromRocks(s, what);
  Proto p;
  if (!p.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("corrupt ", what, " record"));
  }
  return std::optional<Proto>(std::move(p));
}

class RocksDbStore : public Store {
 public:
  RocksDbStore(std::unique_ptr<rocksdb::DB> db,
               std::vector<rocksdb::ColumnFamilyHandle*> handles,
               const StoreOptions& options)
      : db_(std::move(db)), handles_(std::move(handles)) {
    write_options_.sync = options.sync_writes;
  }

  ~RocksDbStore() override {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }

  absl::Status Apply(const StoreBatch& batch) override {
    rocksdb::WriteBatch wb;
    std::string value;
    for (const v1::Job& job : batch.jobs) {
      job.SerializeToString(&value);
      wb.Put(handles_[kJobs], job.id(), value);
    }
    for (size_t i = 0; i < batch.prompts.size(); ++i) {
      batch.prompts[i].SerializeToString(&value);
      const auto& [job_id, seq] = batch.prompt_keys[i];
      wb.Put(handles_[kPrompts], PromptKey(job_id, seq), value);
    }
    for (const v1::Task& task : batch.tasks) {
      task.SerializeToString(&value);
      wb.Put(handles_[kTasks],
             TaskKey(task.job_id(), task.prompt_seq(), task.sample()), value);
    }
    // Each answer is serialised once, for its own key and its task's copy.
    std::vector<std::string> answers(batch.answers.size());
    for (size_t i = 0; i < batch.answers.size(); ++i) {
      batch.answers[i].SerializeToString(&answers[i]);
      wb.Put(handles_[kAnswers], batch.answers[i].request_key(), answers[i]);
    }
    std::string without_body, without_both;
    for (const TaskAnswerRef& ref : batch.task_answers) {
      if (ref.answer >= answers.size()) {
        return absl::InvalidArgumentError("task answer refers to no answer");
      }
      std::string_view copy(answers[ref.answer]);
      if (!WithoutField(copy, kAnswerRawBodyField, &without_body) ||
          !WithoutField(copy, kAnswerMinhashField, &without_both)) {
        return absl::InternalError("answer serialised to a non-message");
      }
      wb.Put(handles_[kTaskAnswers],
             TaskKey(ref.job_id, ref.prompt_seq, ref.sample),
             rocksdb::Slice(copy.data(), copy.size()));
    }
    PutSorted(&wb, kContent, batch.content);
    PutSorted(&wb, kLsh, batch.lsh);
    for (const auto& [key, v] : batch.scratch) {
      wb.Put(handles_[kScratch], key, v);
    }
    for (const v1::BatchRecord& record : batch.batches) {
      record.SerializeToString(&value);
      wb.Put(handles_[kBatches], record.summary().id(), value);
    }
    rocksdb::WriteOptions options = write_options_;
    // Scratch outlives no operation (and no crash): not worth an fsync.
    if (batch.jobs.empty() && batch.prompts.empty() && batch.tasks.empty() &&
        batch.answers.empty() && batch.task_answers.empty() &&
        batch.content.empty() && batch.lsh.empty() && batch.batches.empty()) {
      options.sync = false;
    }
    return FromRocks(db_->Write(options, &wb), "write");
  }

  // Reads `keys` of `family` in one MultiGet, parsed as Proto; a field
  // numbered `skip_field` (a length-delimited one; 0: none) is left out
  // without being copied.
  // `sorted`: the keys are in key order already.
  template <typename Proto>
  absl::StatusOr<std::vector<std::optional<Proto>>> MultiGet(
      int family, const std::vector<rocksdb::Slice>& keys, const char* what,
      const rocksdb::ReadOptions& options, int skip_field = 0) {
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(options, handles_[family], keys.size(),
                  keys.data(), values.data(), statuses.data());
    std::vector<std::optional<Proto>> out(keys.size());
    std::string kept;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      if (!statuses[i].ok()) return FromRocks(statuses[i], what);
      std::string_view bytes(values[i].data(), values[i].size());
      if (skip_field > 0 && !WithoutField(bytes, skip_field, &kept)) {
        return absl::DataLossError(absl::StrCat("corrupt ", what, " record"));
      }
      Proto& p = out[i].emplace();
      if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(absl::StrCat("corrupt ", what, " record"));
      }
    }
    return out;
  }

  // Puts (key, value) pairs in key order. The memtable is a skip list and
  // these keys are hashes: in arrival order each insert searches from the
  // top, while in key order each starts from where the previous one went
  // in (RocksDB keeps that "splice" across a batch), which halves the cost
  // of a report's LSH buckets (bench/results.md).
  void PutSorted(rocksdb::WriteBatch* wb, int family,
                 const std::vector<std::pair<std::string, std::string>>& kvs) {
    std::vector<const std::pair<std::string, std::string>*> sorted;
    sorted.reserve(kvs.size());
    for (const auto& kv : kvs) sorted.push_back(&kv);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* kv : sorted) wb->Put(handles_[family], kv->first, kv->second);
  }

  absl::StatusOr<std::optional<v1::Job>> GetJob(
      const std::string& job_id) override {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), handles_[kJobs], job_id, &value);
    return ParseValue<v1::Job>(s, value, "job");
  }

  absl::StatusOr<std::vector<v1::Job>> ListJobs() override {
    std::vector<v1::Job> jobs;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kJobs]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      v1::Job job;
      if (!job.ParseFromArray(it->value().data(),
                              static_cast<int>(it->value().size()))) {
        return absl::DataLossError("corrupt job record");
      }
      jobs.push_back(std::move(job));
    }
    if (absl::Status s = FromRocks(it->status(), "list jobs"); !s.ok()) {
      return s;
    }
    return jobs;
  }

  absl::StatusOr<std::vector<v1::BatchRecord>> ListBatches() override {
    std::vector<v1::BatchRecord> records;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kBatches]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      v1::BatchRecord record;
      if (!record.ParseFromArray(it->value().data(),
                                 static_cast<int>(it->value().size()))) {
        return absl::DataLossError("corrupt batch record");
      }
      records.push_back(std::move(record));
    }
    if (absl::Status s = FromRocks(it->status(), "list batches"); !s.ok()) {
      return s;
    }
    return records;
  }

  absl::Status DeleteJob(const std::string& job_id) override {
    const JobRange job(job_id);
    rocksdb::WriteBatch wb;
    wb.DeleteRange(handles_[kPrompts], job.prefix, job.end);
    wb.DeleteRange(handles_[kTasks], job.prefix, job.end);
    wb.DeleteRange(handles_[kTaskAnswers], job.prefix, job.end);
    wb.Delete(handles_[kJobs], job_id);
    return FromRocks(db_->Write(write_options_, &wb), "delete job");
  }

  absl::StatusOr<std::optional<v1::Prompt>> GetPrompt(const std::string& job_id,
                                                      int64_t seq) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kPrompts],
                                 PromptKey(job_id, seq), &value);
    return ParseValue<v1::Prompt>(s, value, "prompt");
  }

  absl::StatusOr<std::optional<v1::Task>> GetTask(const std::string& job_id,
                                                  int64_t seq,
                                                  int sample) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kTasks],
                                 TaskKey(job_id, seq, sample), &value);
    return ParseValue<v1::Task>(s, value, "task");
  }

  absl::Status ScanTasks(
      const std::string& job_id, int64_t from_seq, int from_sample,
      const std::function<bool(const v1::Task&)>& fn) override {
    const JobRange job(job_id);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(job.options, handles_[kTasks]));
    v1::Task task;
    for (it->Seek(TaskKey(job_id, from_seq, from_sample)); it->Valid();
         it->Next()) {
      if (!task.ParseFromArray(it->value().data(),
                               static_cast<int>(it->value().size()))) {
        return absl::DataLossError(
            absl::StrCat("corrupt task record in job ", job_id));
      }
      if (!fn(task)) return absl::OkStatus();
    }
    return FromRocks(it->status(), "scan tasks");
  }

  absl::StatusOr<std::optional<v1::Answer>> GetAnswer(
      const std::string& request_key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kAnswers],
                                 request_key, &value);
    return ParseValue<v1::Answer>(s, value, "answer");
  }

  absl::StatusOr<std::vector<std::optional<v1::Answer>>> GetAnswers(
      const std::vector<std::string>& request_keys) override {
    std::vector<rocksdb::Slice> keys(request_keys.begin(), request_keys.end());
    // Answers are keyed by hash, so a bulk read touches blocks at random and
    // seldom twice: caching them would cost more (a sixth of an export's
    // time) than it saves, and push the hot blocks out.
    rocksdb::ReadOptions options;
    options.fill_cache = false;
    return MultiGet<v1::Answer>(kAnswers, keys, "answer", options,
                                kAnswerRawBodyField);
  }

  absl::Status ScanTaskRecords(
      const std::string& job_id,
      const std::function<bool(const StoredTask&)>& fn) override {
    JobRange job(job_id);
    const std::string& prefix = job.prefix;
    rocksdb::ReadOptions& options = job.options;
    // One pass, each block read once: caching the blocks would only push
    // the hot ones out.
    options.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> tasks(
        db_->NewIterator(options, handles_[kTasks]));
    std::unique_ptr<rocksdb::Iterator> prompts(
        db_->NewIterator(options, handles_[kPrompts]));
    std::unique_ptr<rocksdb::Iterator> answers(
        db_->NewIterator(options, handles_[kTaskAnswers]));
    prompts->Seek(prefix);
    answers->Seek(prefix);
    // Moves `it` to `key`, or past it: the value there when it is `key`'s.
    auto value_at = [](rocksdb::Iterator& it, const rocksdb::Slice& key)
        -> std::optional<std::string_view> {
      while (it.Valid() && it.key().compare(key) < 0) it.Next();
      if (!it.Valid() || it.key() != key) return std::nullopt;
      return std::string_view(it.value().data(), it.value().size());
    };
    v1::Task task;
    for (tasks->Seek(prefix); tasks->Valid(); tasks->Next()) {
      const rocksdb::Slice value = tasks->value();
      if (!task.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        return absl::DataLossError(
            absl::StrCat("corrupt task record in job ", job_id));
      }
      const rocksdb::Slice key = tasks->key();  // the prompt's key + sample
      if (key.size() != prefix.size() + 12) {
        return absl::DataLossError(
            absl::StrCat("corrupt task key in job ", job_id));
      }
      const rocksdb::Slice prompt_key(key.data(), key.size() - 4);
      StoredTask stored{task, std::string_view(value.data(), value.size()),
                        value_at(*prompts, prompt_key),
                        value_at(*answers, key)};
      if (!prompts->status().ok()) {
        return FromRocks(prompts->status(), "scan prompts");
      }
      if (!answers->status().ok()) {
        return FromRocks(answers->status(), "scan task answers");
      }
      if (!fn(stored)) return absl::OkStatus();
    }
    return FromRocks(tasks->status(), "scan tasks");
  }

  absl::StatusOr<std::vector<std::optional<v1::Prompt>>> GetPrompts(
      const std::string& job_id, const std::vector<int64_t>& seqs) override {
    std::vector<std::string> owned;
    owned.reserve(seqs.size());
    for (int64_t seq : seqs) owned.push_back(PromptKey(job_id, seq));
    std::vector<rocksdb::Slice> keys(owned.begin(), owned.end());
    return MultiGet<v1::Prompt>(kPrompts, keys, "prompt",
                                rocksdb::ReadOptions());
  }

  absl::StatusOr<bool> HasAnswer(const std::string& request_key) override {
    rocksdb::PinnableSlice value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kAnswers],
                                 request_key, &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, "answer lookup");
    return true;
  }

  absl::StatusOr<std::optional<std::string>> FindContent(
      const std::string& content_hash) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kContent],
                                 content_hash, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "content lookup");
    return std::optional<std::string>(std::move(value));
  }

  absl::StatusOr<std::optional<std::string>> FindLsh(
      const std::string& band_key) override {
    return Find(kLsh, band_key, "lsh lookup");
  }

  absl::StatusOr<std::optional<std::string>> FindScratch(
      const std::string& key) override {
    return Find(kScratch, key, "scratch lookup");
  }

  absl::Status DeleteScratch(const std::string& begin,
                             const std::string& end) override {
    return FromRocks(db_->DeleteRange(rocksdb::WriteOptions(),
                                      handles_[kScratch], begin, end),
                     "delete scratch");
  }

  absl::StatusOr<int64_t> NextSequence(const std::string& name) override {
    absl::MutexLock lock(&sequence_mu_);
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), handles_[kMeta], name, &value);
    uint64_t next = 1;
    if (s.ok() && value.size() == 8) {
      next = GetBigEndian(value.data(), 8) + 1;
    } else if (!s.ok() && !s.IsNotFound()) {
      return FromRocks(s, "sequence");
    }
    std::string encoded;
    PutBigEndian(&encoded, next, 8);
    if (absl::Status st = FromRocks(
            db_->Put(write_options_, handles_[kMeta], name, encoded),
            "sequence");
        !st.ok()) {
      return st;
    }
    return static_cast<int64_t>(next);
  }

  StoreStats Stats() override {
    auto get = [this](const std::string& property) -> int64_t {
      uint64_t value = 0;
      if (!db_->GetAggregatedIntProperty(property, &value)) return -1;
      return static_cast<int64_t>(value);
    };
    StoreStats stats;
    stats.sst_bytes = get(rocksdb::DB::Properties::kTotalSstFilesSize);
    stats.live_data_bytes = get(rocksdb::DB::Properties::kEstimateLiveDataSize);
    stats.memtable_bytes = get(rocksdb::DB::Properties::kCurSizeAllMemTables);
    stats.table_readers_bytes =
        get(rocksdb::DB::Properties::kEstimateTableReadersMem);
    stats.pending_compaction_bytes =
        get(rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
    stats.estimated_keys = get(rocksdb::DB::Properties::kEstimateNumKeys);
    // DB-wide properties, not per column family.
    uint64_t value = 0;
    if (db_->GetIntProperty(rocksdb::DB::Properties::kActualDelayedWriteRate,
                            &value)) {
      stats.delayed_write_rate = static_cast<int64_t>(value);
    }
    if (db_->GetIntProperty(rocksdb::DB::Properties::kIsWriteStopped, &value)) {
      stats.write_stopped = static_cast<int64_t>(value);
    }
    // Every family shares one block cache: asking one of them is asking it.
    if (db_->GetIntProperty(handles_[kDefault],
                            rocksdb::DB::Properties::kBlockCacheUsage,
                            &value)) {
      stats.block_cache_bytes = static_cast<int64_t>(value);
    }
    return stats;
  }

 private:
  absl::StatusOr<std::optional<std::string>> Find(Family family,
                                                  const std::string& key,
                                                  const char* what) {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), handles_[family], key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, what);
    return std::optional<std::string>(std::move(value));
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  absl::Mutex sequence_mu_;  // serialises NextSequence's read-modify-write
  // Every durable write uses these (scratch deletes need no sync: scratch
  // outlives no operation).
  rocksdb::WriteOptions write_options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const std::string& dir, const StoreOptions& store_options) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.compression = rocksdb::kLZ4Compression;
  options.IncreaseParallelism(2);
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // One cap on the memtables of all column families together, so the
  // coordinator's memory does not grow with the number of families written
  // (each would otherwise hold up to 2 x 64 MB). The block cache is
  // RocksDB's default (8 MB); index and filter blocks stay beside it, about
  // 5 bytes per prompt. Measured (bench/results.md, row 6): a 64 MB cache,
  // with or without the index and filter blocks in it, slowed an export of
  // 300,000 records by a third (131,000 -> 84,000-99,000 records/s).
  options.db_write_buffer_size = 128 << 20;
  rocksdb::ColumnFamilyOptions cf_options(options);
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Most point lookups miss (a request key not yet answered, a content hash
  // or LSH band not seen before): a whole-key bloom filter on the memtable
  // answers those without a walk down its skip list.
  cf_options.memtable_prefix_bloom_size_ratio = 0.05;
  cf_options.memtable_whole_key_filtering = true;

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (int i = 0; i < kFamilyCount; ++i) {
    families.emplace_back(kFamilyNames[i], cf_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, families, &handles, &raw);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot open data dir '", dir, "': ", s.ToString()));
  }
  return std::unique_ptr<Store>(
      new RocksDbStore(std::unique_ptr<rocksdb::DB>(raw), std::move(handles),
                       store_options));
}

}  // namespace distillery
