#include "services/teacher_sim/sim_handler.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/teacher_sim/answer_generator.h"
#include "services/teacher_sim/chat_request.h"
#include "services/teacher_sim/json_writer.h"
#include "services/teacher_sim/messages_request.h"
#include "services/teacher_sim/response_render.h"
#include "services/teacher_sim/sim_ids.h"

namespace distillery::teacher_sim {
namespace {

constexpr std::string_view kChatPath = "/v1/chat/completions";
constexpr std::string_view kMessagesPath = "/v1/messages";
constexpr std::string_view kHealthPath = "/health";
constexpr std::string_view kStatsPath = "/stats";

SimResponse JsonResponse(int status, std::string body) {
  SimResponse r;
  r.status = status;
  r.headers.emplace_back("content-type", "application/json");
  r.body = std::move(body);
  return r;
}

// A duration as OpenAI writes resets: "20ms", "1.5s", "6m0s".
std::string GoDuration(Duration d) {
  const int64_t ms = std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  if (ms < 1000) return std::to_string(ms) + "ms";
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%gs", (ms % 60000) / 1000.0);
  if (ms < 60000) return seconds;
  return std::to_string(ms / 60000) + "m" + seconds;
}

// The six headers from the limiter's view of the window.
void AddLimiterHeaders(const SimLimits& limits, const SimAdmission& a,
                       SimHeaders* headers) {
  // As OpenAI does: headers for the limits there are, none for the others.
  if (limits.rpm > 0) {
    headers->emplace_back("x-ratelimit-limit-requests",
                          std::to_string(limits.rpm));
    headers->emplace_back("x-ratelimit-remaining-requests",
                          std::to_string(a.remaining_requests));
    headers->emplace_back("x-ratelimit-reset-requests",
                          GoDuration(a.reset_requests));
  }
  if (limits.tpm > 0) {
    headers->emplace_back("x-ratelimit-limit-tokens",
                          std::to_string(limits.tpm));
    headers->emplace_back("x-ratelimit-remaining-tokens",
                          std::to_string(a.remaining_tokens));
    headers->emplace_back("x-ratelimit-reset-tokens",
                          GoDuration(a.reset_tokens));
  }
}

// Generous static limits in OpenAI's header format; a 429 reports them
// exhausted.
void AddRateLimitHeaders(bool exhausted, SimHeaders* headers) {
  headers->emplace_back("x-ratelimit-limit-requests", "10000");
  headers->emplace_back("x-ratelimit-limit-tokens", "2000000");
  headers->emplace_back("x-ratelimit-remaining-requests",
                        exhausted ? "0" : "9999");
  headers->emplace_back("x-ratelimit-remaining-tokens",
                        exhausted ? "0" : "1999000");
  headers->emplace_back("x-ratelimit-reset-requests",
                        exhausted ? "50ms" : "6ms");
  headers->emplace_back("x-ratelimit-reset-tokens", exhausted ? "1s" : "30ms");
}

// "sk-*****wxyz"-style masking, as OpenAI echoes a wrong key.
std::string MaskKey(std::string_view key) {
  if (key.size() <= 8) return std::string(key.size(), '*');
  return std::string(key.substr(0, 3)) + "*****" +
         std::string(key.substr(key.size() - 4));
}

std::string_view Trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// The token of "Bearer <token>" (scheme case-insensitive), or "" if the
// header is absent or uses another scheme.
std::string_view BearerToken(std::string_view authorization) {
  authorization = Trim(authorization);
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i]) return {};
  }
  return Trim(authorization.substr(kScheme.size()));
}

SimResponse EventStream(std::string body) {
  SimResponse r;
  r.status = 200;
  r.headers.emplace_back("content-type", "text/event-stream; charset=utf-8");
  r.headers.emplace_back("cache-control", "no-cache");
  r.body = std::move(body);
  return r;
}

SimResponse AnthropicError(int status, std::string_view type,
                           std::string_view message) {
  return JsonResponse(status, RenderAnthropicErrorJson(type, message));
}

void AddAnthropicRateLimitHeaders(bool exhausted, SimHeaders* headers) {
  headers->emplace_back("anthropic-ratelimit-requests-limit", "4000");
  headers->emplace_back("anthropic-ratelimit-requests-remaining",
                        exhausted ? "0" : "3999");
  headers->emplace_back("anthropic-ratelimit-requests-reset",
                        "2030-01-01T00:00:00Z");
  headers->emplace_back("anthropic-ratelimit-tokens-limit", "400000");
  headers->emplace_back("anthropic-ratelimit-tokens-remaining",
                        exhausted ? "0" : "399000");
  headers->emplace_back("anthropic-ratelimit-tokens-reset",
                        "2030-01-01T00:00:00Z");
}

// The 401 of the 401echo fault: the key the request carried, quoted in the
// error message the way an encoder that escapes '/' (PHP's json_encode, some
// Java libraries) writes it. Only the encoding differs from the usual 401.
SimResponse EchoKeyError(std::string_view key, bool anthropic) {
  const std::string message =
      absl::StrCat("Incorrect API key provided: ", std::string(key), ".");
  SimResponse r =
      anthropic ? AnthropicError(401, "authentication_error", message)
                : JsonResponse(401, RenderErrorJson(message,
                                                    "invalid_request_error",
                                                    "", "invalid_api_key"));
  std::string escaped;
  for (char c : r.body) {
    if (c == '/') escaped.push_back('\\');
    escaped.push_back(c);
  }
  r.body = std::move(escaped);
  return r;
}

// --refuse-n's answer to n > 1.
SimResponse RefuseN() {
  return JsonResponse(
      400, RenderErrorJson("n > 1 is not supported by this server",
                           "invalid_request_error", "n", ""));
}

SimResponse MethodNotAllowed(const std::string& method, std::string_view path,
                             const char* allowed) {
  SimResponse r = JsonResponse(
      405, RenderErrorJson(
               absl::StrCat("Method ", method, " is not allowed for ",
                            std::string(path), ". Allowed: ", allowed, "."),
               "invalid_request_error", "", "method_not_allowed"));
  r.headers.emplace_back("allow", allowed);
  return r;
}

}  // namespace

std::string RenderErrorJson(std::string_view message, std::string_view type,
                            std::string_view param, std::string_view code) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject();
  w.Key("message").String(message);
  w.Key("type").String(type);
  w.Key("param");
  if (param.empty()) {
    w.Null();
  } else {
    w.String(param);
  }
  w.Key("code");
  if (code.empty()) {
    w.Null();
  } else {
    w.String(code);
  }
  w.EndObject().EndObject();
  return w.Release();
}

namespace {
// The 404 body for a model not served: OpenAI's model_not_found, or
// Anthropic's not_found_error.
std::string ModelNotFoundJson(bool anthropic, std::string_view model) {
  if (anthropic) {
    return RenderAnthropicErrorJson("not_found_error",
                                    absl::StrCat("model: ", std::string(model)));
  }
  return RenderErrorJson(
      absl::StrCat("The model `", std::string(model),
                   "` does not exist or you do not have access to it."),
      "invalid_request_error", "", "model_not_found");
}

// The blocks of a Messages answer to `chat` (thinking, and redacted
// thinking for a "*redacted*" model); a request that shows thinking
// reasons whatever its model.
MessageShape ShapeFor(ChatRequest* chat) {
  MessageShape shape;
  shape.thinking = ShowsThinking(*chat);
  shape.redacted =
      shape.thinking && chat->model.find("redacted") != std::string::npos;
  chat->force_reasoning = shape.thinking;
  return shape;
}

// Faults that spoil an answer that is otherwise made (and, but for a cut
// body, paid for) rather than replace it.
bool IsAnswerFault(FaultKind kind) {
  return kind == FaultKind::kTruncate || kind == FaultKind::kPad ||
         kind == FaultKind::kSlow;
}
}  // namespace

SimHandler::SimHandler(SimHandlerOptions options, Clock& clock,
                       FaultInjector* faults)
    : options_(std::move(options)),
      clock_(clock),
      faults_(faults),
      instance_nonce_(Mix64(static_cast<uint64_t>(clock.WallMillis()))),
      limiter_(clock, options_.limits),
      batches_(options_.batches, clock,
               [this](bool anthropic, std::string_view body) {
                 return AnswerBatchRequest(anthropic, body);
               }) {}

std::string SimHandler::UniqueHex(uint64_t sequence, uint64_t salt) const {
  const uint64_t a = Mix64(instance_nonce_ ^ Mix64(sequence) ^ salt);
  return Hex64(a) + Hex64(Mix64(a ^ sequence));
}

SimResponse SimHandler::Handle(const SimRequest& request) {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));

  if (path == kHealthPath || path == kStatsPath) {
    if (request.method != "GET") {
      return MethodNotAllowed(request.method, path, "GET");
    }
    if (path == kHealthPath) return JsonResponse(200, "{\"status\":\"ok\"}");
    std::string stats = stats_.RenderJson();
    stats.pop_back();  // '}': the limiter's figures join the object
    absl::StrAppend(
        &stats, ",\"rate_limited_total\":", limiter_.refused_total(),
        ",\"peak_window_requests\":", limiter_.peak_window_requests(),
        ",\"peak_window_tokens\":", limiter_.peak_window_tokens(),
        ",\"window_ms\":",
        std::chrono::duration_cast<std::chrono::milliseconds>(
            options_.limits.window)
            .count(),
        ",\"limit_requests\":", options_.limits.rpm, ",\"limit_tokens\":",
        options_.limits.tpm, ",\"batches\":", batches_.RenderStatsJson(),
        "}");
    return JsonResponse(200, stats);
  }
  if (SimBatches::IsOpenAiPath(path) || SimBatches::IsAnthropicPath(path)) {
    SimResponse response = HandleBatches(request, path);
    stats_.Record(response.status, /*chat=*/false);
    return response;
  }

  SimResponse response;
  const bool messages = path == kMessagesPath;
  const bool chat = path == kChatPath || messages;
  if (messages && request.method == "POST") {
    response = HandleMessages(request);
  } else if (chat && request.method == "POST") {
    response = HandleChat(request);
  } else if (chat) {
    response = MethodNotAllowed(request.method, path, "POST");
  } else {
    response = JsonResponse(
        404, RenderErrorJson(absl::StrCat("Invalid URL (", request.method, " ",
                                          std::string(path), ")"),
                             "invalid_request_error", "", "unknown_url"));
  }
  // 200 answers are counted with their tokens where they are made.
  if (response.status != 200) {
    stats_.Record(response.status, chat && request.method == "POST");
  }
  return response;
}

SimResponse SimHandler::HandleChat(const SimRequest& request) {
  const uint64_t sequence = next_sequence_.fetch_add(1);
  SimAdmission admission;
  bool admitted = false;
  SimResponse response = AnswerChat(request, sequence, &admission);
  admitted = options_.limits.any() && (response.status == 200 ||
                                       !admission.allowed);
  if (options_.ratelimit_headers) {
    if (admitted && (options_.limits.rpm > 0 || options_.limits.tpm > 0)) {
      AddLimiterHeaders(options_.limits, admission, &response.headers);
    } else if (!options_.limits.any()) {
      AddRateLimitHeaders(response.status == 429, &response.headers);
    }
  }
  response.headers.emplace_back("x-request-id",
                                "req_" + UniqueHex(sequence, 0x7265715f));
  response.headers.emplace_back(
      "openai-processing-ms",
      std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(response.delay)
              .count()));
  return response;
}

SimResponse SimHandler::AnswerChat(const SimRequest& request,
                                   uint64_t sequence,
                                   SimAdmission* admission) {
  const std::string_view key = BearerToken(request.Header("authorization"));
  if (!options_.required_api_key.empty()) {
    if (key != options_.required_api_key) {
      return JsonResponse(
          401,
          RenderErrorJson(
              key.empty()
                  ? "You didn't provide an API key. You need to provide your "
                    "API key in an Authorization header using Bearer auth "
                    "(i.e. Authorization: Bearer YOUR_KEY)."
                  : absl::StrCat("Incorrect API key provided: ", MaskKey(key),
                                 "."),
              "invalid_request_error", "", "invalid_api_key"));
    }
  }

  if (options_.quota_exhausted) {
    return JsonResponse(
        429, RenderErrorJson("You exceeded your current quota, please check "
                             "your plan and billing details.",
                             "insufficient_quota", "", "insufficient_quota"));
  }
  FaultKind fault = FaultKind::kNone;
  if (faults_ != nullptr) {
    fault = faults_->Next();
    if (fault != FaultKind::kNone && !IsAnswerFault(fault)) {
      stats_.RecordFault(FaultKindName(fault));
      if (fault == FaultKind::kEchoKey) return EchoKeyError(key, false);
      return RenderFault(fault);
    }
  }

  ChatRequest chat;
  InvalidRequest invalid;
  if (!ParseChatRequest(request.body, &chat, &invalid).ok()) {
    return JsonResponse(
        400, RenderErrorJson(invalid.message, "invalid_request_error",
                             invalid.param, invalid.code));
  }
  if (!Serves(chat.model)) {
    return JsonResponse(404, ModelNotFoundJson(false, chat.model));
  }
  if (options_.refuse_n && chat.n > 1) return RefuseN();
  SimCompletion completion = Generate(chat, request.body);
  if (options_.limits.any()) {
    // Counted as the providers count it on arrival: prompt + the limit.
    const int64_t tokens =
        completion.usage.prompt_tokens +
        chat.max_tokens.value_or(completion.usage.completion_tokens);
    *admission = limiter_.Admit(tokens, options_.latency);
    if (!admission->allowed) {
      const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             admission->retry_after)
                             .count();
      SimResponse r = JsonResponse(
          429,
          RenderErrorJson(
              absl::StrCat("Rate limit reached for ", admission->limit,
                           " on teacher-sim. Please try again in ", ms, "ms."),
              admission->limit, "", "rate_limit_exceeded"));
      r.headers.emplace_back("retry-after",
                             std::to_string(std::max<int64_t>(1, (ms + 999) / 1000)));
      r.headers.emplace_back("retry-after-ms", std::to_string(ms));
      return r;
    }
  }
  const int64_t created = clock_.WallMillis() / 1000;
  const std::string id = "chatcmpl-" + UniqueHex(sequence, 0x63686174);
  SimResponse response =
      chat.stream ? EventStream(RenderChatStream(completion, id, created,
                                                 chat.include_usage))
                  : JsonResponse(200, RenderCompletionJson(completion, id,
                                                           created));
  response.delay = options_.latency;
  ApplyAnswerFault(fault, chat.stream, request.body, completion,
                   &response);
  return response;
}

SimCompletion SimHandler::Generate(ChatRequest& chat, std::string_view body) {
  // Only structured outputs need the count, so plain requests take no lock.
  if (AnswersWithJson(chat)) chat.repeat = repeats_.Next(body);
  GenerateOptions generate;
  generate.math_accuracy = options_.math_accuracy;
  generate.json_invalid_rate = options_.json_invalid_rate;
  SimCompletion completion = GenerateCompletion(chat, generate);
  if (options_.answer_bytes > 0) {
    ResizeAnswers(options_.answer_bytes, &completion);
  }
  return completion;
}

void SimHandler::ApplyAnswerFault(FaultKind kind, bool stream,
                                  std::string_view body,
                                  const SimCompletion& completion,
                                  SimResponse* response) {
  switch (kind) {
    case FaultKind::kTruncate:
      response->wire_fault = WireFault::kTruncate;
      stats_.RecordFault(FaultKindName(kind));
      return;  // never a complete answer: not a 200 in the stats
    case FaultKind::kPad:
      response->wire_fault = WireFault::kPad;
      response->pad = stream ? ": keep-alive\n\n" : "\n";
      response->pad_count = options_.pad_count;
      response->pad_interval = options_.pad_interval;
      stats_.RecordFault(FaultKindName(kind));
      break;
    case FaultKind::kSlow:
      response->delay = options_.slow_latency;
      stats_.RecordFault(FaultKindName(kind));
      break;
    default:
      break;
  }
  stats_.RecordCompletion(body, completion.usage.prompt_tokens,
                          completion.usage.completion_tokens,
                          static_cast<int64_t>(completion.choices.size()));
}

std::string_view Latin1ErrorPage() {
  // "Requête invalide : caractère non autorisé" with é, è, ê as single
  // ISO-8859-1 bytes.
  return "<html><head><title>400 Bad Request</title></head><body>"
         "<h1>400 Bad Request</h1><p>Requ\xEAte invalide : caract\xE8re non "
         "autoris\xE9 (d\xE9j\xE0 vu).</p></body></html>\n";
}

SimResponse SimHandler::RenderFault(FaultKind kind) {
  switch (kind) {
    case FaultKind::kLatin1: {
      SimResponse r;
      r.status = 400;
      r.headers.emplace_back("content-type", "text/html; charset=ISO-8859-1");
      r.body = std::string(Latin1ErrorPage());
      return r;
    }
    case FaultKind::kReset: {
      SimResponse r;
      r.status = 0;  // nothing is sent; the stats count it under "0"
      r.wire_fault = WireFault::kReset;
      r.delay = options_.latency;
      return r;
    }
    case FaultKind::kUnavailable: {
      SimResponse r = JsonResponse(
          503, RenderErrorJson("The server is overloaded or not ready yet.",
                               "server_error", "", "service_unavailable"));
      r.headers.emplace_back("retry-after", "1");
      r.headers.emplace_back("retry-after-ms", "100");
      return r;
    }
    case FaultKind::kOverloaded:
      return JsonResponse(
          529, RenderErrorJson("Overloaded", "overloaded_error", "", ""));
    case FaultKind::kQuota:
      return JsonResponse(
          429, RenderErrorJson("You exceeded your current quota, please "
                               "check your plan and billing details.",
                               "insufficient_quota", "",
                               "insufficient_quota"));
    case FaultKind::kRateLimited: {
      SimResponse r = JsonResponse(
          429, RenderErrorJson("Rate limit reached for requests on "
                               "teacher-sim. Please try again in 1s.",
                               "requests", "", "rate_limit_exceeded"));
      r.headers.emplace_back("retry-after", "1");
      r.headers.emplace_back("retry-after-ms", "50");
      return r;
    }
    case FaultKind::kServerError:
    case FaultKind::kEchoKey:  // needs the request: see EchoKeyError
    case FaultKind::kNone:     // not reached; treated as a server error
      break;
  }
  SimResponse r = JsonResponse(
      500, RenderErrorJson("The server had an error while processing your "
                           "request. Sorry about that!",
                           "server_error", "", "server_error"));
  r.delay = options_.latency;
  return r;
}

SimResponse SimHandler::HandleMessages(const SimRequest& request) {
  const uint64_t sequence = next_sequence_.fetch_add(1);
  SimResponse response = AnswerMessages(request, sequence);
  AddAnthropicRateLimitHeaders(response.status == 429, &response.headers);
  response.headers.emplace_back("request-id",
                                "req_" + UniqueHex(sequence, 0x616e7468));
  return response;
}

SimResponse SimHandler::AnswerMessages(const SimRequest& request,
                                       uint64_t sequence) {
  const std::string_view key = Trim(request.Header("x-api-key"));
  if (!options_.required_api_key.empty()) {
    if (key != options_.required_api_key) {
      return AnthropicError(401, "authentication_error",
                            key.empty() ? "x-api-key header is required"
                                        : "invalid x-api-key");
    }
  }
  FaultKind fault = FaultKind::kNone;
  if (faults_ != nullptr) {
    fault = faults_->Next();
    if (fault != FaultKind::kNone && !IsAnswerFault(fault)) {
      stats_.RecordFault(FaultKindName(fault));
      if (fault == FaultKind::kEchoKey) return EchoKeyError(key, true);
      return RenderMessagesFault(fault);
    }
  }
  if (Trim(request.Header("anthropic-version")).empty()) {
    return AnthropicError(400, "invalid_request_error",
                          "anthropic-version: header is required");
  }
  ChatRequest chat;
  std::string message;
  if (!ParseMessagesRequest(request.body, &chat, &message).ok()) {
    return AnthropicError(400, "invalid_request_error", message);
  }
  if (!Serves(chat.model)) {
    return JsonResponse(404, ModelNotFoundJson(true, chat.model));
  }
  const MessageShape shape = ShapeFor(&chat);
  SimCompletion completion = Generate(chat, request.body);
  const std::string id = "msg_" + UniqueHex(sequence, 0x6d7367);
  SimResponse response =
      chat.stream ? EventStream(RenderMessageStream(completion, id, shape))
                  : JsonResponse(200, RenderMessageJson(completion, id, shape));
  response.delay = options_.latency;
  ApplyAnswerFault(fault, chat.stream, request.body, completion,
                   &response);
  return response;
}

SimResponse SimHandler::HandleBatches(const SimRequest& request,
                                      std::string_view path) {
  if (SimBatches::IsAnthropicPath(path)) {
    const std::string_view key = Trim(request.Header("x-api-key"));
    if (!options_.required_api_key.empty() &&
        key != options_.required_api_key) {
      return AnthropicError(401, "authentication_error",
                            key.empty() ? "x-api-key header is required"
                                        : "invalid x-api-key");
    }
    if (Trim(request.Header("anthropic-version")).empty()) {
      return AnthropicError(400, "invalid_request_error",
                            "anthropic-version: header is required");
    }
    return batches_.Handle(request, path);
  }
  const std::string_view key = BearerToken(request.Header("authorization"));
  if (!options_.required_api_key.empty() && key != options_.required_api_key) {
    return JsonResponse(
        401, RenderErrorJson(
                 key.empty() ? "You didn't provide an API key."
                             : absl::StrCat("Incorrect API key provided: ",
                                            MaskKey(key), "."),
                 "invalid_request_error", "", "invalid_api_key"));
  }
  return batches_.Handle(request, path);
}

SimBatchAnswer SimHandler::AnswerBatchRequest(bool anthropic,
                                              std::string_view body) {
  const uint64_t sequence = next_sequence_.fetch_add(1);
  ChatRequest chat;
  std::string message;
  InvalidRequest invalid;
  const bool parsed = anthropic
                          ? ParseMessagesRequest(body, &chat, &message).ok()
                          : ParseChatRequest(body, &chat, &invalid).ok();
  if (!parsed) {
    return {400, anthropic ? RenderAnthropicErrorJson("invalid_request_error",
                                                      message)
                           : RenderErrorJson(invalid.message,
                                             "invalid_request_error",
                                             invalid.param, invalid.code)};
  }
  if (chat.stream) {
    constexpr std::string_view kNoStream =
        "stream: streaming is not supported in a batch";
    return {400, anthropic ? RenderAnthropicErrorJson("invalid_request_error",
                                                      kNoStream)
                           : RenderErrorJson(kNoStream,
                                             "invalid_request_error", "stream",
                                             "")};
  }
  if (!Serves(chat.model)) return {404, ModelNotFoundJson(anthropic, chat.model)};
  if (!anthropic && options_.refuse_n && chat.n > 1) {
    return {400, RefuseN().body};
  }
  const MessageShape shape = anthropic ? ShapeFor(&chat) : MessageShape();
  SimCompletion completion = Generate(chat, body);
  std::string rendered =
      anthropic
          ? RenderMessageJson(completion,
                              "msg_" + UniqueHex(sequence, 0x6d7367), shape)
          : RenderCompletionJson(completion,
                                 "chatcmpl-" + UniqueHex(sequence, 0x63686174),
                                 clock_.WallMillis() / 1000);
  stats_.RecordCompletion(body, completion.usage.prompt_tokens,
                          completion.usage.completion_tokens,
                          static_cast<int64_t>(completion.choices.size()));
  return {200, std::move(rendered)};
}

bool SimHandler::Serves(std::string_view model) const {
  return options_.models.empty() ||
         std::find(options_.models.begin(), options_.models.end(), model) !=
             options_.models.end();
}

SimResponse SimHandler::RenderMessagesFault(FaultKind kind) {
  if (kind == FaultKind::kReset || kind == FaultKind::kLatin1) {
    return RenderFault(kind);
  }
  if (kind == FaultKind::kQuota) {
    return AnthropicError(
        400, "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API.");
  }
  if (kind == FaultKind::kRateLimited) {
    SimResponse r = AnthropicError(
        429, "rate_limit_error",
        "This request would exceed the rate limit for teacher-sim.");
    r.headers.emplace_back("retry-after", "1");
    return r;
  }
  SimResponse r = AnthropicError(529, "overloaded_error", "Overloaded");
  r.delay = options_.latency;
  return r;
}

}  // namespace distillery::teacher_sim
