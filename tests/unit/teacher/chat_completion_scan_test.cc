#include "common/teacher/chat_completion_scan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using json = nlohmann::json;

// The fields as the nlohmann path of ParseChatResponse reads them, for a
// body that path would answer with (nullopt otherwise): the oracle the
// scanner must agree with whenever it accepts a body.
std::optional<ChatCompletionFields> Reference(const std::string& body) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const auto str = [](const json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>()
                                            : std::string();
  };
  const auto num = [](const json& o, const char* k) -> int64_t {
    auto it = o.find(k);
    if (it == o.end()) return 0;
    if (it->is_number_unsigned()) {
      return static_cast<int64_t>(std::min<uint64_t>(
          it->get<uint64_t>(), std::numeric_limits<int64_t>::max()));
    }
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_number_float()) return std::llround(it->get<double>());
    return 0;
  };
  if (auto it = doc.find("error"); it != doc.end() && !it->is_null()) {
    return std::nullopt;
  }
  if (str(doc, "object") == "error") return std::nullopt;
  auto choices = doc.find("choices");
  if (choices == doc.end() || !choices->is_array() || choices->empty()) {
    return std::nullopt;
  }
  const json& choice = choices->front();
  if (!choice.is_object() || !choice.contains("message") ||
      !choice["message"].is_object()) {
    return std::nullopt;
  }
  const json& message = choice["message"];
  ChatCompletionFields f;
  if (auto c = message.find("content"); c != message.end() && !c->is_null()) {
    if (!c->is_string()) return std::nullopt;
    f.content = c->get<std::string>();
  }
  f.reasoning = str(message, "reasoning");
  f.reasoning_content = str(message, "reasoning_content");
  f.finish_reason = str(choice, "finish_reason");
  f.id = str(doc, "id");
  if (auto u = doc.find("usage"); u != doc.end() && u->is_object()) {
    f.has_usage = true;
    f.prompt_tokens = num(*u, "prompt_tokens");
    f.completion_tokens = num(*u, "completion_tokens");
    if (auto d = u->find("completion_tokens_details");
        d != u->end() && d->is_object()) {
      f.reasoning_tokens = num(*d, "reasoning_tokens");
    }
    auto p = u->find("prompt_tokens_details");
    if (p != u->end() && p->is_object() && p->contains("cached_tokens")) {
      f.cached_tokens = num(*p, "cached_tokens");
    } else {
      f.cached_tokens = num(*u, "prompt_cache_hit_tokens");
    }
  }
  return f;
}

void ExpectSame(const ChatCompletionFields& a, const ChatCompletionFields& b,
                const std::string& body) {
  EXPECT_EQ(a.id, b.id) << body;
  EXPECT_EQ(a.content, b.content) << body;
  EXPECT_EQ(a.reasoning, b.reasoning) << body;
  EXPECT_EQ(a.reasoning_content, b.reasoning_content) << body;
  EXPECT_EQ(a.finish_reason, b.finish_reason) << body;
  EXPECT_EQ(a.has_usage, b.has_usage) << body;
  EXPECT_EQ(a.prompt_tokens, b.prompt_tokens) << body;
  EXPECT_EQ(a.completion_tokens, b.completion_tokens) << body;
  EXPECT_EQ(a.reasoning_tokens, b.reasoning_tokens) << body;
  EXPECT_EQ(a.cached_tokens, b.cached_tokens) << body;
}

// Accepted bodies must match the oracle; returns whether it was accepted.
bool CheckAgainstReference(const std::string& body) {
  std::optional<ChatCompletionFields> scanned = ScanChatCompletion(body);
  if (!scanned) return false;
  std::optional<ChatCompletionFields> reference = Reference(body);
  EXPECT_TRUE(reference.has_value()) << "accepted a body nlohmann rejects: "
                                     << body;
  if (reference) ExpectSame(*scanned, *reference, body);
  return true;
}

const char kSimBody[] =
    R"({"id":"chatcmpl-0123","object":"chat.completion","created":1700000000,)"
    R"("model":"sim-reasoner","choices":[{"index":0,"message":{"role":)"
    R"("assistant","content":"You asked about \"A train leaves\". The )"
    R"(river \u00e9\ud83d\ude00 caf\u00E9 \/ \\ \b\f\n\r\t tab.",)"
    R"("reasoning_content":"Let me think \u2014 caf\u00e9 ok.","refusal":)"
    R"(null},"logprobs":null,"finish_reason":"stop"}],"usage":{)"
    R"("prompt_tokens":71,"completion_tokens":250,"total_tokens":321,)"
    R"("prompt_tokens_details":{"cached_tokens":0},)"
    R"("completion_tokens_details":{"reasoning_tokens":120}},)"
    R"("system_fingerprint":"fp_teachersim"})";

TEST(ScanChatCompletionTest, ReadsAPlainCompletion) {
  std::optional<ChatCompletionFields> f = ScanChatCompletion(kSimBody);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, "chatcmpl-0123");
  EXPECT_EQ(f->content,
            "You asked about \"A train leaves\". The river \xC3\xA9"
            "\xF0\x9F\x98\x80 caf\xC3\xA9 / \\ \b\f\n\r\t tab.");
  EXPECT_EQ(f->reasoning_content, "Let me think \xE2\x80\x94 caf\xC3\xA9 ok.");
  EXPECT_EQ(f->reasoning, "");
  EXPECT_EQ(f->finish_reason, "stop");
  EXPECT_TRUE(f->has_usage);
  EXPECT_EQ(f->prompt_tokens, 71);
  EXPECT_EQ(f->completion_tokens, 250);
  EXPECT_EQ(f->reasoning_tokens, 120);
  EXPECT_EQ(f->cached_tokens, 0);
  EXPECT_TRUE(CheckAgainstReference(kSimBody));
}

TEST(ScanChatCompletionTest, ReadsFieldsAsTheNlohmannPathDoes) {
  for (const std::string& body : std::vector<std::string>{
           // DeepSeek's cache hits when there are no prompt details.
           R"({"choices":[{"message":{"content":null}}],"usage":{)"
           R"("prompt_tokens":-3,"prompt_cache_hit_tokens":9}})",
           // Details that are not objects, or lack the field.
           R"({"choices":[{"message":{}}],"usage":{"prompt_tokens_details":)"
           R"({},"prompt_cache_hit_tokens":4,"completion_tokens_details":7}})",
           R"({"choices":[{"message":{"reasoning":5,"content":"x"},)"
           R"("finish_reason":null},{"bad":[1,2,{"x":true}]}],"id":7,)"
           R"("usage":"none","object":"chat.completion"})",
           " \r\n\t{\"choices\" : [ { \"message\" : { \"content\" : \"\" } } ] "
           "}\n\n",
           R"({"choices":[{"message":{"content":"a"}}],"usage":{)"
           R"("prompt_tokens":9223372036854775807,"completion_tokens":)"
           R"(-9223372036854775808,"x":[1.5e10,-0,0.0,1E+2,true,false]}})",
           R"({"error":null,"choices":[{"message":{"content":"a"}}]})",
       }) {
    std::optional<ChatCompletionFields> reference = Reference(body);
    ASSERT_TRUE(reference.has_value()) << body;
    std::optional<ChatCompletionFields> scanned = ScanChatCompletion(body);
    if (scanned) ExpectSame(*scanned, *reference, body);
  }
  // The common shapes above are all taken by the fast path, but for the
  // "error": null one, which it leaves to nlohmann.
  EXPECT_TRUE(ScanChatCompletion(
      R"({"choices":[{"message":{"content":null}}],"usage":{"prompt_tokens":1}})"));
  EXPECT_FALSE(ScanChatCompletion(
      R"({"error":null,"choices":[{"message":{"content":"a"}}]})"));
}

TEST(ScanChatCompletionTest, DeclinesWhatItDoesNotHandle) {
  for (const std::string& body : std::vector<std::string>{
           std::string(""),
           std::string("[1]"),
           std::string("\xEF\xBB\xBF{\"choices\":[{\"message\":{}}]}"),
           std::string(R"({"error":{"message":"x"}})"),
           std::string(R"({"object":"error","choices":[{"message":{}}]})"),
           std::string(R"({"choices":[]})"),
           std::string(R"({"choices":{}})"),
           std::string(R"({"choices":[1]})"),
           std::string(R"({"choices":[{"text":"x"}]})"),
           std::string(R"({"choices":[{"message":"x"}]})"),
           std::string(R"({"choices":[{"message":{"content":7}}]})"),
           std::string(R"({"choices":[{"message":{"content":[{"type":"text"}]}}]})"),
           // Given twice: nlohmann keeps the last.
           std::string(R"({"id":"a","id":"b","choices":[{"message":{}}]})"),
           std::string(R"({"choices":[{"message":{"content":"a","content":"b"}}]})"),
           // Escaped key.
           std::string(R"({"\u0063hoices":[{"message":{}}]})"),
           // Token counts that are not int64 integers.
           std::string(R"({"choices":[{"message":{}}],"usage":{"prompt_tokens":1.0}})"),
           std::string(R"({"choices":[{"message":{}}],"usage":{"prompt_tokens":9223372036854775808}})"),
           // Invalid JSON.
           std::string(R"({"choices":[{"message":{}}]} x)"),
           std::string(R"({"choices":[{"message":{}}],})"),
           std::string(R"({"choices":[{"message":{"content":"a	b"}}]})"),
           std::string(R"({"choices":[{"message":{"content":"\ud800"}}]})"),
           std::string(R"({"choices":[{"message":{"content":"\udc00"}}]})"),
           std::string(R"({"choices":[{"message":{"content":"\x"}}]})"),
           std::string("{\"choices\":[{\"message\":{\"content\":\"\xC0\xAF\"}}]}"),
           std::string("{\"choices\":[{\"message\":{\"content\":\"\xED\xA0\x80\"}}]}"),
           std::string(R"({"choices":[{"message":{}}],"n":01})"),
           std::string(R"({"choices":[{"message":{}}],"n":1.})"),
           std::string(R"({"choices":[{"message":{}}],"n":.5})"),
           std::string(R"({"choices":[{"message":{}}],"n":-})"),
           std::string(R"({"choices":[{"message":{}}],"n":nul})"),
           std::string(R"({"choices":[{"message":{}}],"n":[1,]})"),
           std::string(R"({"choices":[{"message":{}}],"n":)") +
               std::string(300, '[') + std::string(300, ']') + "}",
           std::string(R"({"choices":[{"message":{}}]})") + std::string(1, '\0'),
       }) {
    EXPECT_FALSE(ScanChatCompletion(body).has_value()) << body;
  }
}

TEST(ScanChatCompletionTest, NeverAcceptsWhatNlohmannReadsOtherwise) {
  // Every prefix, and every body with one byte changed to a byte that
  // matters to JSON, either is declined or reads as the nlohmann path does.
  const std::string base = kSimBody;
  int accepted = 0;
  for (size_t n = 0; n < base.size(); ++n) {
    accepted += CheckAgainstReference(base.substr(0, n));
  }
  EXPECT_EQ(accepted, 0) << "a cut body is never complete";
  static constexpr char kBytes[] = "\"\\{}[]:,0-9.eE+ nu\x01\x80\xC3";
  const std::string bytes(kBytes, sizeof(kBytes) - 1);
  for (size_t at = 0; at < base.size(); ++at) {
    for (char b : bytes) {
      std::string body = base;
      body[at] = b;
      CheckAgainstReference(body);
    }
  }
}

}  // namespace
}  // namespace distillery
