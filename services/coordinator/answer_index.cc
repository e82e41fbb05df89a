#include "services/coordinator/answer_index.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "common/base/status_macros.h"
#include "common/dedup/keys.h"
#include "common/dedup/minhash.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

// The value of `key` as the pending commit has it, else as the store has it.
template <typename StoreLookup>
absl::StatusOr<std::optional<std::string>> FindPendingOrStored(
    const std::map<std::string, std::string>& pending, const std::string& key,
    StoreLookup&& lookup) {
  if (auto it = pending.find(key); it != pending.end()) {
    return std::optional<std::string>(it->second);
  }
  return lookup();
}

// The text duplicates are judged by: the content, and an answer's tool
// calls by name and arguments (not their ids, which every call has its
// own), so answers that only call tools are not all "identical".
std::string DedupText(const v1::Answer& answer) {
  if (answer.tool_calls_json().empty()) return answer.content();
  std::string text = answer.content();
  const nlohmann::json calls =
      nlohmann::json::parse(answer.tool_calls_json(), nullptr, false);
  if (!calls.is_array()) return text + "\n" + answer.tool_calls_json();
  for (const nlohmann::json& call : calls) {
    if (!call.is_object()) continue;
    const nlohmann::json function = call.value("function", nlohmann::json());
    if (!function.is_object()) continue;
    text += "\n" + function.value("name", std::string()) + " " +
            function.value("arguments", std::string());
  }
  return text;
}

}  // namespace

absl::StatusOr<bool> AnswerIndex::Answered(const std::string& request_key,
                                           const PendingAnswers& pending) {
  if (pending.answers.count(request_key) > 0) return true;
  return store_.HasAnswer(request_key);
}

absl::StatusOr<AnswerIndex::Kind> AnswerIndex::Add(v1::Answer answer,
                                                   const v1::Task& task,
                                                   PendingAnswers* pending) {
  const std::string key = answer.request_key();
  const std::string hash = AnswerContentHash(DedupText(answer));
  ASSIGN_OR_RETURN(
      std::optional<std::string> first,
      FindPendingOrStored(pending->content, hash,
                          [&] { return store_.FindContent(hash); }));
  Kind kind = Kind::kNew;
  if (first && *first != key) {
    // Stored once: the duplicate keeps its provenance, not the text.
    answer.set_duplicate_of(*first);
    answer.clear_content();
    answer.clear_reasoning();
    answer.clear_reasoning_blocks();
    answer.clear_raw_body();
    kind = Kind::kDuplicate;
  } else {
    pending->batch->content.emplace_back(hash, key);
    pending->content.emplace(hash, key);
    if (near_duplicates_) {
      RETURN_IF_ERROR(IndexNearDuplicates(&answer, pending));
    }
    if (!answer.near_duplicate_of().empty()) kind = Kind::kNearDuplicate;
  }
  const size_t index = pending->batch->answers.size();
  pending->answers.emplace(key, index);
  pending->batch->answers.push_back(std::move(answer));
  pending->batch->task_answers.push_back(
      {task.job_id(), task.prompt_seq(), task.sample(), index});
  return kind;
}

absl::Status AnswerIndex::IndexNearDuplicates(v1::Answer* answer,
                                              PendingAnswers* pending) {
  answer->set_minhash(MinHashSignature(DedupText(*answer)));
  std::vector<std::string> checked;
  for (std::string& band : LshBandKeys(answer->minhash())) {
    ASSIGN_OR_RETURN(std::optional<std::string> first,
                     FindPendingOrStored(pending->lsh, band, [&] {
                       return store_.FindLsh(band);
                     }));
    if (!first) {
      pending->lsh.emplace(band, answer->request_key());
      pending->batch->lsh.emplace_back(std::move(band), answer->request_key());
      continue;
    }
    if (!answer->near_duplicate_of().empty() ||
        *first == answer->request_key() ||
        std::find(checked.begin(), checked.end(), *first) != checked.end()) {
      continue;
    }
    checked.push_back(*first);
    std::optional<v1::Answer> other;
    if (auto in_batch = pending->answers.find(*first);
        in_batch != pending->answers.end()) {
      other = pending->batch->answers[in_batch->second];
    } else {
      ASSIGN_OR_RETURN(other, store_.GetAnswer(*first));
    }
    if (other && EstimateJaccard(answer->minhash(), other->minhash()) >=
                     kDefaultNearDuplicateThreshold) {
      answer->set_near_duplicate_of(*first);
    }
  }
  return absl::OkStatus();
}

}  // namespace distillery
