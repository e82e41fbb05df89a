// JSON string escaping shared by the JSON log lines and the dataset export
// formats. It writes exactly the bytes nlohmann::json's
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

#include <string>
#include <string_view>

namespace distillery {

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
