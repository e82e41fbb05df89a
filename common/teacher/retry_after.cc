#include "common/teacher/retry_after.h"

#include <array>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "common/teacher/text_util.h"

namespace distillery {
namespace {

std::string_view Trim(std::string_view s) { return text::StripWhitespace(s); }

// A non-negative finite number filling all of `s`, or nullopt.
std::optional<double> ParseNonNegativeNumber(std::string_view s) {
  s = Trim(s);
  if (s.empty()) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value,
                                   std::chars_format::general);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  return value;
}

Duration FromSeconds(double seconds) {
  const double max_seconds =
      std::chrono::duration<double>(kMaxRetryAfter).count();
  if (seconds >= max_seconds) return kMaxRetryAfter;
  return Duration(static_cast<int64_t>(std::llround(seconds * 1e9)));
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeapYear(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int DaysInMonth(int64_t y, int m) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// 1-12 for an English month abbreviation, 0 otherwise.
int MonthNumber(std::string_view token) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun",
      "jul", "aug", "sep", "oct", "nov", "dec"};
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (text::EqualsIgnoreCase(token, kMonths[i]))
      return static_cast<int>(i) + 1;
  }
  return 0;
}

bool IsWeekday(std::string_view token) {
  static constexpr std::array<std::string_view, 7> kDays = {
      "mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  static constexpr std::array<std::string_view, 7> kLongDays = {
      "monday", "tuesday",  "wednesday", "thursday",
      "friday", "saturday", "sunday"};
  for (size_t i = 0; i < kDays.size(); ++i) {
    if (text::EqualsIgnoreCase(token, kDays[i]) ||
        text::EqualsIgnoreCase(token, kLongDays[i])) {
      return true;
    }
  }
  return false;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

int64_t ToInt(std::string_view digits) {
  int64_t value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return value;
}

// Parses "HH:MM:SS".
bool ParseClock(std::string_view token, int* h, int* m, int* s) {
  if (token.size() != 8 || token[2] != ':' || token[5] != ':') return false;
  std::string_view hh = token.substr(0, 2), mm = token.substr(3, 2),
                   ss = token.substr(6, 2);
  if (!AllDigits(hh) || !AllDigits(mm) || !AllDigits(ss)) return false;
  *h = static_cast<int>(ToInt(hh));
  *m = static_cast<int>(ToInt(mm));
  *s = static_cast<int>(ToInt(ss));
  return *h <= 23 && *m <= 59 && *s <= 60;  // 60: a leap second
}

}  // namespace

std::optional<int64_t> ParseHttpDate(std::string_view value) {
  // The three forms RFC 9110 asks recipients to accept:
  //   Sun, 06 Nov 1994 08:49:37 GMT   (IMF-fixdate)
  //   Sunday, 06-Nov-94 08:49:37 GMT  (RFC 850)
  //   Sun Nov  6 08:49:37 1994        (asctime)
  // Each is read as a bag of tokens told apart by shape; in all three the day
  // of the month comes before the year.
  std::vector<std::string_view> tokens;
  size_t start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || value[i] == ' ' || value[i] == ',' ||
        value[i] == '-' || value[i] == '\t') {
      if (i > start) tokens.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  int64_t day = -1, year = -1;
  int month = 0, hour = -1, minute = 0, second = 0;
  bool have_clock = false;
  for (std::string_view token : tokens) {
    if (AllDigits(token)) {
      if (day < 0 && token.size() <= 2) {
        day = ToInt(token);
      } else if (day >= 0 && year < 0 &&
                 (token.size() == 2 || token.size() == 4)) {
        year = ToInt(token);
        // RFC 850's two-digit years: RFC 9110 says to read one that looks
        // more than 50 years ahead as the past century.
        if (token.size() == 2) year += year >= 70 ? 1900 : 2000;
      } else {
        return std::nullopt;
      }
    } else if (!have_clock && ParseClock(token, &hour, &minute, &second)) {
      have_clock = true;
    } else if (month == 0 && MonthNumber(token) != 0) {
      month = MonthNumber(token);
    } else if (IsWeekday(token) || text::EqualsIgnoreCase(token, "GMT") ||
               text::EqualsIgnoreCase(token, "UTC")) {
      continue;
    } else {
      return std::nullopt;
    }
  }
  if (day < 1 || year < 0 || month == 0 || !have_clock) return std::nullopt;
  if (day > DaysInMonth(year, month)) return std::nullopt;
  const int64_t seconds = DaysFromCivil(year, month, day) * 86400 +
                          hour * 3600 + minute * 60 + second;
  return seconds * 1000;
}

std::optional<Duration> ParseRetryAfterMs(std::string_view value) {
  std::optional<double> ms = ParseNonNegativeNumber(value);
  if (!ms) return std::nullopt;
  return FromSeconds(*ms / 1000.0);
}

std::optional<Duration> ParseRetryAfterSeconds(std::string_view value,
                                               int64_t now_wall_millis) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::optional<double> seconds = ParseNonNegativeNumber(value)) {
    return FromSeconds(*seconds);
  }
  std::optional<int64_t> date_millis = ParseHttpDate(value);
  if (!date_millis) return std::nullopt;
  const int64_t wait_millis = *date_millis - now_wall_millis;
  if (wait_millis <= 0) return Duration(0);
  return FromSeconds(static_cast<double>(wait_millis) / 1000.0);
}

std::optional<Duration> ParseRetryAfter(std::string_view retry_after_ms,
                                        std::string_view retry_after,
                                        int64_t now_wall_millis) {
  if (std::optional<Duration> d = ParseRetryAfterMs(retry_after_ms)) return d;
  return ParseRetryAfterSeconds(retry_after, now_wall_millis);
}

}  // namespace distillery
