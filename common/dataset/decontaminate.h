// Benchmark decontamination for `export --decontaminate FILE`: a prompt
// that shares an n-gram of words (13 by default, the size GPT-3's and
// lm-eval's overlap checks use) with any question of a benchmark is left
// out, so a student is never trained on the test it is measured by.
//
// Words are runs of ASCII letters and digits, lower-cased, with bytes >=
// 0x80 counted as letters (UTF-8 words stay whole); everything else
// separates them, so case and punctuation do not hide an overlap. A
// question shorter than n words matches a prompt holding all of its words
// in a row; one of fewer than kMinQuestionWords words is not indexed (a
// line such as "Question 3" would match half a dataset).
//
// The benchmark is read line by line, never whole, into one sorted array of
// 64-bit n-gram hashes with the line each first came from: about 12 bytes
// per distinct n-gram, so 100,000 questions of 60 words need about 60 MB.
// A hash collision (about 1 in 10^9 prompts for a 100,000-question
// benchmark) drops a prompt wrongly; it never keeps a contaminated one.
// Thread-safe once loaded (Find is const).
#ifndef DISTILLERY_COMMON_DATASET_DECONTAMINATE_H_
#define DISTILLERY_COMMON_DATASET_DECONTAMINATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace distillery {

inline constexpr int kDefaultDecontaminationWords = 13;
inline constexpr int kMinQuestionWords = 4;

struct ContaminationMatch {
  int64_t benchmark_line = 0;  // 1-based line of the question matched
  std::string ngram;           // the shared words, joined by spaces
};

class Decontaminator {
 public:
  // Reads the benchmark at `path`: JSONL whose lines carry the question in
  // "question", "problem", "prompt" or "text" (the first present), when its
  // first non-blank line is a JSON object; else plain text, one question a
  // line. Errors name the file and line.
  static absl::StatusOr<Decontaminator> Load(
      const std::string& path, int ngram_words = kDefaultDecontaminationWords);

  // The first n-gram of `text` that a benchmark question shares, if any.
  std::optional<ContaminationMatch> Find(std::string_view text) const;

  int64_t questions() const { return questions_; }
  int ngram_words() const { return n_; }
  size_t MemoryBytes() const {
    return hashes_.capacity() * sizeof(uint64_t) +
           lines_.capacity() * sizeof(uint32_t);
  }

 private:
  explicit Decontaminator(int n) : n_(n) {}
  void AddQuestion(std::string_view text, uint32_t line);
  void Finish();  // sorts, keeps each hash's first line

  int n_;
  int64_t questions_ = 0;
  std::vector<uint64_t> hashes_;
  std::vector<uint32_t> lines_;     // parallel to hashes_
  std::vector<int> short_lengths_;  // word counts of questions under n words
};

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DATASET_DECONTAMINATE_H_
