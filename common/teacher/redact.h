// SecretRedactor: keeps an API key out of everything a worker keeps, logs or
// reports of a teacher's response, in whatever form the teacher (or a proxy,
// or a transport error) echoed it:
//   - raw;
//   - JSON-escaped: any character as \uXXXX, '/' as \/ (and '"', '\' as \" and
//     \\), also escaped more than once (\\\/, \\u002F) as JSON quoted inside
//     JSON is;
//   - URL-encoded: any character as %XX, also twice (%252F), and a '+' that a
//     form decoder read as a space (or a space written '+');
//   - HTML character references: &#47; &#x2F;;
//   - base64, standard and URL-safe alphabet: the characters that encode the
//     key alone, whatever its offset in the encoded bytes (the three
//     alignments), so the key inside a longer encoded text ("Bearer KEY",
//     "user:KEY") is found too. These forms are themselves matched with the
//     escapes above ('/' and '+' are base64 characters).
// The forms mix: each character of the key may be written in any of its
// forms. Hex digits match in either case. A match is replaced by
// "[redacted]", which keeps JSON text valid (no quote, no backslash), so a
// redacted body still parses.
//
// Thread-safe: immutable after construction.
#ifndef DISTILLERY_COMMON_TEACHER_REDACT_H_
#define DISTILLERY_COMMON_TEACHER_REDACT_H_

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace distillery {

class SecretRedactor {
 public:
  // The mark a match is replaced with.
  static constexpr std::string_view kMark = "[redacted]";

  // An empty `secret` redacts nothing.
  explicit SecretRedactor(std::string_view secret);

  // True when `text` holds the secret in any of its forms.
  bool Mentions(std::string_view text) const;

  // `text` with every form of the secret replaced by kMark.
  std::string Redact(std::string text) const;

 private:
  // The length of a match of `form` at text[at], or 0.
  size_t MatchAt(std::string_view text, size_t at,
                 std::string_view form) const;
  // The first match at or after `from`: its offset and length (0 when none).
  std::pair<size_t, size_t> Find(std::string_view text, size_t from) const;

  // The raw secret, then its base64 forms (each at least kMinBase64 long).
  std::vector<std::string> forms_;
  // Bytes a match can begin with, for a quick skip.
  std::array<bool, 256> starts_{};
};

// SecretRedactor(secret).Redact(text).
std::string RedactSecret(std::string text, std::string_view secret);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_REDACT_H_
