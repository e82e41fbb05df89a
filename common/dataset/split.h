// Deterministic train/test splits. Each prompt goes to a split chosen by a
// hash of its id (the user's "id", else its line number) and a seed, never
// by its position or job, so all samples of a prompt land together and a
// prompt keeps its split when the dataset grows or is harvested again.
// Thread-safe: a SplitSpec is a value, the functions pure.
#ifndef DISTILLERY_COMMON_DATASET_SPLIT_H_
#define DISTILLERY_COMMON_DATASET_SPLIT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace distillery {

struct SplitSpec {
  struct Part {
    std::string name;
    double fraction = 0;
  };
  std::vector<Part> parts;  // in the order given
};

// Parses "train=0.95,test=0.05". Names: non-empty, unique, letters, digits,
// '_' or '-'; fractions in (0, 1], summing to 1 (within 1e-6).
absl::StatusOr<SplitSpec> ParseSplitSpec(std::string_view text);

// The index in spec.parts of the split for `prompt_id`.
int AssignSplit(const SplitSpec& spec, std::string_view prompt_id,
                uint64_t seed);

// "data.jsonl" -> "data.train.jsonl"; without an extension "data" ->
// "data.train". Only the file name's last extension moves.
std::string SplitPath(const std::string& path, const std::string& name);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_SPLIT_H_
