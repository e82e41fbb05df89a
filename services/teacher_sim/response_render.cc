#include "services/teacher_sim/response_render.h"

#include <algorithm>

#include "services/teacher_sim/json_writer.h"
#include "services/teacher_sim/sim_logprobs.h"

namespace distillery::teacher_sim {
namespace {

constexpr int kWordsPerDelta = 4;
constexpr size_t kArgumentBytesPerDelta = 16;

// One SSE event; `event` "" writes a data-only event (OpenAI's style).
void AppendEvent(std::string_view event, std::string_view data,
                 std::string* out) {
  if (!event.empty()) {
    out->append("event: ");
    out->append(event);
    out->append("\n");
  }
  out->append("data: ");
  out->append(data);
  out->append("\n\n");
}

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\t'; }

void BeginChunk(JsonWriter& w, std::string_view id, int64_t created,
                const SimCompletion& completion) {
  w.BeginObject();
  w.Key("id").String(id);
  w.Key("object").String("chat.completion.chunk");
  w.Key("created").Int(created);
  w.Key("model").String(completion.model);
  w.Key("system_fingerprint").String("fp_teachersim");
}

// What one chunk's single choice says.
struct Delta {
  int64_t index = 0;
  bool role = false;
  // delta.`field` = `value`; no field when `field` is "".
  std::string_view field = {};
  std::string_view value = {};
  // A tool call: its opening delta (content null, id, type, name and empty
  // arguments), or a piece of its arguments.
  const SimToolCall* call_start = nullptr;
  const std::string_view* call_arguments = nullptr;
  // logprobs.content: entries [begin, end) of `tokens`; null without.
  const std::vector<SimTokenLogprob>* tokens = nullptr;
  size_t begin = 0;
  size_t end = 0;
  std::string_view finish_reason = {};  // "" for null
};

void WriteToolCallDelta(const Delta& d, JsonWriter& w) {
  w.Key("tool_calls").BeginArray().BeginObject();
  w.Key("index").Int(0);
  if (d.call_start != nullptr) {
    w.Key("id").String("call_" + d.call_start->id_hex);
    w.Key("type").String("function");
  }
  w.Key("function").BeginObject();
  if (d.call_start != nullptr) w.Key("name").String(d.call_start->name);
  w.Key("arguments").String(d.call_arguments != nullptr ? *d.call_arguments
                                                        : "");
  w.EndObject();
  w.EndObject().EndArray();
}

std::string DeltaChunk(std::string_view id, int64_t created,
                       const SimCompletion& completion, const Delta& d) {
  JsonWriter w;
  BeginChunk(w, id, created, completion);
  w.Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(d.index);
  w.Key("delta").BeginObject();
  if (d.role) w.Key("role").String("assistant");
  if (d.call_start != nullptr) w.Key("content").Null();
  if (!d.field.empty()) w.Key(d.field).String(d.value);
  if (d.call_start != nullptr || d.call_arguments != nullptr) {
    WriteToolCallDelta(d, w);
  }
  w.EndObject();
  w.Key("logprobs");
  if (d.tokens != nullptr) {
    w.BeginObject().Key("content");
    WriteLogprobContent(*d.tokens, d.begin, d.end, w);
    w.Key("refusal").Null();
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("finish_reason");
  if (d.finish_reason.empty()) {
    w.Null();
  } else {
    w.String(d.finish_reason);
  }
  w.EndObject().EndArray();
  w.EndObject();
  return w.Release();
}

// `text` in pieces of about `bytes` bytes, never inside a UTF-8 character.
std::vector<std::string_view> SplitBytes(std::string_view text, size_t bytes) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.size(), start + bytes);
    while (end < text.size() &&
           (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
      ++end;
    }
    out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

// The content deltas of a choice with logprobs: a few tokens each, with
// their entries.
void AppendLogprobDeltas(std::string_view id, int64_t created,
                         const SimCompletion& completion, const SimChoice& c,
                         int64_t index, std::vector<std::string>* chunks) {
  const std::vector<SimTokenLogprob> tokens =
      TokenLogprobs(c.content, c.hash, completion.top_logprobs);
  for (size_t begin = 0; begin < tokens.size(); begin += kWordsPerDelta) {
    const size_t end = std::min(tokens.size(), begin + kWordsPerDelta);
    std::string text;
    for (size_t i = begin; i < end; ++i) text += tokens[i].token;
    Delta d;
    d.index = index;
    d.field = "content";
    d.value = text;
    d.tokens = &tokens;
    d.begin = begin;
    d.end = end;
    chunks->push_back(DeltaChunk(id, created, completion, d));
  }
}

// Every chunk of choice `index`, in order, up to its finish_reason chunk.
std::vector<std::string> ChoiceChunks(std::string_view id, int64_t created,
                                      const SimCompletion& completion,
                                      const SimChoice& c, int64_t index) {
  std::vector<std::string> chunks;
  const auto add = [&](Delta d) {
    d.index = index;
    chunks.push_back(DeltaChunk(id, created, completion, d));
  };
  if (c.tool_call.has_value()) {
    add({.role = true, .call_start = &*c.tool_call});
    for (std::string_view piece :
         SplitBytes(c.tool_call->arguments, kArgumentBytesPerDelta)) {
      add({.call_arguments = &piece});
    }
    add({.finish_reason = "tool_calls"});
    return chunks;
  }
  add({.role = true, .field = "content", .value = ""});
  if (completion.reasoning_model) {
    for (const std::string& piece :
         SplitIntoDeltas(c.reasoning_content, kWordsPerDelta)) {
      add({.field = "reasoning_content", .value = piece});
    }
  }
  if (completion.logprobs) {
    AppendLogprobDeltas(id, created, completion, c, index, &chunks);
  } else {
    for (const std::string& piece :
         SplitIntoDeltas(c.content, kWordsPerDelta)) {
      add({.field = "content", .value = piece});
    }
  }
  add({.finish_reason = c.finish_reason.empty() ? "stop" : c.finish_reason});
  return chunks;
}

void WriteAnthropicUsage(JsonWriter& w, int64_t input, int64_t output) {
  w.Key("usage").BeginObject();
  w.Key("input_tokens").Int(input);
  w.Key("cache_creation_input_tokens").Int(0);
  w.Key("cache_read_input_tokens").Int(0);
  w.Key("output_tokens").Int(output);
  w.EndObject();
}

// The opaque payload of a redacted_thinking block.
std::string RedactedData(std::string_view thinking) {
  return "EnRedacted" + ThinkingSignature(std::string("r:") +
                                          std::string(thinking));
}

// A text choice always has its text block; a tool call has one only when
// something was said before it.
bool HasTextBlock(const SimChoice& c) {
  return !c.tool_call.has_value() || !c.content.empty();
}

}  // namespace

std::vector<std::string> SplitIntoDeltas(std::string_view text, int words) {
  std::vector<std::string> out;
  size_t start = 0;
  int seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    // A word ends where whitespace begins; cut after the whitespace run.
    if (IsSpace(text[i]) && (i + 1 == text.size() || !IsSpace(text[i + 1]))) {
      if (++seen == words) {
        out.emplace_back(text.substr(start, i + 1 - start));
        start = i + 1;
        seen = 0;
      }
    }
  }
  if (start < text.size()) out.emplace_back(text.substr(start));
  return out;
}

std::string RenderChatStream(const SimCompletion& completion,
                             std::string_view id, int64_t created,
                             bool include_usage) {
  std::vector<std::vector<std::string>> per_choice;
  if (completion.choices.empty()) {
    per_choice.push_back(ChoiceChunks(id, created, completion, SimChoice(), 0));
  }
  for (size_t i = 0; i < completion.choices.size(); ++i) {
    per_choice.push_back(ChoiceChunks(id, created, completion,
                                      completion.choices[i],
                                      static_cast<int64_t>(i)));
  }
  // Choices take turns, as a server sampling them together sends them.
  std::string out;
  for (size_t k = 0;; ++k) {
    bool any = false;
    for (const std::vector<std::string>& chunks : per_choice) {
      if (k >= chunks.size()) continue;
      AppendEvent("", chunks[k], &out);
      any = true;
    }
    if (!any) break;
  }
  if (include_usage) {
    const SimUsage& usage = completion.usage;
    JsonWriter w;
    BeginChunk(w, id, created, completion);
    w.Key("choices").BeginArray().EndArray();
    w.Key("usage").BeginObject();
    w.Key("prompt_tokens").Int(usage.prompt_tokens);
    w.Key("completion_tokens").Int(usage.completion_tokens);
    w.Key("total_tokens").Int(usage.prompt_tokens + usage.completion_tokens);
    w.Key("prompt_tokens_details").BeginObject();
    w.Key("cached_tokens").Int(0);
    w.EndObject();
    w.Key("completion_tokens_details").BeginObject();
    w.Key("reasoning_tokens").Int(usage.reasoning_tokens);
    w.EndObject();
    w.EndObject();
    w.EndObject();
    AppendEvent("", w.str(), &out);
  }
  AppendEvent("", "[DONE]", &out);
  return out;
}

std::string AnthropicStopReason(std::string_view finish_reason) {
  if (finish_reason == "tool_calls") return "tool_use";
  return finish_reason == "length" ? "max_tokens" : "end_turn";
}

std::string ThinkingSignature(std::string_view thinking) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint64_t h = 0xCBF29CE484222325ULL;
  for (char c : thinking) {
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001B3ULL;
  }
  std::string out = "Eq";
  for (int i = 0; i < 64; ++i) {
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    out.push_back(kAlphabet[h & 63]);
  }
  return out + "==";
}

std::string RenderMessageJson(const SimCompletion& completion,
                              std::string_view id, MessageShape shape) {
  const SimChoice empty;
  const SimChoice& c =
      completion.choices.empty() ? empty : completion.choices.front();
  JsonWriter w;
  w.BeginObject();
  w.Key("id").String(id);
  w.Key("type").String("message");
  w.Key("role").String("assistant");
  w.Key("model").String(completion.model);
  w.Key("content").BeginArray();
  if (shape.thinking) {
    w.BeginObject();
    w.Key("type").String("thinking");
    w.Key("thinking").String(c.reasoning_content);
    w.Key("signature").String(ThinkingSignature(c.reasoning_content));
    w.EndObject();
    if (shape.redacted) {
      w.BeginObject();
      w.Key("type").String("redacted_thinking");
      w.Key("data").String(RedactedData(c.reasoning_content));
      w.EndObject();
    }
  }
  if (HasTextBlock(c)) {
    w.BeginObject();
    w.Key("type").String("text");
    w.Key("text").String(c.content);
    w.EndObject();
  }
  if (c.tool_call.has_value()) {
    w.BeginObject();
    w.Key("type").String("tool_use");
    w.Key("id").String("toolu_" + c.tool_call->id_hex);
    w.Key("name").String(c.tool_call->name);
    w.Key("input").Raw(c.tool_call->arguments);
    w.EndObject();
  }
  w.EndArray();
  w.Key("stop_reason").String(AnthropicStopReason(c.finish_reason));
  w.Key("stop_sequence").Null();
  WriteAnthropicUsage(w, completion.usage.prompt_tokens,
                      c.content_tokens + c.reasoning_tokens);
  w.EndObject();
  return w.Release();
}

std::string RenderMessageStream(const SimCompletion& completion,
                                std::string_view id, MessageShape shape) {
  const SimChoice empty;
  const SimChoice& c =
      completion.choices.empty() ? empty : completion.choices.front();
  std::string out;
  {
    JsonWriter w;
    w.BeginObject();
    w.Key("type").String("message_start");
    w.Key("message").BeginObject();
    w.Key("id").String(id);
    w.Key("type").String("message");
    w.Key("role").String("assistant");
    w.Key("model").String(completion.model);
    w.Key("content").BeginArray().EndArray();
    w.Key("stop_reason").Null();
    w.Key("stop_sequence").Null();
    WriteAnthropicUsage(w, completion.usage.prompt_tokens, 1);
    w.EndObject();
    w.EndObject();
    AppendEvent("message_start", w.str(), &out);
  }
  AppendEvent("ping", "{\"type\": \"ping\"}", &out);
  int64_t index = 0;
  auto start_block = [&](auto&& write_block) {
    JsonWriter w;
    w.BeginObject();
    w.Key("type").String("content_block_start");
    w.Key("index").Int(index);
    w.Key("content_block").BeginObject();
    write_block(w);
    w.EndObject();
    w.EndObject();
    AppendEvent("content_block_start", w.str(), &out);
  };
  auto delta = [&](std::string_view type, std::string_view field,
                   std::string_view value) {
    JsonWriter w;
    w.BeginObject();
    w.Key("type").String("content_block_delta");
    w.Key("index").Int(index);
    w.Key("delta").BeginObject();
    w.Key("type").String(type);
    w.Key(field).String(value);
    w.EndObject();
    w.EndObject();
    AppendEvent("content_block_delta", w.str(), &out);
  };
  auto stop_block = [&] {
    JsonWriter w;
    w.BeginObject();
    w.Key("type").String("content_block_stop");
    w.Key("index").Int(index);
    w.EndObject();
    AppendEvent("content_block_stop", w.str(), &out);
    ++index;
  };
  if (shape.thinking) {
    start_block([](JsonWriter& w) {
      w.Key("type").String("thinking");
      w.Key("thinking").String("");
      w.Key("signature").String("");
    });
    for (const std::string& piece :
         SplitIntoDeltas(c.reasoning_content, kWordsPerDelta)) {
      delta("thinking_delta", "thinking", piece);
    }
    delta("signature_delta", "signature",
          ThinkingSignature(c.reasoning_content));
    stop_block();
    if (shape.redacted) {
      const std::string data = RedactedData(c.reasoning_content);
      start_block([&data](JsonWriter& w) {
        w.Key("type").String("redacted_thinking");
        w.Key("data").String(data);
      });
      stop_block();
    }
  }
  if (HasTextBlock(c)) {
    start_block([](JsonWriter& w) {
      w.Key("type").String("text");
      w.Key("text").String("");
    });
    for (const std::string& piece :
         SplitIntoDeltas(c.content, kWordsPerDelta)) {
      delta("text_delta", "text", piece);
    }
    stop_block();
  }
  if (c.tool_call.has_value()) {
    const SimToolCall& call = *c.tool_call;
    start_block([&call](JsonWriter& w) {
      w.Key("type").String("tool_use");
      w.Key("id").String("toolu_" + call.id_hex);
      w.Key("name").String(call.name);
      w.Key("input").BeginObject().EndObject();
    });
    for (std::string_view piece :
         SplitBytes(call.arguments, kArgumentBytesPerDelta)) {
      delta("input_json_delta", "partial_json", piece);
    }
    stop_block();
  }
  {
    JsonWriter w;
    w.BeginObject();
    w.Key("type").String("message_delta");
    w.Key("delta").BeginObject();
    w.Key("stop_reason").String(AnthropicStopReason(c.finish_reason));
    w.Key("stop_sequence").Null();
    w.EndObject();
    w.Key("usage").BeginObject();
    w.Key("output_tokens").Int(c.content_tokens + c.reasoning_tokens);
    w.EndObject();
    w.EndObject();
    AppendEvent("message_delta", w.str(), &out);
  }
  AppendEvent("message_stop", "{\"type\":\"message_stop\"}", &out);
  return out;
}

std::string RenderAnthropicErrorJson(std::string_view type,
                                     std::string_view message) {
  JsonWriter w;
  w.BeginObject();
  w.Key("type").String("error");
  w.Key("error").BeginObject();
  w.Key("type").String(type);
  w.Key("message").String(message);
  w.EndObject();
  w.EndObject();
  return w.Release();
}

}  // namespace distillery::teacher_sim
