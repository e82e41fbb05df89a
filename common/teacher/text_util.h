// Small std::string_view helpers for the teacher code (and the one way to
// quote outside text in a message, Printable). Debian 12's Abseil
// is built with its own absl::string_view, distinct from std::string_view, so
// absl/strings functions do not take std::string_view arguments; these few
// stand in for them.
#ifndef DISTILLERY_COMMON_TEACHER_TEXT_UTIL_H_
#define DISTILLERY_COMMON_TEACHER_TEXT_UTIL_H_

#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "common/base/json_string.h"

namespace distillery::text {

inline bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

inline std::string_view StripLeadingWhitespace(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  return s;
}

inline std::string_view StripWhitespace(std::string_view s) {
  s = StripLeadingWhitespace(s);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

inline char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// True when `s` holds a control character (below 0x20, or DEL).
inline bool HasControlChar(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return true;
  }
  return false;
}

// `in` fit to quote in a one-line message: cut to at most `max` bytes
// without splitting a UTF-8 sequence, "..." when cut, control characters as
// spaces.
inline std::string Printable(std::string_view in, size_t max) {
  const std::string_view kept = Utf8Prefix(in, max);
  std::string out;
  out.reserve(kept.size() + 3);
  for (char c : kept) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  if (kept.size() < in.size()) out += "...";
  return out;
}

// An absl::Status message (absl::string_view) as a std::string_view.
inline std::string_view Std(absl::string_view s) {
  return {s.data(), s.size()};
}

// The reverse, for absl::StrCat and friends (Debian's Abseil has its own
// string_view).
inline absl::string_view Absl(std::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace distillery::text

#endif  // DISTILLERY_COMMON_TEACHER_TEXT_UTIL_H_
