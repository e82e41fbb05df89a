#include "common/ratelimit/headers.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

namespace distillery {
namespace {

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::optional<Duration> ParseResetDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) {
      ++j;
    }
    if (j == i) return std::nullopt;
    const std::string number(text.substr(i, j - i));
    char* end = nullptr;
    const double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value)) {
      return std::nullopt;
    }
    double unit_ms;
    if (text.substr(j, 2) == "ms") {
      unit_ms = 1;
      j += 2;
    } else if (j < text.size() && text[j] == 'h') {
      unit_ms = 3'600'000;
      ++j;
    } else if (j < text.size() && text[j] == 'm') {
      unit_ms = 60'000;
      ++j;
    } else if (j < text.size() && text[j] == 's') {
      unit_ms = 1000;
      ++j;
    } else {
      return std::nullopt;
    }
    total_ms += value * unit_ms;
    any = true;
    i = j;
  }
  if (!any) return std::nullopt;
  return std::chrono::duration_cast<Duration>(
      std::chrono::duration<double, std::milli>(total_ms));
}

std::optional<int64_t> ParseRfc3339Millis(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM]
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || t[13] != ':' ||
      t[16] != ':') {
    return std::nullopt;
  }
  auto num = [&](size_t at, size_t len) { return ParseInt(t.substr(at, len)); };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2),
       mi = num(14, 2), s = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 ||
      *d > 31 || *h > 23 || *mi > 59 || *s > 60) {
    return std::nullopt;
  }
  size_t i = 19;
  double frac = 0;
  if (i < t.size() && t[i] == '.') {
    size_t j = i + 1;
    double scale = 0.1;
    while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) {
      frac += (t[j] - '0') * scale;
      scale /= 10;
      ++j;
    }
    if (j == i + 1) return std::nullopt;
    i = j;
  }
  int64_t offset_min = 0;
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
    ++i;
  } else if (i + 6 == t.size() && (t[i] == '+' || t[i] == '-') &&
             t[i + 3] == ':') {
    auto oh = num(i + 1, 2), om = num(i + 4, 2);
    if (!oh || !om) return std::nullopt;
    offset_min = (*oh * 60 + *om) * (t[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  const int64_t days = DaysFromCivil(*y, static_cast<unsigned>(*mo),
                                     static_cast<unsigned>(*d));
  const int64_t seconds = days * 86400 + *h * 3600 + *mi * 60 + *s -
                          offset_min * 60;
  return seconds * 1000 + static_cast<int64_t>(std::llround(frac * 1000));
}

RateLimitSnapshot ParseRateLimitHeaders(const TeacherHeaders& headers,
                                        int64_t now_wall_ms) {
  RateLimitSnapshot snap;
  auto until = [&](std::string_view v) -> std::optional<Duration> {
    std::optional<int64_t> at = ParseRfc3339Millis(v);
    if (!at) return std::nullopt;
    return std::chrono::milliseconds(std::max<int64_t>(0, *at - now_wall_ms));
  };
  for (const auto& [name, value] : headers) {
    if (name == "x-ratelimit-limit-requests") {
      snap.limit_requests = ParseInt(value);
    } else if (name == "x-ratelimit-remaining-requests") {
      snap.remaining_requests = ParseInt(value);
    } else if (name == "x-ratelimit-reset-requests") {
      snap.reset_requests = ParseResetDuration(value);
    } else if (name == "x-ratelimit-limit-tokens") {
      snap.limit_tokens = ParseInt(value);
    } else if (name == "x-ratelimit-remaining-tokens") {
      snap.remaining_tokens = ParseInt(value);
    } else if (name == "x-ratelimit-reset-tokens") {
      snap.reset_tokens = ParseResetDuration(value);
    } else if (name == "anthropic-ratelimit-requests-limit") {
      snap.limit_requests = ParseInt(value);
    } else if (name == "anthropic-ratelimit-requests-remaining") {
      snap.remaining_requests = ParseInt(value);
    } else if (name == "anthropic-ratelimit-requests-reset") {
      snap.reset_requests = until(value);
    } else if (name == "anthropic-ratelimit-tokens-limit") {
      snap.limit_tokens = ParseInt(value);
    } else if (name == "anthropic-ratelimit-tokens-remaining") {
      snap.remaining_tokens = ParseInt(value);
    } else if (name == "anthropic-ratelimit-tokens-reset") {
      snap.reset_tokens = until(value);
    }
  }
  return snap;
}

}  // namespace distillery
