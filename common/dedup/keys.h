// Content-addressed keys that make Distillery pay once:
//  - RequestKey: the canonical identity of one teacher request. Two requests
//    with the same key would buy the same answer, so a key that has a stored
//    answer is never sent again, across jobs and restarts.
//  - AnswerContentHash: identity of an answer's text after whitespace
//    normalisation, for exact duplicate detection.
// Both are 128-bit XXH3 digests returned as 16 raw bytes.
#ifndef DISTILLERY_COMMON_DEDUP_KEYS_H_
#define DISTILLERY_COMMON_DEDUP_KEYS_H_

#include <string>
#include <string_view>

#include "common/config/teachers.h"
#include "distillery/v1/types.pb.h"

namespace distillery {

// Canonicalises (teacher, model, messages, sampling parameters, sample index)
// and hashes it. The teacher is its profile's RequestIdentity (teachers.h):
// the profile's name and every setting that changes the request sent or
// where it goes (base_url, api, default_max_tokens; max_tokens_field,
// variant, response_format for openai; anthropic_version,
// thinking_budget_tokens for anthropic), not `stream`, the key or the
// limits. So a profile whose settings change gets new keys for new
// submissions and pays for answers under them; tasks already stored keep
// the key they were made with. Normalisation: roles lower-cased, "\r\n"
// folded to "\n", leading and trailing whitespace of each message trimmed;
// unset optional parameters differ from any set value.
//
// A request's extras (tools, tool choice, a JSON schema), an assistant
// turn's tool calls, a tool turn's call id and top_logprobs join the key
// only when set, so keys of requests without them are unchanged.
struct RequestExtras {
  std::string tools_json;
  std::string tool_choice_json;
  std::string json_schema;
};
std::string RequestKey(const TeacherProfile& teacher, std::string_view model,
                       const google::protobuf::RepeatedPtrField<v1::ChatMessage>&
                           messages,
                       const v1::SamplingParams& params, int sample,
                       const RequestExtras& extras = {});

// Hash of `text` with runs of whitespace folded to one space and trimmed.
std::string AnswerContentHash(std::string_view text);

// Lower-case hex of raw bytes, for logs and exports.
std::string HexKey(std::string_view raw);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DEDUP_KEYS_H_
