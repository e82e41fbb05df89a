#include "bench/micro/bench_inputs.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <vector>

#include "nlohmann/json.hpp"

namespace distillery::bench {
namespace {

using nlohmann::ordered_json;

constexpr std::string_view kVocabulary[] = {
    "the",        "a",           "of",       "to",         "and",
    "in",         "is",          "that",     "for",        "it",
    "with",       "as",          "on",       "be",         "this",
    "by",         "are",         "we",       "can",        "from",
    "value",      "function",    "number",   "result",     "example",
    "first",      "second",      "each",     "then",       "because",
    "so",         "if",          "when",     "which",      "both",
    "sum",        "product",     "equation", "solution",   "term",
    "side",       "step",        "check",    "answer",     "question",
    "case",       "order",       "list",     "set",        "element",
    "prime",      "factor",      "divisor",  "integer",    "fraction",
    "ratio",      "rate",        "speed",    "distance",   "time",
    "hour",       "minute",      "price",    "cost",       "total",
    "average",    "probability", "event",    "outcome",    "sample",
    "triangle",   "angle",       "circle",   "radius",     "area",
    "length",     "width",       "height",   "volume",     "point",
    "line",       "slope",       "graph",    "curve",      "limit",
    "derivative", "integral",    "series",   "sequence",   "pattern",
    "string",     "array",       "index",    "loop",       "variable",
    "pointer",    "memory",      "thread",   "lock",       "queue",
    "request",    "response",    "server",   "client",     "cache",
    "key",        "hash",        "table",    "tree",       "node",
    "edge",       "path",        "cycle",    "search",     "sort",
    "merge",      "split",       "count",    "measure",    "compare",
    "compute",    "simplify",    "expand",   "substitute", "solve",
    "verify",     "assume",      "suppose",  "note",       "recall",
    "consider",   "define",      "write",    "gives",      "means",
    "holds",      "follows",     "remains",  "becomes",    "equals",
    "larger",     "smaller",     "positive", "negative",   "even",
    "odd",        "exact",       "simple",   "careful",    "direct",
    "correct",    "wrong",       "likely",   "possible",   "only",
    "two",        "three",       "four",     "five",       "ten",
    "twelve",     "hundred",     "half",     "third",      "quarter",
    "now",        "again",       "also",     "still",      "therefore",
    "however",    "instead",     "finally",  "already",    "exactly",
    "roughly",    "about",       "over",     "under",      "between",
    "after",      "before",      "into",     "out",        "up",
    "down",       "all",         "some",     "most",       "none",
    "other",      "same",
};

// SplitMix64: a tiny generator whose output is fixed by the standard-free
// algorithm, unlike std:: distributions.
class Words {
 public:
  explicit Words(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 1) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  int Between(int low, int high) {
    return low +
           static_cast<int>(Next() % static_cast<uint64_t>(high - low + 1));
  }

  // One sentence of 6 to 18 words, capitalised, with an occasional comma.
  void AppendSentence(std::string* out, char end = '.') {
    const int words = Between(6, 18);
    for (int i = 0; i < words; ++i) {
      std::string_view word = kVocabulary[Next() % std::size(kVocabulary)];
      if (i == 0) {
        out->push_back(static_cast<char>(word[0] - 'a' + 'A'));
        out->append(word.substr(1));
      } else {
        out->push_back(' ');
        out->append(word);
      }
      if (i > 1 && i + 2 < words && Next() % 9 == 0) out->push_back(',');
    }
    out->push_back(end);
  }

  // Sentences until `out` has grown by at least `bytes`.
  void AppendParagraph(std::string* out, size_t bytes) {
    const size_t target = out->size() + bytes;
    bool first = true;
    while (out->size() < target) {
      if (!first) out->push_back(' ');
      first = false;
      AppendSentence(out);
    }
  }

 private:
  uint64_t state_;
};

// Cuts `text` before every space and newline run: roughly one piece per
// word, as tokenizers stream them.
std::vector<std::string> Tokens(const std::string& text, int words_per_piece) {
  std::vector<std::string> pieces;
  std::string piece;
  int words = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool boundary = (text[i] == ' ' || text[i] == '\n') && i > 0 &&
                          text[i - 1] != ' ' && text[i - 1] != '\n';
    if (boundary && ++words >= words_per_piece && !piece.empty()) {
      pieces.push_back(std::move(piece));
      piece.clear();
      words = 0;
    }
    piece.push_back(text[i]);
  }
  if (!piece.empty()) pieces.push_back(std::move(piece));
  return pieces;
}

constexpr int64_t kCreated = 1750000000;

ordered_json ChatChunk(ordered_json delta, ordered_json finish_reason) {
  return ordered_json{
      {"id", "chatcmpl-b7d1e2f0a9c84e5d"},
      {"object", "chat.completion.chunk"},
      {"created", kCreated},
      {"model", kModelName},
      {"choices", ordered_json::array({ordered_json{
                      {"index", 0},
                      {"delta", std::move(delta)},
                      {"logprobs", nullptr},
                      {"finish_reason", std::move(finish_reason)}}})}};
}

ordered_json ChatUsage() {
  return ordered_json{
      {"prompt_tokens", 142},
      {"total_tokens", 530},
      {"completion_tokens", 388},
      {"prompt_tokens_details", {{"cached_tokens", 64}}},
      {"completion_tokens_details", {{"reasoning_tokens", 151}}}};
}

void AppendEvent(std::string* out, std::string_view event,
                 const ordered_json& data) {
  if (!event.empty()) {
    out->append("event: ");
    out->append(event);
    out->push_back('\n');
  }
  out->append("data: ");
  out->append(data.dump());
  out->append("\n\n");
}

// A base64-looking signature of the length Anthropic sends (~350 bytes).
std::string Signature() {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  Words words(99);
  std::string s = "Eq";
  while (s.size() < 348) s.push_back(kAlphabet[words.Next() % 64]);
  return s + "==";
}

}  // namespace

std::string PromptText(uint64_t seed) {
  Words words(seed * 3 + 1);
  std::string out;
  words.AppendParagraph(&out, 300);
  out.push_back(' ');
  words.AppendSentence(&out, '?');
  return out;
}

std::string ReasoningText(uint64_t seed) {
  Words words(seed * 3 + 2);
  std::string out = "Okay, let me work through this. ";
  words.AppendParagraph(&out, 330);
  out.append("\n\nWait, ");
  words.AppendParagraph(&out, 230);
  return out;
}

std::string AnswerText(uint64_t seed) {
  Words words(seed * 3 + 3);
  std::string out;
  words.AppendParagraph(&out, 280);
  out.append("\n\n");
  for (int item = 0; item < 4; ++item) {
    out.append("- ");
    words.AppendSentence(&out);
    out.push_back('\n');
  }
  out.push_back('\n');
  words.AppendParagraph(&out, 180);
  return out;
}

TeacherRequest SampleTeacherRequest(uint64_t seed) {
  TeacherRequest request;
  request.model = std::string(kModelName);
  request.messages.push_back({"system", std::string(kSystemPrompt)});
  request.messages.push_back({"user", PromptText(seed)});
  request.params.max_tokens = 4096;
  request.params.temperature = 0.6;
  request.params.top_p = 0.95;
  request.params.seed = 7;
  return request;
}

v1::Prompt SamplePrompt(uint64_t seed) {
  v1::Prompt prompt;
  v1::ChatMessage* system = prompt.add_messages();
  system->set_role("system");
  system->set_content(std::string(kSystemPrompt));
  v1::ChatMessage* user = prompt.add_messages();
  user->set_role("user");
  user->set_content(PromptText(seed));
  return prompt;
}

v1::SamplingParams SampleParams() {
  v1::SamplingParams params;
  params.set_max_tokens(4096);
  params.set_temperature(0.6);
  params.set_top_p(0.95);
  params.set_seed(7);
  return params;
}

std::string ChatCompletionBody(const std::string& content,
                               const std::string& reasoning) {
  ordered_json body{{"id", "chatcmpl-b7d1e2f0a9c84e5d"},
                    {"object", "chat.completion"},
                    {"created", kCreated},
                    {"model", kModelName},
                    {"choices", ordered_json::array({ordered_json{
                                    {"index", 0},
                                    {"message",
                                     {{"role", "assistant"},
                                      {"reasoning", reasoning},
                                      {"content", content},
                                      {"tool_calls", ordered_json::array()}}},
                                    {"logprobs", nullptr},
                                    {"finish_reason", "stop"},
                                    {"stop_reason", nullptr}}})},
                    {"usage", ChatUsage()},
                    {"prompt_logprobs", nullptr}};
  return body.dump();
}

std::string ChatCompletionStream(const std::string& content,
                                 const std::string& reasoning) {
  std::string out;
  AppendEvent(&out, "",
              ChatChunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  for (const std::string& token : Tokens(reasoning, 1)) {
    AppendEvent(&out, "", ChatChunk({{"reasoning", token}}, nullptr));
  }
  for (const std::string& token : Tokens(content, 1)) {
    AppendEvent(&out, "", ChatChunk({{"content", token}}, nullptr));
  }
  AppendEvent(&out, "", ChatChunk(ordered_json::object(), "stop"));
  ordered_json usage_chunk{{"id", "chatcmpl-b7d1e2f0a9c84e5d"},
                           {"object", "chat.completion.chunk"},
                           {"created", kCreated},
                           {"model", kModelName},
                           {"choices", ordered_json::array()},
                           {"usage", ChatUsage()}};
  AppendEvent(&out, "", usage_chunk);
  out.append("data: [DONE]\n\n");
  return out;
}

std::string MessagesBody(const std::string& content,
                         const std::string& reasoning) {
  ordered_json body{
      {"id", "msg_01XFDUDYJgAACzvnptvVoYEL"},
      {"type", "message"},
      {"role", "assistant"},
      {"model", "claude-sonnet-4-5"},
      {"content", ordered_json::array(
                      {ordered_json{{"type", "thinking"},
                                    {"thinking", reasoning},
                                    {"signature", Signature()}},
                       ordered_json{{"type", "text"}, {"text", content}}})},
      {"stop_reason", "end_turn"},
      {"stop_sequence", nullptr},
      {"usage",
       {{"input_tokens", 142},
        {"cache_creation_input_tokens", 0},
        {"cache_read_input_tokens", 64},
        {"output_tokens", 388}}}};
  return body.dump();
}

std::string MessagesStream(const std::string& content,
                           const std::string& reasoning) {
  std::string out;
  AppendEvent(&out, "message_start",
              {{"type", "message_start"},
               {"message",
                {{"id", "msg_01XFDUDYJgAACzvnptvVoYEL"},
                 {"type", "message"},
                 {"role", "assistant"},
                 {"model", "claude-sonnet-4-5"},
                 {"content", ordered_json::array()},
                 {"stop_reason", nullptr},
                 {"stop_sequence", nullptr},
                 {"usage",
                  {{"input_tokens", 142},
                   {"cache_creation_input_tokens", 0},
                   {"cache_read_input_tokens", 64},
                   {"output_tokens", 1}}}}}});
  AppendEvent(&out, "content_block_start",
              {{"type", "content_block_start"},
               {"index", 0},
               {"content_block",
                {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}}});
  AppendEvent(&out, "ping", {{"type", "ping"}});
  int sent = 0;
  for (const std::string& piece : Tokens(reasoning, 3)) {
    AppendEvent(&out, "content_block_delta",
                {{"type", "content_block_delta"},
                 {"index", 0},
                 {"delta", {{"type", "thinking_delta"}, {"thinking", piece}}}});
    if (++sent % 20 == 0) AppendEvent(&out, "ping", {{"type", "ping"}});
  }
  AppendEvent(
      &out, "content_block_delta",
      {{"type", "content_block_delta"},
       {"index", 0},
       {"delta", {{"type", "signature_delta"}, {"signature", Signature()}}}});
  AppendEvent(&out, "content_block_stop",
              {{"type", "content_block_stop"}, {"index", 0}});
  AppendEvent(&out, "content_block_start",
              {{"type", "content_block_start"},
               {"index", 1},
               {"content_block", {{"type", "text"}, {"text", ""}}}});
  for (const std::string& piece : Tokens(content, 3)) {
    AppendEvent(&out, "content_block_delta",
                {{"type", "content_block_delta"},
                 {"index", 1},
                 {"delta", {{"type", "text_delta"}, {"text", piece}}}});
  }
  AppendEvent(&out, "content_block_stop",
              {{"type", "content_block_stop"}, {"index", 1}});
  AppendEvent(
      &out, "message_delta",
      {{"type", "message_delta"},
       {"delta", {{"stop_reason", "end_turn"}, {"stop_sequence", nullptr}}},
       {"usage", {{"output_tokens", 388}}}});
  AppendEvent(&out, "message_stop", {{"type", "message_stop"}});
  return out;
}

ScratchDir::ScratchDir(std::string_view name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") +
                        "/" + std::string(name) + ".XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("distillery-microbench: mkdtemp");
    std::abort();
  }
  path_ = std::move(pattern);
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace distillery::bench
