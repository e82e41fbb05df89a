// Teacher adapters, without HTTP: parsing an answer (plain JSON and SSE
// streams, OpenAI-compatible and Anthropic) and building a request body.
// These run on the worker once per teacher call, on the HttpClient's thread.
//
// The parsers take the body by value, as the adapters move the HTTP body in;
// each iteration therefore copies the prepared body first (a ~2 KB memcpy,
// well under 1% of a parse).
#include <string>
#include <utility>

#include "bench/micro/bench_inputs.h"
#include "benchmark/benchmark.h"
#include "common/teacher/anthropic_messages_format.h"
#include "common/teacher/openai_chat_format.h"

namespace distillery::bench {
namespace {

constexpr uint64_t kSeed = 1;
// Wall time handed to the response handlers (for retry-after dates).
constexpr int64_t kNowWallMillis = 1'750'000'000'000;

// Runs `parse` on copies of `body` and fails the benchmark unless the answer
// parses with both content and reasoning.
template <typename Parse>
void RunParse(benchmark::State& state, const std::string& body, Parse parse) {
  for (auto _ : state) {
    TeacherResult result = parse(std::string(body));
    benchmark::DoNotOptimize(result);
    if (!result.status.ok() || result.answer.content.empty() ||
        result.answer.reasoning.empty()) {
      state.SkipWithError("the sample body did not parse");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}

void BM_ParseChatResponse(benchmark::State& state) {
  const std::string body =
      ChatCompletionBody(AnswerText(kSeed), ReasoningText(kSeed));
  RunParse(state, body, ParseChatResponse);
}
BENCHMARK(BM_ParseChatResponse);

void BM_ParseChatStream(benchmark::State& state) {
  const std::string body =
      ChatCompletionStream(AnswerText(kSeed), ReasoningText(kSeed));
  RunParse(state, body, ParseChatStream);
}
BENCHMARK(BM_ParseChatStream);

// The whole path the worker runs for a 200: the API-key scan of the body
// (HandleRedacted), status and header handling, then the parse.
void BM_HandleChatResponse(benchmark::State& state) {
  HttpResponse response;
  response.status = 200;
  response.headers = {{"content-type", "application/json"},
                      {"x-ratelimit-remaining-requests", "4999"},
                      {"x-ratelimit-remaining-tokens", "1999000"}};
  response.body = ChatCompletionBody(AnswerText(kSeed), ReasoningText(kSeed));
  const std::string api_key = "sk-proj-4fQ2r8VbX1mN7kLp0sT9wY3zA6cE5hJd";
  for (auto _ : state) {
    TeacherResult result =
        HandleChatResponse(response, kNowWallMillis, api_key, false);
    benchmark::DoNotOptimize(result);
    if (!result.status.ok()) {
      state.SkipWithError("the sample response was not accepted");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(response.body.size()));
}
BENCHMARK(BM_HandleChatResponse);

void BM_ParseMessagesResponse(benchmark::State& state) {
  const std::string body =
      MessagesBody(AnswerText(kSeed), ReasoningText(kSeed));
  RunParse(state, body, ParseMessagesResponse);
}
BENCHMARK(BM_ParseMessagesResponse);

void BM_ParseMessagesStream(benchmark::State& state) {
  const std::string body =
      MessagesStream(AnswerText(kSeed), ReasoningText(kSeed));
  RunParse(state, body, ParseMessagesStream);
}
BENCHMARK(BM_ParseMessagesStream);

void BM_BuildChatRequestBody(benchmark::State& state) {
  const TeacherRequest request = SampleTeacherRequest(kSeed);
  ChatBodyOptions options;
  options.stream = state.range(0) != 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> body = BuildChatRequestBody(request, options);
    if (!body.ok()) {
      state.SkipWithError("the sample request did not encode");
      break;
    }
    bytes += static_cast<int64_t>(body->size());
    benchmark::DoNotOptimize(body);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_BuildChatRequestBody)->ArgName("stream")->Arg(0)->Arg(1);

void BM_BuildMessagesRequestBody(benchmark::State& state) {
  const TeacherRequest request = SampleTeacherRequest(kSeed);
  MessagesBodyOptions options;
  options.default_max_tokens = 4096;
  options.thinking_budget_tokens = 2048;
  int64_t bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> body =
        BuildMessagesRequestBody(request, options);
    if (!body.ok()) {
      state.SkipWithError("the sample request did not encode");
      break;
    }
    bytes += static_cast<int64_t>(body->size());
    benchmark::DoNotOptimize(body);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_BuildMessagesRequestBody);

}  // namespace
}  // namespace distillery::bench
