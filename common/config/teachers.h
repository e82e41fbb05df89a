// Teacher profiles: which teacher APIs a cluster may call, where they live,
// how a worker finds its key, and their limits. Read from a YAML file by the
// coordinator and by every worker; API keys are never in the file itself.
// Also the one cost model (CostUsd, MaxRequestCostUsd) and a profile's
// request identity. Thread-safe: profiles are values, the functions pure.
#ifndef DISTILLERY_COMMON_CONFIG_TEACHERS_H_
#define DISTILLERY_COMMON_CONFIG_TEACHERS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace distillery {

// A model's price in US dollars per million tokens.
struct ModelPrice {
  double input = 0;         // prompt tokens not served from the cache
  double cached_input = 0;  // prompt tokens served from the teacher's cache
  double output = 0;        // completion tokens, reasoning included
  // The batch API's prices (pricing.batch_input, batch_output; default half
  // of input and output, as both providers charge). Cached prompt tokens of
  // a batched request cost half of cached_input.
  double batch_input = 0;
  double batch_output = 0;
};

struct TeacherProfile {
  std::string name;
  // The wire API: "openai" (Chat Completions, and every compatible server)
  // or "anthropic" (Messages).
  std::string api = "openai";
  // For api: openai, which server it is: "openai" (the default), "deepseek",
  // "vllm", "ollama", "llamacpp" or "sim". It only picks the default
  // max_tokens_field (max_completion_tokens for openai, max_tokens for the
  // others); answers of every variant are parsed the same way (reasoning,
  // reasoning_content, inline <think>, keep-alive padding).
  std::string variant = "openai";
  // OpenAI-style: includes the version (.../v1). Anthropic: the host
  // (https://api.anthropic.com), the adapter appends /v1/messages.
  std::string base_url;
  // Where a worker finds the key: an environment variable, or a file (for
  // Docker secrets). Neither set: no key (local servers, the simulator).
  std::string api_key_env;
  std::string api_key_file;
  // "max_completion_tokens" (OpenAI) or "max_tokens" (most compatibles);
  // defaults from `variant`. api: openai only.
  std::string max_tokens_field = "max_completion_tokens";
  // Ask for a streamed (SSE) answer and assemble it.
  bool stream = false;
  // api: openai only. Ask for a prompt's samples as `n` choices of one
  // request (billed and rate-limited once) when a worker holds several; a
  // server that refuses n > 1 is detected once, and the worker then sends
  // one request per sample (with a warning).
  bool use_n = false;
  // Sent as the token limit when a job sets none; 0: none for openai (the
  // server's default). Anthropic requires one, so there it defaults to 4096.
  int64_t default_max_tokens = 0;
  // api: anthropic only. Extended thinking with this budget (>= 1024, below
  // the job's max_tokens); 0: off.
  int64_t thinking_budget_tokens = 0;
  // api: anthropic only. The anthropic-version header.
  std::string anthropic_version = "2023-06-01";
  // api: openai only. A JSON object sent as response_format ("" for none);
  // written in YAML as a mapping.
  std::string response_format_json;
  // Cluster-wide limits, per limit window (60 s for real APIs; shorter for
  // simulators in tests). -1 (left out of the file): learned from the
  // teacher's headers and 429s; 0: no limit.
  int64_t rpm = -1;
  int64_t tpm = -1;
  int64_t limit_window_s = 60;
  // Concurrent requests, cluster-wide; 0: no limit.
  int max_concurrency = 0;
  int max_attempts = 5;      // per task, counting the first
  int64_t connect_timeout_ms = 10'000;
  int64_t idle_timeout_ms = 120'000;
  int64_t total_timeout_ms = 900'000;
  // A longer response body fails the request (retryable): a runaway or
  // hostile server cannot fill a worker's memory.
  int64_t max_response_bytes = 16 << 20;
  // Prices by model name; "*" prices any model not listed. Optional: cost
  // metrics read 0 for a model without a price.
  std::map<std::string, ModelPrice> pricing;
  // The batch path (jobs with --mode batch or auto). Limits on one batch; 0:
  // the API's own (OpenAI 50,000 requests and 200 MB, Anthropic 100,000 and
  // 256 MB). A lower limit splits a job into more batches.
  int64_t batch_max_requests = 0;
  int64_t batch_max_bytes = 0;
  // How often an open batch is read.
  int64_t batch_poll_interval_ms = 30'000;
};

// Whether the profile's API has a batch API: anthropic, and openai for the
// variants openai and sim (the self-hosted servers and DeepSeek have none).
bool HasBatchApi(const TeacherProfile& profile);

// Parses the teachers file. Errors name the file, the profile and the field.
absl::StatusOr<std::vector<TeacherProfile>> LoadTeachersFile(
    const std::string& path);
absl::StatusOr<std::vector<TeacherProfile>> ParseTeachersYaml(
    const std::string& yaml_text, const std::string& origin);

// Finds the profile named `name`, or NOT_FOUND listing the known names.
absl::StatusOr<TeacherProfile> FindTeacher(
    const std::vector<TeacherProfile>& profiles, const std::string& name);

// The profile named `name`, or nullptr; for a caller that has already
// checked it exists and must not copy it per prompt.
const TeacherProfile* FindTeacherOrNull(
    const std::vector<TeacherProfile>& profiles, std::string_view name);

// The one definition of what a profile contributes to a request's identity
// (dedup/keys.h's RequestKey): every setting that changes the request sent
// or the provider it goes to, so that a changed profile never serves answers
// bought under its old settings as cache hits. In it:
//   name, api, base_url (without trailing '/'), default_max_tokens;
//   api openai: variant, max_tokens_field, response_format;
//   api anthropic: anthropic_version, thinking_budget_tokens.
// Left out, because the answer is the same whatever they are: stream (a
// streamed answer is assembled into the same record), the key and where it
// comes from (which account pays), limits, concurrency, attempts, timeouts,
// max_response_bytes and pricing. A setting a new version adds that changes
// the request belongs here. Unambiguous: each field is length-prefixed.
std::string RequestIdentity(const TeacherProfile& profile);

// The price of `model` under `profile`, or nullopt when it has none.
std::optional<ModelPrice> PriceFor(const TeacherProfile& profile,
                                   const std::string& model);
// The cost in US dollars of one answer's usage; 0 without a price.
// `cached_tokens` is part of `prompt_tokens`, as the APIs report it.
// `batch`: the answer came through the batch API, at its prices.
double CostUsd(const TeacherProfile& profile, const std::string& model,
               int64_t prompt_tokens, int64_t cached_tokens,
               int64_t completion_tokens, bool batch = false);
// The most one request can cost, for budgets: a prompt of `prompt_bytes`
// over `messages` messages (estimated at 4 bytes a token plus 4 tokens a
// message) at the input price, plus `max_tokens` at the output price
// (0: the profile's default_max_tokens, else a cautious 4096). This and
// CostUsd are the one cost model; the worker and the coordinator both use
// them.
double MaxRequestCostUsd(const TeacherProfile& profile,
                         const std::string& model, int64_t prompt_bytes,
                         int messages, int64_t max_tokens, bool batch = false);

// Reads the profile's API key from its environment variable or file. The
// returned error names where it looked, never a key.
absl::StatusOr<std::string> ResolveApiKey(const TeacherProfile& profile);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_CONFIG_TEACHERS_H_
