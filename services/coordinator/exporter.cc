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

absl::Status ExportJobs(Store& store, const v1::ExportRequest& request,
                        const std::vector<v1::Job>& jobs,
                        const std::function<bool(v1::ExportRecord&&)>& emit,
                        ExportCounts* counts) {
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
  for (const v1::Job& job : jobs) {
    if (!filter.MatchesJob(job.spec())) continue;
    const std::string& job_id = job.id();
    absl::Status inner;
    bool stopped = false;
    // One record; false (setting `inner` or `stopped`) ends the export.
    // `task` and `prompt` are moved into the record (the prompt only on its
    // last use: `shared` when the next task is another sample of it).
    auto export_record = [&](v1::Task& task, v1::Prompt& prompt, bool shared,
                             std::optional<v1::Answer>* answer) -> bool {
      if (!filter.MatchesPrompt(prompt)) return true;
      v1::ExportRecord record;
      record.set_job_id(job_id);
      if (task.state() == v1::TASK_STATE_DONE) {
        if (!*answer) {
          inner = absl::DataLossError(
              absl::StrCat("job ", job_id, ": answer missing for ",
                           HexKey(task.request_key())));
          return false;
        }
        if (!(*answer)->duplicate_of().empty()) {
          if (!request.include_duplicates()) {
            ++counts->duplicates_left_out;
            return true;
          }
          // The text is the first answer's: without it the record would be
          // a duplicate with no content, so a failed or empty read ends the
          // export with the error instead.
          absl::StatusOr<std::optional<v1::Answer>> first =
              store.GetAnswer((*answer)->duplicate_of());
          if (!first.ok() || !*first) {
            metrics::StoreError("export");
            inner = !first.ok()
                        ? first.status()
                        : absl::DataLossError(absl::StrCat(
                              "job ", job_id, ": the answer ",
                              HexKey(task.request_key()), " repeats ",
                              HexKey((*answer)->duplicate_of()),
                              ", which is missing"));
            return false;
          }
          (*answer)->set_content((*first)->content());
          (*answer)->set_reasoning((*first)->reasoning());
          (*answer)->set_reasoning_blocks((*first)->reasoning_blocks());
          (*answer)->set_minhash((*first)->minhash());
        }
        if (!filter.MatchesAnswer(**answer)) return true;
        if (repeats) {
          absl::StatusOr<bool> first = repeats->FirstTime(task.request_key());
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
          absl::StatusOr<bool> admit = near_dups->Admit(**answer);
          if (!admit.ok()) {
            inner = admit.status();
            return false;
          }
          if (!*admit) {
            ++counts->near_duplicates_left_out;
            return true;
          }
        }
        // The signature is for the coordinator, and no export format
        // writes the raw body (kept in the store for provenance; bulk reads
        // leave it out): keep them off the wire, which halves an export's
        // bytes.
        (*answer)->clear_minhash();
        (*answer)->clear_raw_body();
        *record.mutable_answer() = std::move(**answer);
      }
      if (shared) {
        *record.mutable_prompt() = prompt;
      } else {
        *record.mutable_prompt() = std::move(prompt);
      }
      *record.mutable_task() = std::move(task);
      metrics::RecordsExported(1);
      if (!emit(std::move(record))) {
        stopped = true;
        return false;
      }
      return true;
    };
    // Tasks are read in order and handled in batches, so that their prompts
    // and answers come from one MultiGet each instead of a read per record.
    // An answer is read from the copy kept under its task's key, in the
    // order of the scan; by request key (a random read: answers are keyed
    // by hash) when there is no copy, as for a cache hit, or when the
    // near-duplicate filter needs the stored signatures, which the copies
    // leave out.
    const bool read_copies = !near_dups;
    std::vector<v1::Task> batch;
    auto flush = [&]() -> bool {
      std::vector<int64_t> seqs;
      std::vector<std::pair<int64_t, int32_t>> done;
      for (const v1::Task& t : batch) {
        if (seqs.empty() || seqs.back() != t.prompt_seq()) {
          seqs.push_back(t.prompt_seq());
        }
        if (t.state() == v1::TASK_STATE_DONE) {
          done.emplace_back(t.prompt_seq(), t.sample());
        }
      }
      absl::StatusOr<std::vector<std::optional<v1::Prompt>>> prompts =
          store.GetPrompts(job_id, seqs);
      absl::StatusOr<std::vector<std::optional<v1::Answer>>> answers =
          read_copies ? store.GetTaskAnswers(job_id, done)
                      : std::vector<std::optional<v1::Answer>>(done.size());
      if (!prompts.ok() || !answers.ok()) {
        inner = prompts.ok() ? answers.status() : prompts.status();
        return false;
      }
      // The tasks whose copy is missing, or is of an earlier answer (the
      // task was asked again and answered from the cache).
      std::vector<size_t> missing;
      std::vector<std::string> keys;
      for (size_t i = 0, a = 0; i < batch.size(); ++i) {
        if (batch[i].state() != v1::TASK_STATE_DONE) continue;
        const std::optional<v1::Answer>& copy = (*answers)[a];
        if (!copy || copy->request_key() != batch[i].request_key()) {
          missing.push_back(a);
          keys.push_back(batch[i].request_key());
        }
        ++a;
      }
      if (!keys.empty()) {
        absl::StatusOr<std::vector<std::optional<v1::Answer>>> by_key =
            store.GetAnswers(keys);
        if (!by_key.ok()) {
          inner = by_key.status();
          return false;
        }
        for (size_t m = 0; m < missing.size(); ++m) {
          (*answers)[missing[m]] = std::move((*by_key)[m]);
        }
      }
      size_t p = 0, a = 0;
      for (size_t i = 0; i < batch.size(); ++i) {
        v1::Task& t = batch[i];
        while (seqs[p] != t.prompt_seq()) ++p;
        const bool shared = i + 1 < batch.size() &&
                            batch[i + 1].prompt_seq() == t.prompt_seq();
        if (!(*prompts)[p]) {
          inner = absl::DataLossError(absl::StrCat(
              "job ", job_id, ": prompt missing for task ", t.prompt_seq()));
          return false;
        }
        std::optional<v1::Answer> none;
        std::optional<v1::Answer>* answer =
            t.state() == v1::TASK_STATE_DONE ? &(*answers)[a++] : &none;
        if (!export_record(t, *(*prompts)[p], shared, answer)) return false;
      }
      batch.clear();
      return true;
    };
    auto keep_task = [&](const v1::Task& task) -> bool {
      const bool done = task.state() == v1::TASK_STATE_DONE;
      const bool failed = task.state() == v1::TASK_STATE_FAILED;
      if (!(done && want_done) && !(failed && want_failed)) return true;
      if (done && request.verified_only() &&
          task.verify_state() != v1::VERIFY_STATE_VERIFIED) {
        return true;
      }
      batch.push_back(task);
      return batch.size() < kExportReadBatch || flush();
    };
    // The pass-rate filters judge a prompt by all its samples, which are
    // adjacent in the scan: one prompt's tasks are held until the next
    // prompt starts (at most max_samples of them).
    const bool by_pass_rate =
        request.has_min_pass_rate() || request.has_max_pass_rate();
    std::vector<v1::Task> prompt_tasks;
    auto release_prompt = [&]() -> bool {
      int answered = 0;
      int verified = 0;
      for (const v1::Task& t : prompt_tasks) {
        if (t.state() != v1::TASK_STATE_DONE) continue;
        ++answered;
        verified += t.verify_state() == v1::VERIFY_STATE_VERIFIED;
      }
      const double rate =
          answered > 0 ? static_cast<double>(verified) / answered : 0.0;
      const bool kept =
          answered > 0 &&
          (!request.has_min_pass_rate() || rate >= request.min_pass_rate()) &&
          (!request.has_max_pass_rate() || rate <= request.max_pass_rate());
      bool go_on = true;
      for (const v1::Task& t : prompt_tasks) {
        if (kept && go_on) go_on = keep_task(t);
      }
      prompt_tasks.clear();
      return go_on;
    };
    auto export_task = [&](const v1::Task& task) -> bool {
      if (!by_pass_rate) return keep_task(task);
      if (!prompt_tasks.empty() &&
          prompt_tasks.front().prompt_seq() != task.prompt_seq() &&
          !release_prompt()) {
        return false;
      }
      prompt_tasks.push_back(task);
      return true;
    };
    RETURN_IF_ERROR(store.ScanTasks(job_id, 0, 0, export_task));
    if (inner.ok() && !stopped && !prompt_tasks.empty()) release_prompt();
    if (inner.ok() && !stopped && !batch.empty()) flush();
    RETURN_IF_ERROR(inner);
    if (stopped) return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace distillery
