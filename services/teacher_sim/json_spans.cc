#include "services/teacher_sim/json_spans.h"

#include <cstddef>

namespace distillery::teacher_sim {
namespace {

constexpr int kMaxDepth = 128;
constexpr size_t kFail = std::string_view::npos;

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() &&
         (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
    ++i;
  }
  return i;
}

// From the opening quote at `i`: the position after the closing one.
size_t SkipString(std::string_view s, size_t i) {
  ++i;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"') return i + 1;
    if (c < 0x20) return kFail;
    if (c == '\\') {
      if (i + 1 >= s.size()) return kFail;
      const char e = s[i + 1];
      if (e == 'u') {
        if (i + 5 >= s.size()) return kFail;
        for (size_t k = i + 2; k < i + 6; ++k) {
          const char h = s[k];
          const bool hex = (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                           (h >= 'A' && h <= 'F');
          if (!hex) return kFail;
        }
        i += 6;
        continue;
      }
      if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return kFail;
      }
      i += 2;
      continue;
    }
    ++i;
  }
  return kFail;
}

size_t SkipNumber(std::string_view s, size_t i) {
  const size_t start = i;
  if (i < s.size() && s[i] == '-') ++i;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (digits == 0) return kFail;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t fraction = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++fraction;
    if (fraction == 0) return kFail;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exponent = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exponent;
    if (exponent == 0) return kFail;
  }
  return i > start ? i : kFail;
}

size_t SkipValue(std::string_view s, size_t i, int depth);

// From '{' or '[' at `i`: the position after the matching close, calling
// `on_member(key, value)` or `on_element(value)` for what is inside.
template <typename OnMember, typename OnElement>
size_t SkipContainer(std::string_view s, size_t i, int depth,
                     const OnMember& on_member, const OnElement& on_element) {
  if (depth > kMaxDepth) return kFail;
  const bool object = s[i] == '{';
  const char close = object ? '}' : ']';
  i = SkipSpace(s, i + 1);
  if (i < s.size() && s[i] == close) return i + 1;
  while (i < s.size()) {
    std::string_view key;
    if (object) {
      if (s[i] != '"') return kFail;
      const size_t key_end = SkipString(s, i);
      if (key_end == kFail) return kFail;
      key = s.substr(i + 1, key_end - i - 2);
      i = SkipSpace(s, key_end);
      if (i >= s.size() || s[i] != ':') return kFail;
      i = SkipSpace(s, i + 1);
    }
    const size_t value_end = SkipValue(s, i, depth + 1);
    if (value_end == kFail) return kFail;
    const std::string_view value = s.substr(i, value_end - i);
    if (object) {
      on_member(key, value);
    } else {
      on_element(value);
    }
    i = SkipSpace(s, value_end);
    if (i >= s.size()) return kFail;
    if (s[i] == close) return i + 1;
    if (s[i] != ',') return kFail;
    i = SkipSpace(s, i + 1);
  }
  return kFail;
}

size_t SkipValue(std::string_view s, size_t i, int depth) {
  if (i >= s.size()) return kFail;
  const auto ignore_member = [](std::string_view, std::string_view) {};
  const auto ignore_element = [](std::string_view) {};
  switch (s[i]) {
    case '"':
      return SkipString(s, i);
    case '{':
    case '[':
      return SkipContainer(s, i, depth, ignore_member, ignore_element);
    case 't':
      return s.substr(i, 4) == "true" ? i + 4 : kFail;
    case 'f':
      return s.substr(i, 5) == "false" ? i + 5 : kFail;
    case 'n':
      return s.substr(i, 4) == "null" ? i + 4 : kFail;
    default:
      return SkipNumber(s, i);
  }
}

template <typename OnMember, typename OnElement>
bool ScanWhole(std::string_view text, char open, const OnMember& on_member,
               const OnElement& on_element) {
  size_t i = SkipSpace(text, 0);
  if (i >= text.size() || text[i] != open) return false;
  const size_t end = SkipContainer(text, i, 1, on_member, on_element);
  return end != kFail && SkipSpace(text, end) == text.size();
}

}  // namespace

bool ObjectMembers(std::string_view text, std::vector<JsonMember>* members) {
  members->clear();
  return ScanWhole(
      text, '{',
      [members](std::string_view key, std::string_view value) {
        members->emplace_back(key, value);
      },
      [](std::string_view) {});
}

bool ArrayElements(std::string_view text,
                   std::vector<std::string_view>* elements) {
  elements->clear();
  return ScanWhole(
      text, '[', [](std::string_view, std::string_view) {},
      [elements](std::string_view value) { elements->push_back(value); });
}

std::string_view MemberValue(const std::vector<JsonMember>& members,
                             std::string_view key) {
  for (const auto& [k, v] : members) {
    if (k == key) return v;
  }
  return {};
}

bool PlainString(std::string_view value, std::string_view* content) {
  if (value.size() < 2 || value.front() != '"' || value.back() != '"') {
    return false;
  }
  const std::string_view inner = value.substr(1, value.size() - 2);
  if (inner.find('\\') != std::string_view::npos) return false;
  *content = inner;
  return true;
}

}  // namespace distillery::teacher_sim
