// Building a Teacher from a teacher profile (common/config/teachers.h): the
// profile's `api` picks the WireFormat (openai: OpenAiChatFormat, anthropic:
// AnthropicMessagesFormat), its other fields fill the format's and
// HttpTeacher's options; the same profile gives its BatchApi (MakeBatchApi).
// The one place that knows which APIs exist: a new API is a new format and
// one more case here. Pure functions, thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_TEACHER_FACTORY_H_
#define DISTILLERY_COMMON_TEACHER_TEACHER_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/config/teachers.h"
#include "common/http/http_client.h"
#include "common/teacher/batch_api.h"
#include "common/teacher/http_teacher.h"
#include "common/teacher/teacher.h"
#include "common/teacher/wire_format.h"

namespace distillery {

// The wire format for `profile`, or INVALID_ARGUMENT naming the profile and
// its api when no format speaks it.
absl::StatusOr<std::shared_ptr<const WireFormat>> MakeWireFormat(
    const TeacherProfile& profile);

// As above, streamed or not as `stream` says whatever the profile's
// `stream`: a batch request is never streamed.
absl::StatusOr<std::shared_ptr<const WireFormat>> MakeWireFormat(
    const TeacherProfile& profile, bool stream);

// HttpTeacher's options from `profile` (base_url, timeouts, response cap),
// carrying `api_key`.
HttpTeacherOptions HttpTeacherOptionsFor(const TeacherProfile& profile,
                                         std::string api_key);

// The teacher for `profile`, sending through `http` with `api_key` (which
// ResolveApiKey read). Errors as MakeWireFormat. `http` must outlive the
// teacher.
absl::StatusOr<std::unique_ptr<Teacher>> MakeTeacher(
    const TeacherProfile& profile, std::string api_key, HttpClient& http);

// The batch API for `profile` (batch_apis.h), sending through `http` with
// `api_key`: OpenAiBatchApi for api openai (variants openai and sim: the
// other servers have no batch API), AnthropicBatchApi for api anthropic,
// each on the profile's format made with stream off. INVALID_ARGUMENT for a
// profile without a batch API or with bad options (never quoting the key).
// `http` must outlive it.
absl::StatusOr<std::unique_ptr<BatchApi>> MakeBatchApi(
    const TeacherProfile& profile, std::string api_key, HttpClient& http);

// As above, with the key read by ResolveApiKey (the profile's environment
// variable or file); its error (which never quotes a key) when it cannot be.
absl::StatusOr<std::unique_ptr<Teacher>> MakeTeacherWithKey(
    const TeacherProfile& profile, HttpClient& http);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_TEACHER_FACTORY_H_
