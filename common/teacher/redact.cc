#include "common/teacher/redact.h"

#include <cstdint>
#include <utility>

namespace distillery {
namespace {

// Base64 forms shorter than this are left out: a few characters would match
// innocent text, and a key that short has bigger problems.
constexpr size_t kMinBase64 = 12;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte written as two hex digits at text[at], or -1.
int Hex2At(std::string_view text, size_t at) {
  if (at + 2 > text.size()) return -1;
  const int hi = HexValue(text[at]), lo = HexValue(text[at + 1]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// The code unit written as four hex digits at text[at], or -1.
int Hex4At(std::string_view text, size_t at) {
  const int hi = Hex2At(text, at), lo = Hex2At(text, at + 2);
  return hi < 0 || lo < 0 ? -1 : hi * 256 + lo;
}

// How many bytes at text[at] write the byte `c` in one of the forms the
// header lists (0: none). Greedy: the first form that fits is taken.
size_t MatchChar(std::string_view text, size_t at, char c) {
  if (at >= text.size()) return 0;
  const auto code = static_cast<unsigned char>(c);
  const char t = text[at];
  if (t == c) return 1;
  if ((c == '+' && t == ' ') || (c == ' ' && t == '+')) return 1;
  if (t == '\\') {
    // JSON escapes, however many times the text was escaped: a run of
    // backslashes, then the escape.
    size_t p = at;
    while (p < text.size() && text[p] == '\\') ++p;
    if (c == '\\') return p - at;
    if (p < text.size() && text[p] == 'u' && Hex4At(text, p + 1) == code) {
      return p + 5 - at;
    }
    if ((c == '/' || c == '"') && p < text.size() && text[p] == c) {
      return p + 1 - at;
    }
    return 0;
  }
  if (t == '%') {
    // %XX, or %25XX (the '%' itself encoded) however many times.
    size_t p = at + 1;
    while (true) {
      const int value = Hex2At(text, p);
      if (value == code) return p + 2 - at;
      if (value != 0x25) return 0;
      p += 2;
    }
  }
  if (t == '&' && at + 1 < text.size() && text[at + 1] == '#') {
    size_t p = at + 2;
    const bool hex = p < text.size() && (text[p] == 'x' || text[p] == 'X');
    if (hex) ++p;
    int value = 0;
    const size_t digits = p;
    while (p < text.size() && p - digits < 8) {
      const int d = HexValue(text[p]);
      if (d < 0 || (!hex && d > 9)) break;
      value = value * (hex ? 16 : 10) + d;
      ++p;
    }
    if (p > digits && p < text.size() && text[p] == ';' && value == code) {
      return p + 1 - at;
    }
  }
  return 0;
}

std::string Base64(std::string_view bytes, bool url_safe) {
  static constexpr char kStandard[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static constexpr char kUrlSafe[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char* alphabet = url_safe ? kUrlSafe : kStandard;
  std::string out;
  uint32_t bits = 0;
  int pending = 0;
  for (unsigned char b : bytes) {
    bits = (bits << 8) | b;
    pending += 8;
    while (pending >= 6) {
      pending -= 6;
      out.push_back(alphabet[(bits >> pending) & 63]);
    }
  }
  if (pending > 0) out.push_back(alphabet[(bits << (6 - pending)) & 63]);
  return out;
}

}  // namespace

SecretRedactor::SecretRedactor(std::string_view secret) {
  if (secret.empty()) return;
  forms_.emplace_back(secret);
  // With `a` bytes before it in a group of three, the key's own characters
  // in the encoding are those from ceil(8a/6) to floor(8(a+n)/6): the ones
  // before mix in the preceding bytes, the one after the following bytes.
  for (bool url_safe : {false, true}) {
    for (size_t a = 0; a < 3; ++a) {
      const std::string encoded =
          Base64(std::string(a, '\0') + std::string(secret), url_safe);
      const size_t begin = (8 * a + 5) / 6;
      const size_t end = 8 * (a + secret.size()) / 6;
      if (end < begin + kMinBase64) continue;
      std::string form = encoded.substr(begin, end - begin);
      bool seen = false;
      for (const std::string& f : forms_) seen = seen || f == form;
      if (!seen) forms_.push_back(std::move(form));
    }
  }
  for (const std::string& form : forms_) {
    const auto first = static_cast<unsigned char>(form[0]);
    starts_[first] = true;
    if (first == '+') starts_[' '] = true;
    if (first == ' ') starts_['+'] = true;
  }
  starts_['\\'] = starts_['%'] = starts_['&'] = true;
}

size_t SecretRedactor::MatchAt(std::string_view text, size_t at,
                               std::string_view form) const {
  size_t p = at;
  for (char c : form) {
    const size_t n = MatchChar(text, p, c);
    if (n == 0) return 0;
    p += n;
  }
  return p - at;
}

std::pair<size_t, size_t> SecretRedactor::Find(std::string_view text,
                                               size_t from) const {
  for (size_t i = from; i < text.size(); ++i) {
    if (!starts_[static_cast<unsigned char>(text[i])]) continue;
    for (const std::string& form : forms_) {
      if (const size_t n = MatchAt(text, i, form); n > 0) return {i, n};
    }
  }
  return {text.size(), 0};
}

bool SecretRedactor::Mentions(std::string_view text) const {
  return !forms_.empty() && Find(text, 0).second > 0;
}

std::string SecretRedactor::Redact(std::string text) const {
  if (forms_.empty()) return text;
  std::pair<size_t, size_t> match = Find(text, 0);
  if (match.second == 0) return text;
  std::string out;
  out.reserve(text.size());
  size_t done = 0;
  while (match.second > 0) {
    out.append(text, done, match.first - done);
    out.append(kMark);
    done = match.first + match.second;
    match = Find(text, done);
  }
  out.append(text, done, std::string::npos);
  return out;
}

std::string RedactSecret(std::string text, std::string_view secret) {
  return SecretRedactor(secret).Redact(std::move(text));
}

}  // namespace distillery
