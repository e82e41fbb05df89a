#include "services/coordinator/exporter.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/dataset/export_filter.h"
#include "common/dedup/keys.h"
#include "common/dedup/minhash.h"
#include "common/metrics/metrics.h"
#include "common/store/wire_fields.h"

namespace distillery {
namespace {

// Tasks an export reads answers and prompts for at once.
constexpr size_t kExportReadBatch = 256;


// One export's keys in the store's scratch family: a be64 export id as
// prefix, all deleted when it goes (or at the next start after a crash).
class ExportScratch {
 public:
  ExportScratch(Store& store, int64_t export_id) : store_(store) {
    for (int i = 7; i >= 0; --i) {
      prefix_.push_back(static_cast<char>((export_id >> (8 * i)) & 0xff));
    }
  }
  ~ExportScratch() {
    std::string end = prefix_;
    for (int i = 7; i >= 0; --i) {  // the next id's prefix
      if (static_cast<unsigned char>(end[i]) != 0xff) {
        end[i] = static_cast<char>(static_cast<unsigned char>(end[i]) + 1);
        break;
      }
      end[i] = 0;
    }
    (void)store_.DeleteScratch(prefix_, end);
  }
  ExportScratch(const ExportScratch&) = delete;
  ExportScratch& operator=(const ExportScratch&) = delete;

  const std::string& prefix() const { return prefix_; }

 private:
  Store& store_;
  std::string prefix_;
};

// Exact repeats within one export: a stored answer that a second task got
// from the cache (a prompt repeated in the file, or asked again by a later
// job of the same export) is the same answer, and is emitted once. The keys
// emitted so far live in the export's scratch space, so memory stays flat.
class RepeatFilter {
 public:
  RepeatFilter(Store& store, int64_t export_id)
      : store_(store), scratch_(store, export_id) {}

  // True the first time `request_key` is seen; it is then remembered.
  absl::StatusOr<bool> FirstTime(const std::string& request_key) {
    const std::string key = scratch_.prefix() + request_key;
    ASSIGN_OR_RETURN(std::optional<std::string> seen, store_.FindScratch(key));
    if (seen) return false;
    StoreBatch batch;
    batch.scratch.emplace_back(key, std::string());
    RETURN_IF_ERROR(store_.Apply(batch));
    return true;
  }

 private:
  Store& store_;
  ExportScratch scratch_;
};

// Export-time near-duplicate removal. The LSH index of the answers emitted
// so far lives in the store's scratch family under this export's id, so
// memory stays flat however large the export; it is deleted at the end (or
// at the next start after a crash). Each bucket remembers the first answer
// emitted into it, and a record is checked against those (at most
// kMinHashBands point reads, plus one signature read per distinct
// candidate). A near-duplicate of an emitted answer that shares a bucket
// only with other, dissimilar emitted answers is missed; with 16 bands and
// J >= 0.85 (about 5 of 16 bands shared on average at J = 0.85, 16 of 16 at
// J = 1) that is rare, and the answer is kept, never wrongly dropped.
class NearDupFilter {
 public:
  NearDupFilter(Store& store, int64_t export_id, double threshold)
      : store_(store), threshold_(threshold), scratch_(store, export_id),
        prefix_(scratch_.prefix()) {}

  // True when `answer` should be emitted; then it joins the index.
  absl::StatusOr<bool> Admit(const v1::Answer& answer) {
    const std::string mine = SignatureOf(answer);
    const std::vector<std::string> bands = LshBandKeys(mine);
    StoreBatch batch;
    std::vector<std::string> checked;
    for (const std::string& band : bands) {
      const std::string key = prefix_ + band;
      ASSIGN_OR_RETURN(std::optional<std::string> first,
                       store_.FindScratch(key));
      if (!first) {
        batch.scratch.emplace_back(key, answer.request_key());
        continue;
      }
      if (std::find(checked.begin(), checked.end(), *first) != checked.end()) {
        continue;
      }
      checked.push_back(*first);
      // The same stored answer again (a cache hit, an overlapping job).
      if (*first == answer.request_key()) return false;
      ASSIGN_OR_RETURN(std::optional<v1::Answer> other,
                       store_.GetAnswer(*first));
      if (!other) continue;
      std::string signature = SignatureOf(*other);
      if (!other->duplicate_of().empty()) {
        ASSIGN_OR_RETURN(std::optional<v1::Answer> original,
                         store_.GetAnswer(other->duplicate_of()));
        if (original) signature = SignatureOf(*original);
      }
      if (EstimateJaccard(mine, signature) >= threshold_) {
        return false;
      }
    }
    if (!batch.empty()) RETURN_IF_ERROR(store_.Apply(batch));
    return true;
  }

 private:
  // The stored signature, or one computed now: answers committed with
  // --near-duplicates=export carry none.
  static std::string SignatureOf(const v1::Answer& answer) {
    if (!answer.minhash().empty() || answer.content().empty()) {
      return answer.minhash();
    }
    return MinHashSignature(answer.content());
  }

  Store& store_;
  const double threshold_;
  ExportScratch scratch_;
  const std::string prefix_;
};

}  // namespace

void ExportRecordBytes::AppendTo(std::string* out) const {
  out->reserve(out->size() + ByteSize());
  AppendLengthDelimited(v1::ExportRecord::kJobIdFieldNumber, job_id, out);
  AppendLengthDelimited(v1::ExportRecord::kPromptFieldNumber, prompt, out);
  AppendLengthDelimited(v1::ExportRecord::kTaskFieldNumber, task, out);
  if (answer) {
    AppendLengthDelimited(v1::ExportRecord::kAnswerFieldNumber, *answer, out);
  }
}

size_t ExportRecordBytes::ByteSize() const {
  return LengthDelimitedSize(v1::ExportRecord::kJobIdFieldNumber,
                             job_id.size()) +
         LengthDelimitedSize(v1::ExportRecord::kPromptFieldNumber,
                             prompt.size()) +
         LengthDelimitedSize(v1::ExportRecord::kTaskFieldNumber, task.size()) +
         (answer ? LengthDelimitedSize(v1::ExportRecord::kAnswerFieldNumber,
                                       answer->size())
                 : 0);
}

absl::StatusOr<v1::ExportRecord> ExportRecordBytes::Parse() const {
  v1::ExportRecord record;
  record.set_job_id(std::string(job_id));
  const auto parse = [](std::string_view bytes,
                        google::protobuf::MessageLite* message) {
    return message->ParseFromArray(bytes.data(),
                                   static_cast<int>(bytes.size()));
  };
  if (!parse(prompt, record.mutable_prompt()) ||
      !parse(task, record.mutable_task()) ||
      (answer && !parse(*answer, record.mutable_answer()))) {
    return absl::DataLossError(
        absl::StrCat("job ", std::string(job_id), ": a corrupt record in the store"));
  }
  return record;
}

namespace {

// A task an export keeps, with copies of its stored bytes (a scan's views
// end with its call). Slots are reused from batch to batch, so their
// buffers are allocated once, not per record.
struct KeptTask {
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  v1::VerifyState verify_state = v1::VERIFY_STATE_UNCHECKED;
  int64_t prompt_seq = 0;
  int32_t sample = 0;
  std::string request_key;
  std::string task;
  std::string prompt;
  bool has_prompt = false;
  std::string answer;  // the copy's bytes
  bool has_answer = false;
  // The copy's fields the filters read, and its request key.
  v1::Answer facts;
  // Read by request key (no copy, a stale copy, or near-duplicates on):
  // the answer parsed, with its signature.
  std::optional<v1::Answer> by_key;

  void Set(const StoredTask& stored) {
    const v1::Task& t = stored.task;
    state = t.state();
    verify_state = t.verify_state();
    prompt_seq = t.prompt_seq();
    sample = t.sample();
    request_key.assign(t.request_key());
    task.assign(stored.task_bytes);
    has_prompt = stored.prompt.has_value();
    if (has_prompt) prompt.assign(*stored.prompt);
    has_answer = stored.answer.has_value();
    if (has_answer) answer.assign(*stored.answer);
    by_key.reset();
  }
};

// A vector of KeptTask whose slots outlive clear().
class KeptTasks {
 public:
  KeptTask& Add() {
    if (size_ == slots_.size()) slots_.emplace_back();
    return slots_[size_++];
  }
  KeptTask& operator[](size_t i) { return slots_[i]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }

 private:
  std::vector<KeptTask> slots_;
  size_t size_ = 0;
};

}  // namespace

absl::Status ExportJobs(Store& store, const v1::ExportRequest& request,
                        const std::vector<v1::Job>& jobs,
                        const ExportEmit& emit, ExportCounts* counts) {
  ExportCounts ignored;
  if (counts == nullptr) counts = &ignored;
  ASSIGN_OR_RETURN(ExportFilter filter, ExportFilter::Create(request));
  std::optional<NearDupFilter> near_dups;
  if (request.near_dup_threshold() > 0 && !request.failed_only()) {
    ASSIGN_OR_RETURN(int64_t export_id, store.NextSequence("export"));
    near_dups.emplace(store, export_id, request.near_dup_threshold());
  }
  // Only cache hits can repeat an answer of the same export; without any,
  // no record pays for the check.
  bool any_cache_hits = false;
  for (const v1::Job& job : jobs) {
    any_cache_hits |= job.counters().cache_hits() > 0;
  }
  std::optional<RepeatFilter> repeats;
  if (any_cache_hits && !request.include_duplicates() &&
      !request.failed_only()) {
    ASSIGN_OR_RETURN(int64_t export_id, store.NextSequence("export"));
    repeats.emplace(store, export_id);
  }
  const bool want_done = !request.failed_only();
  const bool want_failed = request.failed_only() || request.include_failed();
  // What the filters read of an answer's copy, with the request key it was
  // committed for: a message of these fields only, cut from the stored
  // bytes (the content only when a length bound needs it), so the text is
  // never parsed to decide.
  const bool content_filtered = filter.ReadsAnswerContent();
  std::string facts_bytes;
  const auto read_facts = [&](KeptTask& t) {
    facts_bytes.clear();
    const bool cut =
        content_filtered
            ? SelectFields(t.answer,
                           {v1::Answer::kRequestKeyFieldNumber,
                            v1::Answer::kFinishReasonFieldNumber,
                            v1::Answer::kUsageFieldNumber,
                            v1::Answer::kDuplicateOfFieldNumber,
                            v1::Answer::kContentFieldNumber},
                           &facts_bytes)
            : SelectFields(t.answer,
                           {v1::Answer::kRequestKeyFieldNumber,
                            v1::Answer::kFinishReasonFieldNumber,
                            v1::Answer::kUsageFieldNumber,
                            v1::Answer::kDuplicateOfFieldNumber},
                           &facts_bytes);
    return cut && t.facts.ParseFromString(facts_bytes);
  };
  v1::Prompt prompt_fields;
  std::string serialised;  // an answer read by key, as it goes out
  for (const v1::Job& job : jobs) {
    if (!filter.MatchesJob(job.spec())) continue;
    const std::string& job_id = job.id();
    absl::Status inner;
    bool stopped = false;
    const auto corrupt = [&](const KeptTask& t, const char* what) {
      inner = absl::DataLossError(absl::StrCat("job ", job_id, ": the ", what,
                                               " of task ", t.prompt_seq, "/",
                                               t.sample, " does not parse"));
      return false;
    };
    // One record; false (setting `inner` or `stopped`) ends the export.
    auto export_record = [&](KeptTask& t) -> bool {
      if (!t.has_prompt) {
        inner = absl::DataLossError(absl::StrCat(
            "job ", job_id, ": prompt missing for task ", t.prompt_seq));
        return false;
      }
      if (filter.FiltersPrompts()) {
        if (!prompt_fields.ParseFromString(t.prompt)) {
          return corrupt(t, "prompt");
        }
        if (!filter.MatchesPrompt(prompt_fields)) return true;
      }
      ExportRecordBytes record{job_id, t.task, t.prompt, std::nullopt};
      if (t.state == v1::TASK_STATE_DONE) {
        if (!t.has_answer && !t.by_key) {
          inner = absl::DataLossError(
              absl::StrCat("job ", job_id, ": answer missing for ",
                           HexKey(t.request_key)));
          return false;
        }
        // The answer the filters judge: the one read by key, or the
        // copy's few fields they read (read at the flush).
        const v1::Answer* judged = t.by_key ? &*t.by_key : &t.facts;
        // An identical answer's record carries the first answer's text:
        // parsed, filled in and serialised again (only with
        // include_duplicates; without, it is left out).
        std::optional<v1::Answer> filled;
        if (!judged->duplicate_of().empty()) {
          if (!request.include_duplicates()) {
            ++counts->duplicates_left_out;
            return true;
          }
          filled.emplace();
          if (t.by_key) {
            *filled = *t.by_key;
          } else if (!filled->ParseFromString(t.answer)) {
            return corrupt(t, "answer");
          }
          // Without the text the record would be a duplicate with no
          // content, so a failed or empty read ends the export instead.
          absl::StatusOr<std::optional<v1::Answer>> first =
              store.GetAnswer(filled->duplicate_of());
          if (!first.ok() || !*first) {
            metrics::StoreError("export");
            inner = !first.ok()
                        ? first.status()
                        : absl::DataLossError(absl::StrCat(
                              "job ", job_id, ": the answer ",
                              HexKey(t.request_key), " repeats ",
                              HexKey(filled->duplicate_of()),
                              ", which is missing"));
            return false;
          }
          filled->set_content((*first)->content());
          filled->set_reasoning((*first)->reasoning());
          filled->set_reasoning_blocks((*first)->reasoning_blocks());
          filled->set_minhash((*first)->minhash());
          judged = &*filled;
        }
        if (!filter.MatchesAnswer(*judged)) return true;
        if (repeats) {
          absl::StatusOr<bool> first = repeats->FirstTime(t.request_key);
          if (!first.ok()) {
            inner = first.status();
            return false;
          }
          if (!*first) {
            ++counts->duplicates_left_out;
            return true;
          }
        }
        if (near_dups) {
          absl::StatusOr<bool> admit = near_dups->Admit(*judged);
          if (!admit.ok()) {
            inner = admit.status();
            return false;
          }
          if (!*admit) {
            ++counts->near_duplicates_left_out;
            return true;
          }
        }
        record.answer = t.answer;
        if (filled || t.by_key) {
          // The signature is for the coordinator, and no export format
          // writes the raw body (kept in the store for provenance): off the
          // wire, which halves an export's bytes. The copies have neither.
          v1::Answer& out = filled ? *filled : *t.by_key;
          out.clear_minhash();
          out.clear_raw_body();
          out.SerializeToString(&serialised);
          record.answer = serialised;
        }
      }
      metrics::RecordsExported(1);
      if (!emit(record)) {
        stopped = true;
        return false;
      }
      return true;
    };
    // Tasks come in order with their prompts and their answers' copies, in
    // one pass (Store::ScanTaskRecords), and are handled in batches: the
    // answers without a copy (a cache hit, data older than the copies, a
    // copy of an earlier answer) are read by request key, a random read,
    // in one MultiGet a batch. With near-duplicates on, every answer is
    // read by key, for the stored signatures the copies leave out.
    const bool read_copies = !near_dups;
    KeptTasks batch;
    auto flush = [&]() -> bool {
      std::vector<size_t> missing;
      std::vector<std::string> keys;
      for (size_t i = 0; i < batch.size(); ++i) {
        KeptTask& t = batch[i];
        if (t.state != v1::TASK_STATE_DONE) continue;
        bool stale = !read_copies || !t.has_answer;
        if (!stale) {
          if (!read_facts(t)) return corrupt(t, "answer");
          stale = t.facts.request_key() != t.request_key;
        }
        if (stale) {
          t.has_answer = false;
          missing.push_back(i);
          keys.push_back(t.request_key);
        }
      }
      if (!keys.empty()) {
        absl::StatusOr<std::vector<std::optional<v1::Answer>>> by_key =
            store.GetAnswers(keys);
        if (!by_key.ok()) {
          inner = by_key.status();
          return false;
        }
        for (size_t m = 0; m < missing.size(); ++m) {
          batch[missing[m]].by_key = std::move((*by_key)[m]);
        }
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!export_record(batch[i])) return false;
      }
      batch.clear();
      return true;
    };
    auto wanted = [&](v1::TaskState state, v1::VerifyState verify) {
      const bool done = state == v1::TASK_STATE_DONE;
      const bool failed = state == v1::TASK_STATE_FAILED;
      if (!(done && want_done) && !(failed && want_failed)) return false;
      return !(done && request.verified_only() &&
               verify != v1::VERIFY_STATE_VERIFIED);
    };
    auto keep_task = [&](const StoredTask& stored) -> bool {
      if (!wanted(stored.task.state(), stored.task.verify_state())) return true;
      batch.Add().Set(stored);
      return batch.size() < kExportReadBatch || flush();
    };
    // The pass-rate filters judge a prompt by all its samples, which are
    // adjacent in the scan: one prompt's tasks are held until the next
    // prompt starts (at most max_samples of them).
    const bool by_pass_rate =
        request.has_min_pass_rate() || request.has_max_pass_rate();
    KeptTasks prompt_tasks;
    auto release_prompt = [&]() -> bool {
      int answered = 0;
      int verified = 0;
      for (size_t i = 0; i < prompt_tasks.size(); ++i) {
        const KeptTask& t = prompt_tasks[i];
        if (t.state != v1::TASK_STATE_DONE) continue;
        ++answered;
        verified += t.verify_state == v1::VERIFY_STATE_VERIFIED;
      }
      const double rate =
          answered > 0 ? static_cast<double>(verified) / answered : 0.0;
      const bool kept =
          answered > 0 &&
          (!request.has_min_pass_rate() || rate >= request.min_pass_rate()) &&
          (!request.has_max_pass_rate() || rate <= request.max_pass_rate());
      for (size_t i = 0; kept && i < prompt_tasks.size(); ++i) {
        KeptTask& t = prompt_tasks[i];
        if (!wanted(t.state, t.verify_state)) continue;
        std::swap(batch.Add(), t);
        if (batch.size() >= kExportReadBatch && !flush()) return false;
      }
      prompt_tasks.clear();
      return true;
    };
    auto export_task = [&](const StoredTask& stored) -> bool {
      if (!by_pass_rate) return keep_task(stored);
      if (!prompt_tasks.empty() &&
          prompt_tasks[0].prompt_seq != stored.task.prompt_seq() &&
          !release_prompt()) {
        return false;
      }
      prompt_tasks.Add().Set(stored);
      return true;
    };
    RETURN_IF_ERROR(store.ScanTaskRecords(job_id, export_task));
    if (inner.ok() && !stopped && !prompt_tasks.empty()) release_prompt();
    if (inner.ok() && !stopped && !batch.empty()) flush();
    RETURN_IF_ERROR(inner);
    if (stopped) return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace distillery
