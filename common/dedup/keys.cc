#include "common/dedup/keys.h"

#include <cstdint>
#include <cstring>

#include <xxhash.h>

namespace distillery {
namespace {

// Appends a length-prefixed field, so no two field sequences serialise alike.
void AppendField(std::string* out, std::string_view value) {
  uint64_t n = value.size();
  out->append(reinterpret_cast<const char*>(&n), sizeof(n));
  out->append(value);
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

std::string NormaliseMessage(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && IsSpace(text[begin])) ++begin;
  while (end > begin && IsSpace(text[end - 1])) --end;
  std::string out;
  out.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    if (text[i] == '\r' && i + 1 < end && text[i + 1] == '\n') continue;
    out.push_back(text[i]);
  }
  return out;
}

std::string Digest(const std::string& bytes) {
  XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, h);
  return std::string(reinterpret_cast<const char*>(canonical.digest),
                     sizeof(canonical.digest));
}

std::string Number(double v) {
  char buf[32];
  std::memcpy(buf, &v, sizeof(v));
  return std::string(buf, sizeof(v));
}

}  // namespace

std::string RequestKey(
    const TeacherProfile& teacher, std::string_view model,
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
    const v1::SamplingParams& params, int sample,
    const RequestExtras& extras) {
  // v1 keys held the profile's name only, so they cannot say which settings
  // bought their answers: v2 keys never match them.
  std::string canon = "distillery.request.v2";
  AppendField(&canon, RequestIdentity(teacher));
  AppendField(&canon, model);
  AppendField(&canon, std::to_string(messages.size()));
  for (const v1::ChatMessage& m : messages) {
    std::string role = m.role();
    for (char& c : role) c = static_cast<char>(std::tolower(c));
    AppendField(&canon, role);
    AppendField(&canon, NormaliseMessage(m.content()));
  }
  AppendField(&canon, std::to_string(params.max_tokens()));
  AppendField(&canon, params.has_temperature()
                          ? "t" + Number(params.temperature())
                          : std::string("-"));
  AppendField(&canon, params.has_top_p() ? "p" + Number(params.top_p())
                                         : std::string("-"));
  AppendField(&canon, params.has_seed() ? "s" + std::to_string(params.seed())
                                        : std::string("-"));
  AppendField(&canon, std::to_string(params.stop_size()));
  for (const std::string& s : params.stop()) AppendField(&canon, s);
  AppendField(&canon, std::to_string(sample));
  // Extras, each tagged, only when present: keys without them are as before.
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    if (!m.tool_calls_json().empty()) {
      AppendField(&canon, "calls" + std::to_string(i));
      AppendField(&canon, m.tool_calls_json());
    }
    if (!m.tool_call_id().empty()) {
      AppendField(&canon, "call_id" + std::to_string(i));
      AppendField(&canon, m.tool_call_id());
    }
  }
  if (params.top_logprobs() > 0) {
    AppendField(&canon, "logprobs" + std::to_string(params.top_logprobs()));
  }
  if (!extras.tools_json.empty()) {
    AppendField(&canon, "tools");
    AppendField(&canon, extras.tools_json);
  }
  if (!extras.tool_choice_json.empty()) {
    AppendField(&canon, "tool_choice");
    AppendField(&canon, extras.tool_choice_json);
  }
  if (!extras.json_schema.empty()) {
    AppendField(&canon, "json_schema");
    AppendField(&canon, extras.json_schema);
  }
  return Digest(canon);
}

std::string AnswerContentHash(std::string_view text) {
  std::string folded;
  folded.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (IsSpace(c)) {
      pending_space = !folded.empty();
      continue;
    }
    if (pending_space) folded.push_back(' ');
    pending_space = false;
    folded.push_back(c);
  }
  return Digest("distillery.answer.v1" + folded);
}

std::string HexKey(std::string_view raw) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace distillery
