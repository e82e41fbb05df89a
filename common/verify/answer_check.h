// Answer checks for `submit --verify`: is a teacher's answer right, judged
// against the prompt's reference answer? Three checks, named as the flag
// names them:
//   math           the final answer (the last \boxed{...}, else the text
//                  after the last "answer is" phrase) against the reference,
//                  both normalised (NormalizeMathAnswer), and compared as
//                  numbers where both are numbers (1/2 = 0.5 = \frac{1}{2});
//   exact          the trimmed answer equals the trimmed reference;
//   regex:PATTERN  the answer matches an RE2 pattern (no reference needed).
// Answers are hostile input: every step is linear in the answer's size, with
// no recursion, and RE2 guarantees linear-time matching (std::regex does
// not, and can overflow its stack on long inputs).
// Thread-safe: a checker is immutable once made.
#ifndef DISTILLERY_COMMON_VERIFY_ANSWER_CHECK_H_
#define DISTILLERY_COMMON_VERIFY_ANSWER_CHECK_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace distillery {

struct CheckOutcome {
  // nullopt: nothing to check against (math or exact, no reference).
  std::optional<bool> verified;
  std::string extracted;  // the answer the check looked at; "" when none
};

class AnswerChecker {
 public:
  // `spec` is the --verify value: "math", "exact" or "regex:PATTERN".
  // INVALID_ARGUMENT naming what is wrong otherwise.
  static absl::StatusOr<AnswerChecker> Create(const std::string& spec);

  // Checks `answer` (the final answer, no reasoning trace) against
  // `reference`.
  CheckOutcome Check(std::string_view answer,
                     const std::optional<std::string>& reference) const;
  // False for regex (the pattern is the check).
  bool NeedsReference() const { return mode_ != Mode::kRegex; }
  const std::string& spec() const { return spec_; }

 private:
  enum class Mode { kMath, kExact, kRegex };
  AnswerChecker(std::string spec, Mode mode, std::shared_ptr<const re2::RE2> re)
      : spec_(std::move(spec)), mode_(mode), re_(std::move(re)) {}

  std::string spec_;
  Mode mode_;
  std::shared_ptr<const re2::RE2> re_;  // kRegex only
};

// The math check's parts, public for tests.
// The final answer of `answer`: the contents of its last \boxed{...} or
// \fbox{...} (braces balanced), else the text after the last "answer is",
// "answer:" (case-insensitive) up to the end of its line, without a
// trailing '.'; nullopt when there is neither.
std::optional<std::string> ExtractFinalAnswer(std::string_view answer);
// The canonical form compared: whitespace, '$', \left, \right, \!, \, \;
// \: and a trailing '.' removed; \text{X}, \textbf{X}, \mathrm{X},
// \mbox{X} -> X; \dfrac, \tfrac -> \frac; degrees (^\circ, ^{\circ}, °)
// dropped; thousands separators ("1,234,567" -> "1234567", 3-digit groups
// only); a leading '+' dropped; trailing zeros of a decimal dropped
// ("2.50" -> "2.5", "3.0" -> "3").
std::string NormalizeMathAnswer(std::string_view s);
// True when the normalised forms are equal, or both are numbers of equal
// value: integers, decimals, a/b, \frac{a}{b}, \frac ab (single digits),
// negatives of these, and percentages ("50\%" = "50%" = 50, not 0.5: a
// reference of 50 and an answer of 50% agree, the usual reading of "what
// percent"). Values are compared to a relative 1e-9.
bool MathAnswersMatch(std::string_view extracted, std::string_view reference);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_VERIFY_ANSWER_CHECK_H_
