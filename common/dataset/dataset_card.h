// Dataset cards: the README.md a Hugging Face dataset repository carries,
// written beside an export. YAML front matter the Hub and
// datasets.load_dataset(DIR) read (configs/data_files naming the written
// files and splits, license, task and size categories, language, tags),
// then the provenance a reader needs: teachers and models, the harvest's
// dates, sampling parameters, counts, tokens, cost, the export's filters,
// and a note that each teacher's terms apply to its outputs.
//
// A DatasetCard collects its facts as records stream past (Add*), then
// Render writes the text. Used by the CLI (`export --card`) and by the
// coordinator for clients that have it format the export (the Python
// client), so both write the same card.
// Thread-compatible: one export's object, used by one thread.
#ifndef DISTILLERY_COMMON_DATASET_DATASET_CARD_H_
#define DISTILLERY_COMMON_DATASET_DATASET_CARD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "distillery/v1/client_service.pb.h"

namespace distillery {

// INVALID_ARGUMENT when `options` cannot make a card the Hub reads: a
// license or language that is not an id of letters, digits, '-' and '.',
// or a split name outside the Hub's (letters, digits, '_').
absl::Status CheckCardOptions(const v1::DatasetCardOptions& options,
                              const std::vector<std::string>& split_names);

class DatasetCard {
 public:
  // What the card says about the export itself.
  struct Export {
    v1::ExportRequest request;            // its filters
    std::string format;                   // e.g. "openai"
    std::string reasoning;                // e.g. "drop"
    std::vector<std::string> part_names;  // the splits ("train" alone)
    std::vector<int64_t> part_records;
    int64_t duplicates_left_out = 0;
    int64_t near_duplicates_left_out = 0;
  };

  // Each exported job, as it stood when the export began.
  void AddJob(const v1::Job& job);
  // Each exported record, in the export's order.
  void AddRecord(const v1::ExportRecord& record);

  // The README.md text.
  std::string Render(const v1::DatasetCardOptions& options,
                     const Export& export_facts) const;

 private:
  struct Source {
    std::string teacher, model;
    int64_t answers = 0;
  };

  std::vector<v1::Job> jobs_;
  std::vector<Source> sources_;  // in order of first appearance
  int64_t records_ = 0;
  int64_t failed_ = 0;
  int64_t verified_ = 0, rejected_ = 0, unverifiable_ = 0;  // --verify
  int64_t prompts_ = 0;
  std::string last_job_;
  int64_t last_prompt_seq_ = -1;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, reasoning_tokens_ = 0;
  double cost_usd_ = 0;
  int64_t first_received_ms_ = 0, last_received_ms_ = 0;
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_DATASET_CARD_H_
