#include "common/teacher/chat_completion_scan.h"

#include <cstddef>
#include <limits>

#include "common/base/json_depth.h"
#include "common/base/json_string.h"

namespace distillery {
namespace {

// A strict one-pass JSON reader over `s`. Every method returns false both
// for invalid JSON and for a shape ScanChatCompletion declines: either way
// the caller falls back to nlohmann, which tells them apart.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  bool AtEnd() {
    SkipWs();
    return i_ == s_.size();
  }

  void SkipWs() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++i_;
    }
  }

  // Consumes `c` after optional whitespace.
  bool Expect(char c) {
    SkipWs();
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }

  // The next non-whitespace byte, not consumed; '\0' at the end.
  char Peek() {
    SkipWs();
    return i_ < s_.size() ? s_[i_] : '\0';
  }

  // A string value, decoded into *out (or only checked when out is null).
  bool String(std::string* out) {
    if (!Expect('"')) return false;
    return StringBody(out);
  }

  // An object key; keys written with escapes are declined (a caller would
  // have to decode them to compare).
  bool Key(std::string_view* key) {
    if (!Expect('"')) return false;
    const size_t start = i_;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        *key = s_.substr(start, i_ - start);
        ++i_;
        return Expect(':');
      }
      if (c == '\\' || c < 0x20) return false;
      if (c >= 0x80) {
        const size_t len = Utf8Length(i_);
        if (len == 0) return false;
        i_ += len;
      } else {
        ++i_;
      }
    }
    return false;
  }

  // A number; *is_int and *value set when it is an integer in int64.
  bool Number(bool* is_int, int64_t* value) {
    SkipWs();
    const size_t start = i_;
    const bool negative = i_ < s_.size() && s_[i_] == '-';
    if (negative) ++i_;
    if (i_ >= s_.size() || !IsDigit(s_[i_])) return false;
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    }
    const size_t int_end = i_;
    bool integral = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      integral = false;
      ++i_;
      if (i_ >= s_.size() || !IsDigit(s_[i_])) return false;
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      integral = false;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !IsDigit(s_[i_])) return false;
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
    }
    *is_int = false;
    if (!integral) return true;
    // Accumulated negatively, so INT64_MIN fits.
    int64_t v = 0;
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    for (size_t k = start + (negative ? 1 : 0); k < int_end; ++k) {
      const int d = s_[k] - '0';
      if (v < (kMin + d) / 10) return true;  // overflow: not an int64
      v = v * 10 - d;
    }
    if (!negative) {
      if (v == kMin) return true;
      v = -v;
    }
    *is_int = true;
    *value = v;
    return true;
  }

  // Any value inside a container at level `depth` (the top-level value is
  // inside level 0), checked and skipped. An object or array it opens is at
  // level depth + 1: over kMaxJsonDepth is declined, so that the nlohmann
  // path refuses it as CheckJsonDepth says.
  bool Skip(int depth) {
    switch (Peek()) {
      case '"':
        return String(nullptr);
      case '{': {
        if (depth >= kMaxJsonDepth) return false;
        ++i_;
        if (Peek() == '}') {
          ++i_;
          return true;
        }
        while (true) {
          if (!String(nullptr) || !Expect(':') || !Skip(depth + 1)) {
            return false;
          }
          if (Peek() == ',') {
            ++i_;
            continue;
          }
          return Expect('}');
        }
      }
      case '[': {
        if (depth >= kMaxJsonDepth) return false;
        ++i_;
        if (Peek() == ']') {
          ++i_;
          return true;
        }
        while (true) {
          if (!Skip(depth + 1)) return false;
          if (Peek() == ',') {
            ++i_;
            continue;
          }
          return Expect(']');
        }
      }
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default: {
        bool is_int;
        int64_t v;
        return Number(&is_int, &v);
      }
    }
  }

  // Walks an object (the '{' next), calling on_key(key) with the value
  // next; on_key must consume it.
  template <typename OnKey>
  bool Object(OnKey on_key) {
    if (!Expect('{')) return false;
    if (Peek() == '}') {
      ++i_;
      return true;
    }
    while (true) {
      std::string_view key;
      if (!Key(&key) || !on_key(key)) return false;
      if (Peek() == ',') {
        ++i_;
        continue;
      }
      return Expect('}');
    }
  }

  // As adapter::StringField reads a value: a string's text, else "".
  bool StringOrOther(std::string* out, int depth) {
    if (Peek() == '"') return String(out);
    out->clear();
    return Skip(depth);
  }

  // As adapter::IntField reads a value: an integer, else 0 for a
  // non-number. Declines numbers that are not int64 integers.
  bool IntOrOther(int64_t* out, int depth) {
    const char c = Peek();
    if (c == '-' || IsDigit(c)) {
      bool is_int = false;
      return Number(&is_int, out) && is_int;
    }
    *out = 0;
    return Skip(depth);
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  // The length of the valid UTF-8 sequence at s_[at] (a byte >= 0x80), or
  // 0: the ranges of RFC 3629, as nlohmann's lexer checks them.
  size_t Utf8Length(size_t at) const {
    bool valid = false;
    const size_t len = Utf8Sequence(s_, at, &valid);
    return valid ? len : 0;
  }

  bool Hex4(uint32_t* out) {
    if (i_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_ + k];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    i_ += 4;
    *out = v;
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // After the opening quote: up to and including the closing one.
  bool StringBody(std::string* out) {
    if (out != nullptr) out->clear();
    while (true) {
      // A run of bytes that stand for themselves, copied in one append.
      const size_t run = i_;
      while (i_ < s_.size()) {
        const auto c = static_cast<unsigned char>(s_[i_]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        if (c >= 0x80) {
          const size_t len = Utf8Length(i_);
          if (len == 0) return false;
          i_ += len;
        } else {
          ++i_;
        }
      }
      if (out != nullptr) out->append(s_.data() + run, i_ - run);
      if (i_ >= s_.size()) return false;
      const char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') return false;  // a control character
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      char plain;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          plain = e;
          break;
        case 'b':
          plain = '\b';
          break;
        case 'f':
          plain = '\f';
          break;
        case 'n':
          plain = '\n';
          break;
        case 'r':
          plain = '\r';
          break;
        case 't':
          plain = '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low half
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') {
              return false;
            }
            i_ += 2;
            if (!Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          if (out != nullptr) AppendUtf8(cp, out);
          continue;
        }
        default:
          return false;
      }
      if (out != nullptr) out->push_back(plain);
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Sets bit `bit` of *seen; false if it was set (a key given twice).
bool First(unsigned bit, unsigned* seen) {
  if (*seen & (1u << bit)) return false;
  *seen |= 1u << bit;
  return true;
}

bool ReadMessage(Scanner& in, ChatCompletionFields* out) {
  unsigned seen = 0;
  return in.Object([&](std::string_view key) {
    if (key == "content") {
      if (!First(0, &seen)) return false;
      const char c = in.Peek();
      if (c == 'n') {  // null
        out->content.clear();
        return in.Skip(3);
      }
      return c == '"' && in.String(&out->content);
    }
    if (key == "reasoning") {
      return First(1, &seen) && in.StringOrOther(&out->reasoning, 3);
    }
    if (key == "reasoning_content") {
      return First(2, &seen) && in.StringOrOther(&out->reasoning_content, 3);
    }
    // Tool calls: declined, for the nlohmann path to read.
    if (key == "tool_calls") return in.Peek() == 'n' && in.Skip(3);
    return in.Skip(3);
  });
}

bool ReadFirstChoice(Scanner& in, ChatCompletionFields* out) {
  unsigned seen = 0;
  bool has_message = false;
  const bool ok = in.Object([&](std::string_view key) {
    if (key == "message") {
      if (!First(0, &seen) || in.Peek() != '{') return false;
      has_message = true;
      return ReadMessage(in, out);
    }
    if (key == "finish_reason") {
      return First(1, &seen) && in.StringOrOther(&out->finish_reason, 2);
    }
    // Logprobs: declined, for the nlohmann path to read.
    if (key == "logprobs") return in.Peek() == 'n' && in.Skip(2);
    return in.Skip(2);
  });
  return ok && has_message;
}

bool ReadChoices(Scanner& in, ChatCompletionFields* out) {
  if (!in.Expect('[') || in.Peek() != '{') return false;  // empty: declined
  // More than one choice (a request with n > 1): declined.
  return ReadFirstChoice(in, out) && in.Expect(']');
}

// An object holding one integer field `name` (the *_details objects).
bool ReadDetails(Scanner& in, std::string_view name, bool* has,
                 int64_t* value) {
  unsigned seen = 0;
  return in.Object([&](std::string_view key) {
    if (key == name) {
      *has = true;
      return First(0, &seen) && in.IntOrOther(value, 3);
    }
    return in.Skip(3);
  });
}

bool ReadUsage(Scanner& in, ChatCompletionFields* out) {
  unsigned seen = 0;
  bool prompt_details_object = false;
  bool has_cached = false;
  int64_t cached = 0;
  int64_t cache_hit = 0;
  const bool ok = in.Object([&](std::string_view key) {
    if (key == "prompt_tokens") {
      return First(0, &seen) && in.IntOrOther(&out->prompt_tokens, 2);
    }
    if (key == "completion_tokens") {
      return First(1, &seen) && in.IntOrOther(&out->completion_tokens, 2);
    }
    if (key == "completion_tokens_details") {
      if (!First(2, &seen)) return false;
      if (in.Peek() != '{') return in.Skip(2);
      bool unused = false;
      return ReadDetails(in, "reasoning_tokens", &unused,
                         &out->reasoning_tokens);
    }
    if (key == "prompt_tokens_details") {
      if (!First(3, &seen)) return false;
      if (in.Peek() != '{') return in.Skip(2);
      prompt_details_object = true;
      return ReadDetails(in, "cached_tokens", &has_cached, &cached);
    }
    if (key == "prompt_cache_hit_tokens") {
      return First(4, &seen) && in.IntOrOther(&cache_hit, 2);
    }
    return in.Skip(2);
  });
  out->cached_tokens =
      prompt_details_object && has_cached ? cached : cache_hit;
  return ok;
}

}  // namespace

std::optional<ChatCompletionFields> ScanChatCompletion(std::string_view body) {
  Scanner in(body);
  ChatCompletionFields out;
  unsigned seen = 0;
  bool has_choices = false;
  const bool ok = in.Peek() == '{' && in.Object([&](std::string_view key) {
    if (key == "error") return false;
    if (key == "object") {
      std::string object;
      return First(0, &seen) && in.StringOrOther(&object, 1) &&
             object != "error";
    }
    if (key == "choices") {
      has_choices = true;
      return First(1, &seen) && ReadChoices(in, &out);
    }
    if (key == "usage") {
      if (!First(2, &seen)) return false;
      if (in.Peek() != '{') return in.Skip(1);
      out.has_usage = true;
      return ReadUsage(in, &out);
    }
    if (key == "id") return First(3, &seen) && in.StringOrOther(&out.id, 1);
    return in.Skip(1);
  });
  if (!ok || !has_choices || !in.AtEnd()) return std::nullopt;
  return out;
}

}  // namespace distillery
