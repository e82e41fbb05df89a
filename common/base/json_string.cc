#include "common/base/json_string.h"

#include <array>
#include <cstdint>
#include <cstring>

namespace distillery {
namespace {

// True for the bytes copied as they are: printable ASCII except '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// Whether any of the eight bytes in `word` needs a look: a control byte,
// '"', '\\' or a non-ASCII byte. (The zero-byte test of "Bit Twiddling
// Hacks": exact about whether there is one, which is all that is asked.)
inline bool AnySpecial(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  const uint64_t below_space = (word - kOnes * 0x20) & ~word & kHigh;
  return ((word & kHigh) | below_space | has_zero(word ^ (kOnes * '"')) |
          has_zero(word ^ (kOnes * '\\'))) != 0;
}


void AppendAsciiEscape(unsigned char c, std::string* out) {
  switch (c) {
    case '"':
      out->append("\\\"", 2);
      return;
    case '\\':
      out->append("\\\\", 2);
      return;
    case '\b':
      out->append("\\b", 2);
      return;
    case '\f':
      out->append("\\f", 2);
      return;
    case '\n':
      out->append("\\n", 2);
      return;
    case '\r':
      out->append("\\r", 2);
      return;
    case '\t':
      out->append("\\t", 2);
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out->append(escape, sizeof(escape));
    }
  }
}

}  // namespace

size_t Utf8Sequence(std::string_view text, size_t i, bool* valid) {
  const auto byte = [&](size_t k) {
    return static_cast<unsigned char>(text[k]);
  };
  const unsigned char lead = byte(i);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    *valid = false;
    return 1;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= text.size()) {
      *valid = false;
      return k;
    }
    const unsigned char c = byte(i + k);
    if (c < lo || c > hi) {
      *valid = false;
      return k;
    }
    lo = 0x80, hi = 0xBF;
  }
  *valid = true;
  return n;
}

namespace {

// The offset of the first invalid byte at or after `from`, or text.size().
size_t FirstInvalidUtf8(std::string_view text, size_t from) {
  size_t i = from;
  while (i < text.size()) {
    if (i + 8 <= text.size()) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof(word));
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    bool valid;
    const size_t n = Utf8Sequence(text, i, &valid);
    if (!valid) return i;
    i += n;
  }
  return text.size();
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  return FirstInvalidUtf8(text, 0) == text.size();
}

std::string RepairUtf8(std::string_view text) {
  size_t bad = FirstInvalidUtf8(text, 0);
  if (bad == text.size()) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  size_t run = 0;
  while (bad < text.size()) {
    out.append(text.data() + run, bad - run);
    out.append("\xEF\xBF\xBD", 3);  // U+FFFD
    bool valid;
    run = bad + Utf8Sequence(text, bad, &valid);
    bad = FirstInvalidUtf8(text, run);
  }
  out.append(text.data() + run, text.size() - run);
  return out;
}

void RepairUtf8(std::string* text) {
  if (IsValidUtf8(*text)) return;
  *text = RepairUtf8(std::string_view(*text));
}

std::string_view Utf8Prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return text.substr(0, cut);
}

void AppendJsonEscaped(std::string_view text, std::string* out) {
  const size_t size = text.size();
  size_t run = 0;  // start of the bytes still to copy verbatim
  size_t i = 0;
  while (i < size) {
    if (i + 8 <= size) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof(word));
      if (!AnySpecial(word)) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (kPlain[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      bool valid;
      const size_t n = Utf8Sequence(text, i, &valid);
      if (valid) {
        i += n;
        continue;
      }
      out->append(text.data() + run, i - run);
      out->append("\xEF\xBF\xBD", 3);  // U+FFFD
      i += n;
    } else {
      out->append(text.data() + run, i - run);
      AppendAsciiEscape(c, out);
      ++i;
    }
    run = i;
  }
  out->append(text.data() + run, size - run);
}

}  // namespace distillery
