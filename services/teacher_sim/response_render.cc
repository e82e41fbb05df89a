#include "services/teacher_sim/response_render.h"

#include "services/teacher_sim/json_writer.h"

namespace distillery::teacher_sim {
namespace {

constexpr int kWordsPerDelta = 4;

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

// A chunk with one choice whose delta has `field` = `value` (no field when
// `field` is ""), and finish_reason null or given.
std::string DeltaChunk(std::string_view id, int64_t created,
                       const SimCompletion& completion, std::string_view field,
                       std::string_view value, bool role,
                       std::string_view finish_reason) {
  JsonWriter w;
  BeginChunk(w, id, created, completion);
  w.Key("choices").BeginArray().BeginObject();
  w.Key("index").Int(0);
  w.Key("delta").BeginObject();
  if (role) w.Key("role").String("assistant");
  if (!field.empty()) w.Key(field).String(value);
  w.EndObject();
  w.Key("logprobs").Null();
  w.Key("finish_reason");
  if (finish_reason.empty()) {
    w.Null();
  } else {
    w.String(finish_reason);
  }
  w.EndObject().EndArray();
  w.EndObject();
  return w.Release();
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
  std::string out;
  const SimChoice empty;
  const SimChoice& c =
      completion.choices.empty() ? empty : completion.choices.front();
  AppendEvent("", DeltaChunk(id, created, completion, "content", "", true, ""),
              &out);
  if (completion.reasoning_model) {
    for (const std::string& piece :
         SplitIntoDeltas(c.reasoning_content, kWordsPerDelta)) {
      AppendEvent("",
                  DeltaChunk(id, created, completion, "reasoning_content",
                             piece, false, ""),
                  &out);
    }
  }
  for (const std::string& piece : SplitIntoDeltas(c.content, kWordsPerDelta)) {
    AppendEvent(
        "", DeltaChunk(id, created, completion, "content", piece, false, ""),
        &out);
  }
  AppendEvent("",
              DeltaChunk(id, created, completion, "", "", false,
                         c.finish_reason.empty() ? "stop" : c.finish_reason),
              &out);
  if (include_usage) {
    JsonWriter w;
    BeginChunk(w, id, created, completion);
    w.Key("choices").BeginArray().EndArray();
    w.Key("usage").BeginObject();
    w.Key("prompt_tokens").Int(completion.usage.prompt_tokens);
    w.Key("completion_tokens").Int(c.content_tokens + c.reasoning_tokens);
    w.Key("total_tokens")
        .Int(completion.usage.prompt_tokens + c.content_tokens +
             c.reasoning_tokens);
    w.Key("prompt_tokens_details").BeginObject();
    w.Key("cached_tokens").Int(0);
    w.EndObject();
    w.Key("completion_tokens_details").BeginObject();
    w.Key("reasoning_tokens").Int(c.reasoning_tokens);
    w.EndObject();
    w.EndObject();
    w.EndObject();
    AppendEvent("", w.str(), &out);
  }
  AppendEvent("", "[DONE]", &out);
  return out;
}

std::string AnthropicStopReason(std::string_view finish_reason) {
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
  w.BeginObject();
  w.Key("type").String("text");
  w.Key("text").String(c.content);
  w.EndObject();
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
  start_block([](JsonWriter& w) {
    w.Key("type").String("text");
    w.Key("text").String("");
  });
  for (const std::string& piece : SplitIntoDeltas(c.content, kWordsPerDelta)) {
    delta("text_delta", "text", piece);
  }
  stop_block();
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
