#include "common/verify/answer_check.h"

#include <re2/re2.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"

namespace distillery {
namespace {

// The most boxed candidates tried, from the last, when the later ones are
// unbalanced: bounds the work at a few passes over the answer.
constexpr int kMaxBoxedTries = 16;
// Longer strings are not parsed as numbers (they compare as text).
constexpr size_t kMaxNumberChars = 64;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// std::string_view helpers (Debian's Abseil has its own string_view).
bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}
std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  return s;
}
std::string_view Trim(std::string_view s) {
  s = TrimLeft(s);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}
bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The contents of the braced group opening at `open` ('{'), or nullopt when
// it never closes.
std::optional<std::string_view> BracedGroup(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') {
      ++depth;
    } else if (s[i] == '}' && --depth == 0) {
      return s.substr(open + 1, i - open - 1);
    }
  }
  return std::nullopt;
}

// The argument of the box command ending at `after`: a braced group, or
// (`\boxed 5`) the next run of non-space characters.
std::optional<std::string_view> BoxArgument(std::string_view s, size_t after) {
  while (after < s.size() && s[after] == ' ') ++after;
  if (after >= s.size()) return std::nullopt;
  if (s[after] == '{') return BracedGroup(s, after);
  size_t end = after;
  while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end])) &&
         s[end] != '$') {
    ++end;
  }
  if (end == after) return std::nullopt;
  return s.substr(after, end - after);
}

std::optional<std::string> LastBoxed(std::string_view s) {
  // Candidates from the last backwards: "\boxed" and "\fbox".
  size_t from = s.size();
  for (int tries = 0; tries < kMaxBoxedTries && from > 0; ++tries) {
    const std::string_view head = s.substr(0, from);
    const size_t boxed = head.rfind("\\boxed");
    const size_t fbox = head.rfind("\\fbox");
    size_t at;
    size_t length;
    if (boxed != std::string_view::npos &&
        (fbox == std::string_view::npos || boxed > fbox)) {
      at = boxed;
      length = 6;
    } else if (fbox != std::string_view::npos) {
      at = fbox;
      length = 5;
    } else {
      return std::nullopt;
    }
    if (std::optional<std::string_view> arg = BoxArgument(s, at + length)) {
      return std::string(Trim(*arg));
    }
    from = at;
  }
  return std::nullopt;
}

std::optional<std::string> AfterAnswerPhrase(std::string_view s) {
  std::string lower(s);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t best = std::string::npos;
  size_t start = 0;
  for (const char* phrase : {"answer is", "answer:"}) {
    const size_t at = lower.rfind(phrase);
    if (at != std::string::npos && (best == std::string::npos || at > best)) {
      best = at;
      start = at + std::string_view(phrase).size();
    }
  }
  if (best == std::string::npos) return std::nullopt;
  size_t end = s.find('\n', start);
  if (end == std::string_view::npos) end = s.size();
  std::string_view text = Trim(s.substr(start, end - start));
  if (StartsWith(text, ":")) {
    text = TrimLeft(text.substr(1));
  }
  while (!text.empty() && (text.back() == '.' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  if (text.empty()) return std::nullopt;
  return std::string(text);
}

// `s` with \text{X} (and \textbf, \mathrm, \mbox) replaced by X, in one
// pass: each such group's closing brace is dropped with the command.
std::string UnwrapTextCommands(std::string_view s) {
  static constexpr std::string_view kCommands[] = {"\\textbf{", "\\text{",
                                                   "\\mathrm{", "\\mbox{"};
  std::string out;
  out.reserve(s.size());
  std::vector<bool> drop_close;  // per open brace
  for (size_t i = 0; i < s.size();) {
    bool unwrapped = false;
    if (s[i] == '\\') {
      for (std::string_view c : kCommands) {
        if (s.substr(i, c.size()) == c) {
          drop_close.push_back(true);
          i += c.size();
          unwrapped = true;
          break;
        }
      }
    }
    if (unwrapped) continue;
    if (s[i] == '{') {
      drop_close.push_back(false);
    } else if (s[i] == '}' && !drop_close.empty()) {
      const bool drop = drop_close.back();
      drop_close.pop_back();
      if (drop) {
        ++i;
        continue;
      }
    }
    out.push_back(s[i]);
    ++i;
  }
  return out;
}

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s->size());
  size_t i = 0;
  for (size_t at = s->find(from); at != std::string::npos;
       at = s->find(from, i)) {
    out.append(*s, i, at - i);
    out.append(to);
    i = at + from.size();
  }
  out.append(*s, i, std::string::npos);
  *s = std::move(out);
}

// "1,234,567" (3-digit groups, optional sign and decimals) without commas.
bool DropThousandsSeparators(std::string* s) {
  size_t i = (!s->empty() && (*s)[0] == '-') ? 1 : 0;
  const size_t first = i;
  while (i < s->size() && IsDigit((*s)[i])) ++i;
  const size_t lead = i - first;
  if (lead < 1 || lead > 3 || i >= s->size() || (*s)[i] != ',') return false;
  while (i < s->size() && (*s)[i] == ',') {
    for (int d = 1; d <= 3; ++d) {
      if (i + d >= s->size() || !IsDigit((*s)[i + d])) return false;
    }
    i += 4;
  }
  if (i < s->size() && (*s)[i] == '.') {
    ++i;
    if (i >= s->size()) return false;
    while (i < s->size() && IsDigit((*s)[i])) ++i;
  }
  if (i != s->size()) return false;
  std::string out;
  for (char c : *s) {
    if (c != ',') out.push_back(c);
  }
  *s = std::move(out);
  return true;
}

// "2.50" -> "2.5", "3.0" -> "3" for a plain decimal.
void DropTrailingZeros(std::string* s) {
  const size_t dot = s->find('.');
  if (dot == std::string::npos) return;
  for (size_t i = 0; i < s->size(); ++i) {
    const char c = (*s)[i];
    if (i == dot) continue;
    if (!(IsDigit(c) || (i == 0 && c == '-'))) return;
  }
  while (s->size() > dot + 1 && s->back() == '0') s->pop_back();
  if (s->back() == '.') s->pop_back();
  if (s->empty() || *s == "-") *s = "0";
}

// A plain decimal ("12", "-0.5", ".5").
std::optional<long double> Decimal(std::string_view s) {
  if (s.empty() || s.size() > kMaxNumberChars) return std::nullopt;
  size_t i = 0;
  if (s[0] == '-') i = 1;
  bool digits = false, dot = false;
  for (size_t j = i; j < s.size(); ++j) {
    if (IsDigit(s[j])) {
      digits = true;
    } else if (s[j] == '.' && !dot) {
      dot = true;
    } else {
      return std::nullopt;
    }
  }
  if (!digits) return std::nullopt;
  return std::strtold(std::string(s).c_str(), nullptr);
}

std::optional<long double> Quotient(std::optional<long double> a,
                                    std::optional<long double> b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

// The value of a normalised answer, when it is a number.
std::optional<long double> NumberValue(std::string_view s) {
  if (s.empty() || s.size() > kMaxNumberChars) return std::nullopt;
  if (s.back() == '%') s.remove_suffix(1);
  bool negative = false;
  if (!s.empty() && s[0] == '-' && StartsWith(s.substr(1), "\\frac")) {
    negative = true;
    s.remove_prefix(1);
  }
  std::optional<long double> value;
  if (StartsWith(s, "\\frac")) {
    const std::string_view rest = s.substr(5);
    if (!rest.empty() && rest[0] == '{') {
      std::optional<std::string_view> num = BracedGroup(rest, 0);
      if (!num) return std::nullopt;
      const size_t after = num->size() + 2;
      if (after >= rest.size() || rest[after] != '{') return std::nullopt;
      std::optional<std::string_view> den = BracedGroup(rest, after);
      if (!den || after + den->size() + 2 != rest.size()) return std::nullopt;
      value = Quotient(Decimal(*num), Decimal(*den));
    } else if (rest.size() == 2 && IsDigit(rest[0]) && IsDigit(rest[1])) {
      value = Quotient(rest[0] - '0', rest[1] - '0');
    }
  } else if (const size_t slash = s.find('/'); slash != std::string_view::npos) {
    value = Quotient(Decimal(s.substr(0, slash)), Decimal(s.substr(slash + 1)));
  } else {
    value = Decimal(s);
  }
  if (!value || !std::isfinite(*value)) return std::nullopt;
  return negative ? -*value : *value;
}

}  // namespace

std::optional<std::string> ExtractFinalAnswer(std::string_view answer) {
  if (std::optional<std::string> boxed = LastBoxed(answer)) return boxed;
  return AfterAnswerPhrase(answer);
}

std::string NormalizeMathAnswer(std::string_view input) {
  std::string s = UnwrapTextCommands(input);
  ReplaceAll(&s, "\\dfrac", "\\frac");
  ReplaceAll(&s, "\\tfrac", "\\frac");
  ReplaceAll(&s, "^{\\circ}", "");
  ReplaceAll(&s, "^\\circ", "");
  ReplaceAll(&s, "\xC2\xB0", "");  // °
  ReplaceAll(&s, "\\%", "%");
  for (std::string_view spacing : {"\\left", "\\right", "\\!", "\\,", "\\;",
                                   "\\:", "\\ "}) {
    ReplaceAll(&s, spacing, "");
  }
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '$' || std::isspace(static_cast<unsigned char>(c))) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  if (!out.empty() && out[0] == '+') out.erase(0, 1);
  DropThousandsSeparators(&out);
  DropTrailingZeros(&out);
  return out;
}

bool MathAnswersMatch(std::string_view extracted, std::string_view reference) {
  const std::string a = NormalizeMathAnswer(extracted);
  const std::string b = NormalizeMathAnswer(reference);
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  const std::optional<long double> x = NumberValue(a);
  const std::optional<long double> y = NumberValue(b);
  if (!x || !y) return false;
  const long double scale = std::max(std::fabs(*x), std::fabs(*y));
  return std::fabs(*x - *y) <= 1e-9L * scale;
}

absl::StatusOr<AnswerChecker> AnswerChecker::Create(const std::string& spec) {
  if (spec == "math") return AnswerChecker(spec, Mode::kMath, nullptr);
  if (spec == "exact") return AnswerChecker(spec, Mode::kExact, nullptr);
  if (StartsWith(spec, "regex:")) {
    const std::string pattern = spec.substr(6);
    if (pattern.empty()) {
      return absl::InvalidArgumentError("--verify regex: empty pattern");
    }
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(pattern, options);
    if (!re->ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--verify regex: bad pattern \"", pattern, "\": ", re->error()));
    }
    return AnswerChecker(spec, Mode::kRegex, std::move(re));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--verify: unknown check \"", spec,
      "\"; use math, exact or regex:PATTERN"));
}

CheckOutcome AnswerChecker::Check(
    std::string_view answer, const std::optional<std::string>& reference) const {
  CheckOutcome outcome;
  switch (mode_) {
    case Mode::kMath: {
      std::optional<std::string> found = ExtractFinalAnswer(answer);
      if (found) outcome.extracted = *found;
      if (!reference) return outcome;
      // A reference written as a worked answer counts by its final answer.
      std::string expected = *reference;
      if (expected.find("\\boxed") != std::string::npos) {
        if (std::optional<std::string> boxed = LastBoxed(expected)) {
          expected = *boxed;
        }
      }
      outcome.verified = found && MathAnswersMatch(*found, expected);
      return outcome;
    }
    case Mode::kExact: {
      outcome.extracted = std::string(Trim(answer));
      if (!reference) return outcome;
      outcome.verified = outcome.extracted == Trim(*reference);
      return outcome;
    }
    case Mode::kRegex: {
      re2::StringPiece groups[2];
      const int n = re_->NumberOfCapturingGroups() >= 1 ? 2 : 1;
      const re2::StringPiece text(answer.data(), answer.size());
      outcome.verified =
          re_->Match(text, 0, text.size(), RE2::UNANCHORED, groups, n);
      if (*outcome.verified) {
        const re2::StringPiece& g = groups[n - 1];
        outcome.extracted = std::string(g.data() ? g.data() : "", g.size());
      }
      return outcome;
    }
  }
  return outcome;
}

}  // namespace distillery
