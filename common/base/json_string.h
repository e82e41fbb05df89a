// UTF-8 checking and repair, and JSON string escaping shared by the JSON log
// lines and the dataset export formats. JSON escaping It writes exactly the bytes nlohmann::json's
// dump(-1, ' ', false, error_handler_t::replace) writes for a string, so a
// writer that streams JSON by hand produces the same lines as one that
// builds an nlohmann tree and dumps it:
//   - '"' and '\\' are backslash-escaped; \b \f \n \r \t use their short
//     forms; other bytes below 0x20 become \u00xx (lowercase hex);
//   - everything else, DEL and '/' included, is copied; valid UTF-8 passes
//     through unescaped;
//   - invalid UTF-8 becomes U+FFFD, once per maximal invalid subpart (the
//     longest prefix of a valid sequence; a byte that cannot start one is a
//     subpart of its own), which is what nlohmann's decoder does: it replaces
//     the bytes read so far when a byte is rejected, then reads that byte
//     again as the start of a new sequence.
#ifndef DISTILLERY_COMMON_BASE_JSON_STRING_H_
#define DISTILLERY_COMMON_BASE_JSON_STRING_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace distillery {

// The UTF-8 sequence starting at text[i] (a byte >= 0x80). Returns how many
// bytes it spans and sets *valid. When invalid, the span is the maximal
// invalid subpart: the lead byte alone if it cannot start a sequence, else
// the bytes before the first one that does not fit (that byte starts the
// next sequence), or everything to the end if the text ends first. The
// ranges are those of Unicode Table 3-7, which nlohmann's decoder encodes.
size_t Utf8Sequence(std::string_view text, size_t i, bool* valid);

// True when `text` is well-formed UTF-8 (Utf8Sequence's ranges: no
// overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);

// `text` with every maximal invalid subpart replaced by U+FFFD, the same
// replacement AppendJsonEscaped makes; valid text comes back unchanged. For
// text from outside (a teacher's error page in Latin-1, a provider id) on
// its way into a proto3 `string` field, which must hold valid UTF-8 or the
// whole message is refused.
std::string RepairUtf8(std::string_view text);
// In place, without a copy when `*text` is already valid.
void RepairUtf8(std::string* text);

// The longest prefix of `text` of at most `max_bytes` that does not end
// inside a UTF-8 sequence (it backs off over continuation bytes), for
// quoting a cut excerpt. `text` itself when it fits.
std::string_view Utf8Prefix(std::string_view text, size_t max_bytes);

// Appends `text` escaped as the inside of a JSON string (no quotes) to *out.
void AppendJsonEscaped(std::string_view text, std::string* out);

// Appends `text` as a JSON string, quotes included, to *out.
inline void AppendJsonString(std::string_view text, std::string* out) {
  out->push_back('"');
  AppendJsonEscaped(text, out);
  out->push_back('"');
}

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_JSON_STRING_H_
