// FormatRecord against the code it replaced: the tree-building formatter
// (nlohmann::ordered_json per record, then dump) is kept here verbatim as
// the reference, and every line the streaming writer produces must equal the
// reference's byte for byte, over records with every kind of text (all
// control bytes, quotes, backslashes, multi-byte and invalid UTF-8, empty
// strings), roles, metadata (absent, null, nested, not JSON, non-canonical
// JSON), reasoning present or absent, in each format and reasoning layout.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/dataset/export_format.h"
#include "common/dedup/keys.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {
namespace reference {

// ---- The formatter as it was before the streaming writer (verbatim, but
// for tool turns in sharegpt and top_logprobs in raw params, which came
// later). ----

// clang-format off
using json = nlohmann::ordered_json;

// Stored text is valid UTF-8 (prompts are checked on submit, answers come
// from JSON), but replace rather than throw if that ever breaks.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json Metadata(const v1::Prompt& prompt) {
  if (prompt.metadata_json().empty()) return nullptr;
  return json::parse(prompt.metadata_json(), nullptr, /*allow_exceptions=*/false);
}

// openai: messages only (no trace key, no metadata); chat: the trace under
// `key` in the field layout, and the metadata.
json MessagesLine(const v1::ExportRecord& r, ReasoningLayout layout, bool chat,
                  const std::string& key) {
  json messages = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  json assistant = {{"role", "assistant"},
                    {"content", AssistantText(r.answer(), layout)}};
  if (chat && layout == ReasoningLayout::kField &&
      !r.answer().reasoning().empty()) {
    assistant[key] = r.answer().reasoning();
  }
  messages.push_back(std::move(assistant));
  json line = {{"messages", std::move(messages)}};
  if (json meta = Metadata(r.prompt()); chat && !meta.is_null()) {
    line["metadata"] = std::move(meta);
  }
  return line;
}

json ShareGptLine(const v1::ExportRecord& r, ReasoningLayout layout) {
  json turns = json::array();
  const auto& messages = r.prompt().messages();
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    // Since tool use: a run of tool turns is one observation turn.
    if (m.role() == "tool") {
      std::vector<std::string> results = {m.content()};
      while (i + 1 < messages.size() && messages[i + 1].role() == "tool") {
        results.push_back(messages[++i].content());
      }
      turns.push_back({{"from", "observation"},
                       {"value", results.size() == 1 ? results[0]
                                                     : Dump(json(results))}});
      continue;
    }
    const char* from = m.role() == "system"      ? "system"
                       : m.role() == "assistant" ? "gpt"
                                                 : "human";
    turns.push_back({{"from", from}, {"value", m.content()}});
  }
  json gpt = {{"from", "gpt"}, {"value", AssistantText(r.answer(), layout)}};
  if (layout == ReasoningLayout::kField && !r.answer().reasoning().empty()) {
    gpt["reasoning"] = r.answer().reasoning();
  }
  turns.push_back(std::move(gpt));
  json line = {{"conversations", std::move(turns)}};
  if (json meta = Metadata(r.prompt()); !meta.is_null()) {
    line["metadata"] = std::move(meta);
  }
  return line;
}

// The stored thinking blocks as a JSON array (null when there are none, or
// when what was stored is somehow not JSON: the export must not fail).
json ReasoningBlocks(const v1::Answer& a) {
  if (a.reasoning_blocks().empty()) return nullptr;
  json blocks = json::parse(a.reasoning_blocks(), nullptr, false);
  return blocks.is_discarded() ? json(nullptr) : blocks;
}

json RawLine(const v1::ExportRecord& r) {
  const v1::Answer& a = r.answer();
  json messages = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  json params = json::object();
  if (a.params().max_tokens() > 0) params["max_tokens"] = a.params().max_tokens();
  if (a.params().has_temperature()) params["temperature"] = a.params().temperature();
  if (a.params().has_top_p()) params["top_p"] = a.params().top_p();
  if (a.params().has_seed()) params["seed"] = a.params().seed();
  if (a.params().stop_size() > 0) {
    params["stop"] = json(std::vector<std::string>(a.params().stop().begin(),
                                                   a.params().stop().end()));
  }
  if (a.params().top_logprobs() > 0) {
    params["top_logprobs"] = a.params().top_logprobs();
  }
  json line = {
      {"job_id", r.job_id()},
      {"prompt_id", r.prompt().id()},
      {"line", r.prompt().line()},
      {"sample", r.task().sample()},
      {"messages", std::move(messages)},
      {"metadata", Metadata(r.prompt())},
      {"state", r.task().state() == v1::TASK_STATE_DONE ? "done" : "failed"},
      {"content", a.content()},
      {"reasoning", a.reasoning()},
      {"reasoning_blocks", ReasoningBlocks(a)},
      {"finish_reason", a.finish_reason()},
      {"teacher", a.teacher()},
      {"model", a.model()},
      {"params", std::move(params)},
      {"usage",
       {{"prompt_tokens", a.usage().prompt_tokens()},
        {"completion_tokens", a.usage().completion_tokens()},
        {"reasoning_tokens", a.usage().reasoning_tokens()},
        {"cached_tokens", a.usage().cached_tokens()}}},
      {"cost_usd", a.cost_usd()},
      {"provider_id", a.provider_id()},
      {"received_ms", a.received_ms()},
      {"latency_ms", a.latency_ms()},
      {"worker", a.worker()},
      {"request_key", HexKey(r.task().request_key())},
      {"from_cache", r.task().from_cache()},
      {"duplicate_of",
       a.duplicate_of().empty() ? json(nullptr) : json(HexKey(a.duplicate_of()))},
      {"near_duplicate_of", a.near_duplicate_of().empty()
                                ? json(nullptr)
                                : json(HexKey(a.near_duplicate_of()))},
      {"attempts", r.task().attempts()},
      {"error", r.task().last_error()},
      {"verified",
       r.task().verify_state() == v1::VERIFY_STATE_VERIFIED   ? json(true)
       : r.task().verify_state() == v1::VERIFY_STATE_REJECTED ? json(false)
                                                              : json(nullptr)},
      {"extracted_answer",
       r.task().verify_state() == v1::VERIFY_STATE_UNCHECKED
           ? json(nullptr)
           : json(r.task().extracted_answer())},
  };
  if (r.has_contamination()) {
    line["contamination"] = {
        {"benchmark_line", r.contamination().benchmark_line()},
        {"ngram", r.contamination().ngram()}};
  }
  return line;
}

json ErrorLine(const v1::ExportRecord& r) {
  json messages = json::array();
  for (const v1::ChatMessage& m : r.prompt().messages()) {
    messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  return {
      {"job_id", r.job_id()},
      {"prompt_id", r.prompt().id()},
      {"line", r.prompt().line()},
      {"sample", r.task().sample()},
      {"attempts", r.task().attempts()},
      {"error", r.task().last_error()},
      {"request_key", HexKey(r.task().request_key())},
      {"messages", std::move(messages)},
      {"metadata", Metadata(r.prompt())},
  };
}
// clang-format on

std::string FormatRecord(const v1::ExportRecord& record, ExportFormat format,
                         ReasoningLayout layout) {
  switch (format) {
    case ExportFormat::kOpenAi:
      return Dump(MessagesLine(record, layout, false, ""));
    case ExportFormat::kChat:
      return Dump(MessagesLine(record, layout, true, "reasoning_content"));
    case ExportFormat::kShareGpt:
      return Dump(ShareGptLine(record, layout));
    case ExportFormat::kRaw:
      return Dump(RawLine(record));
    case ExportFormat::kErrors:
      return Dump(ErrorLine(record));
  }
  return "";
}

}  // namespace reference

// ---- Inputs. ----

constexpr ExportFormat kFormats[] = {ExportFormat::kOpenAi,
                                     ExportFormat::kChat,
                                     ExportFormat::kShareGpt,
                                     ExportFormat::kRaw, ExportFormat::kErrors};
constexpr ReasoningLayout kLayouts[] = {ReasoningLayout::kField,
                                        ReasoningLayout::kThinkTags,
                                        ReasoningLayout::kDrop};

// Every byte below 0x20, then DEL.
std::string AllControlBytes() {
  std::string s;
  for (int c = 0; c < 0x20; ++c) s.push_back(static_cast<char>(c));
  s.push_back('\x7f');
  return s;
}

// Texts chosen so that random concatenations meet every escaping and UTF-8
// case, including sequences split at the ends of the assistant text's
// pieces (a reasoning that ends mid-character, content that starts with a
// continuation byte).
const std::vector<std::string>& TextPieces() {
  static const std::vector<std::string> pieces = {
      "",
      "What is 2 + 2? Answer briefly, then explain. ",
      "\"quoted\"",
      "back\\slash \\n not a newline",
      "/slash/",
      AllControlBytes(),
      std::string(1, '\0'),
      "line\nbreak\ttab\rreturn\bback\fform",
      "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xE2\x82\xAC",
      "\xC3",              // truncated 2-byte
      "\xE2\x82",          // truncated 3-byte
      "\xF0\x9F\x98",      // truncated 4-byte
      "\x80\xBF",          // lone continuation bytes
      "\xC0\xAF\xC1\xBF",  // overlong leads
      "\xE0\x80\xAF",      // overlong 3-byte
      "\xED\xA0\x80",      // surrogate
      "\xF4\x90\x80\x80",  // above U+10FFFF
      "\xF5\xFF\xFE",      // never valid
      "\xC3\x28",          // lead then ASCII
      "<think>\nnot a tag\n</think>\n",
  };
  return pieces;
}

std::string RandomText(std::mt19937_64& rng) {
  const std::vector<std::string>& pieces = TextPieces();
  std::string s;
  const int parts = static_cast<int>(rng() % 6);
  for (int i = 0; i < parts; ++i) s += pieces[rng() % pieces.size()];
  return s;
}

const std::vector<std::string>& MetadataTexts() {
  static const std::vector<std::string> texts = {
      "",
      R"({"id":123,"source":"x"})",
      R"({"topic":"math","level":3})",
      R"({ "id" : 123 , "source" : "x" })",
      "{\n\t\"a\": [1, 2, {\"b\": null}],\r\n \"c\": {\"d\": {\"e\": []}}}",
      R"({"z":1,"a":2,"m":{"y":true,"b":false}})",
      R"({"dup":1,"dup":2})",
      R"({"f":1.50,"g":1e3,"h":-0,"i":-0.0,"j":1E-7,"k":0.1})",
      R"({"big":18446744073709551615,"bigger":18446744073709551616,"neg":-9223372036854775808})",
      R"({"esc":"\u00e9\u0041\/\"\\\b\f\n\r\t\u001f\u007f\ud83d\ude00"})",
      "{\"raw\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\"}",
      "{\"bad\":\"\xC3\x28\"}",  // invalid UTF-8: does not parse
      R"({"inf":1e400})",
      "{}",
      "[]",
      "null",
      "  null  ",
      "42",
      R"("just a string")",
      "{",
      "not json",
      R"({"a":1} trailing)",
      "\xEF\xBB\xBF{\"bom\":1}",
      " ",
  };
  return texts;
}

const std::vector<std::string>& RoleTexts() {
  static const std::vector<std::string> roles = {
      "system", "user", "assistant", "tool", "", "Sys\"tem\n", "\xC3\xA9\xFF"};
  return roles;
}

double RandomDouble(std::mt19937_64& rng) {
  static const double kDoubles[] = {0.0,
                                    -0.0,
                                    0.5,
                                    0.6,
                                    0.95,
                                    1.0,
                                    2.0,
                                    1e-5,
                                    0.00123,
                                    123456789.125,
                                    1e300,
                                    5e-324,
                                    std::numeric_limits<double>::quiet_NaN(),
                                    std::numeric_limits<double>::infinity(),
                                    -std::numeric_limits<double>::infinity()};
  return kDoubles[rng() % std::size(kDoubles)];
}

int64_t RandomInt(std::mt19937_64& rng) {
  static const int64_t kInts[] = {0,
                                  1,
                                  -1,
                                  7,
                                  4096,
                                  1'750'000'000'123,
                                  std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min()};
  return kInts[rng() % std::size(kInts)];
}

std::string RandomKey(std::mt19937_64& rng) {
  if (rng() % 3 == 0) return "";
  std::string key(16, '\0');
  for (char& c : key) c = static_cast<char>(rng());
  return key;
}

v1::ExportRecord RandomRecord(std::mt19937_64& rng) {
  v1::ExportRecord r;
  r.set_job_id(rng() % 4 ? "job-000001" : RandomText(rng));
  v1::Prompt* p = r.mutable_prompt();
  p->set_id(rng() % 4 ? "p-1" : RandomText(rng));
  p->set_line(RandomInt(rng));
  const std::vector<std::string>& metadata = MetadataTexts();
  p->set_metadata_json(metadata[rng() % metadata.size()]);
  const int messages = static_cast<int>(rng() % 5);
  for (int i = 0; i < messages; ++i) {
    v1::ChatMessage* m = p->add_messages();
    m->set_role(RoleTexts()[rng() % RoleTexts().size()]);
    m->set_content(RandomText(rng));
  }
  v1::Task* t = r.mutable_task();
  t->set_sample(static_cast<int32_t>(rng() % 3));
  t->set_state(rng() % 2 ? v1::TASK_STATE_DONE : v1::TASK_STATE_FAILED);
  t->set_request_key(RandomKey(rng));
  t->set_attempts(static_cast<int32_t>(rng() % 5));
  t->set_last_error(rng() % 2 ? "" : RandomText(rng));
  t->set_from_cache(rng() % 2);
  v1::Answer* a = r.mutable_answer();
  a->set_content(RandomText(rng));
  a->set_reasoning(rng() % 3 == 0 ? "" : RandomText(rng));
  switch (rng() % 4) {
    case 0:
      a->set_reasoning_blocks(
          R"([{"type":"thinking","thinking":"hm","signature":"c2ln"}])");
      break;
    case 1:
      a->set_reasoning_blocks("not json");
      break;
    default:
      break;
  }
  a->set_finish_reason(rng() % 2 ? "stop" : RandomText(rng));
  a->set_teacher(RandomText(rng));
  a->set_model(RandomText(rng));
  v1::SamplingParams* params = a->mutable_params();
  if (rng() % 2) params->set_max_tokens(RandomInt(rng));
  if (rng() % 2) params->set_temperature(RandomDouble(rng));
  if (rng() % 2) params->set_top_p(RandomDouble(rng));
  if (rng() % 2) params->set_seed(RandomInt(rng));
  const int stops = static_cast<int>(rng() % 3);
  for (int i = 0; i < stops; ++i) params->add_stop(RandomText(rng));
  a->mutable_usage()->set_prompt_tokens(RandomInt(rng));
  a->mutable_usage()->set_completion_tokens(RandomInt(rng));
  a->mutable_usage()->set_reasoning_tokens(RandomInt(rng));
  a->mutable_usage()->set_cached_tokens(RandomInt(rng));
  a->set_cost_usd(RandomDouble(rng));
  a->set_provider_id(RandomText(rng));
  a->set_received_ms(RandomInt(rng));
  a->set_latency_ms(RandomInt(rng));
  a->set_worker(RandomText(rng));
  a->set_duplicate_of(RandomKey(rng));
  a->set_near_duplicate_of(RandomKey(rng));
  return r;
}

// Random JSON text in the shapes metadata takes, with random whitespace
// (JSON's and not), numbers at the edges of the integer forms, strings
// with and without escapes, repeated keys and deep nesting; `mutate` then
// sometimes breaks it by a byte, so both nlohmann's result and its
// "<discarded>" are compared.
class RandomJson {
 public:
  explicit RandomJson(std::mt19937_64& rng) : rng_(rng) {}

  std::string Text() {
    std::string text;
    Value(&text, 0);
    Space(&text);
    if (rng_() % 4 == 0 && !text.empty()) {
      const size_t at = rng_() % text.size();
      static const char kBytes[] = {'"', ',', '}', ']',    ':', '\\',
                                    ' ', '0', 'e', '\x80', '\0'};
      switch (rng_() % 3) {
        case 0:
          text.erase(at, 1);
          break;
        case 1:
          text.insert(text.begin() + at, kBytes[rng_() % std::size(kBytes)]);
          break;
        default:
          text[at] = kBytes[rng_() % std::size(kBytes)];
      }
    }
    return text;
  }

 private:
  void Space(std::string* out) {
    static const char* const kSpaces[] = {"",    "",     "",   " ", "\n",
                                          "\t ", "\r\n", "\f", "\v"};
    if (rng_() % 3 == 0) *out += kSpaces[rng_() % std::size(kSpaces)];
  }

  void String(std::string* out) {
    static const char* const kStrings[] = {
        "\"\"",          "\"x\"",           "\"id\"",
        "\"source\"",    "\"a b/c\"",       "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"",
        "\"\x7f\"",      "\"\\n\"",         "\"\\u00e9\"",
        "\"\\\"\"",      "\"\xC3\x28\"",    "\"\xED\xA0\x80\"",
        "\"tab\there\"", "\"\xEF\xBF\xBD\""};
    *out += kStrings[rng_() % std::size(kStrings)];
  }

  void Value(std::string* out, int depth) {
    Space(out);
    const int kind = static_cast<int>(rng_() % (depth > 40 ? 4 : 6));
    switch (kind) {
      case 0: {
        static const char* const kNumbers[] = {"0",
                                               "-0",
                                               "7",
                                               "-12",
                                               "123",
                                               "00",
                                               "01",
                                               "-",
                                               "1.0",
                                               "1.5e3",
                                               "1E2",
                                               "2e-3",
                                               "999999999999999999",
                                               "-999999999999999999",
                                               "1000000000000000000",
                                               "9223372036854775807",
                                               "-9223372036854775808",
                                               "18446744073709551615",
                                               "18446744073709551616",
                                               "1e400",
                                               "0.1"};
        *out += kNumbers[rng_() % std::size(kNumbers)];
        break;
      }
      case 1:
        String(out);
        break;
      case 2: {
        static const char* const kLiterals[] = {"true", "false", "null", "nul",
                                                "True"};
        *out += kLiterals[rng_() % std::size(kLiterals)];
        break;
      }
      case 3:
      case 4: {
        *out += '{';
        const int n = static_cast<int>(rng_() % 4);
        for (int i = 0; i < n; ++i) {
          if (i > 0) *out += ',';
          Space(out);
          String(out);
          Space(out);
          *out += ':';
          Value(out, depth + 1);
          Space(out);
        }
        *out += '}';
        break;
      }
      default: {
        *out += '[';
        const int n = static_cast<int>(rng_() % 4);
        for (int i = 0; i < n; ++i) {
          if (i > 0) *out += ',';
          Value(out, depth + 1);
          Space(out);
        }
        *out += ']';
      }
    }
  }

  std::mt19937_64& rng_;
};

void ExpectSameAsReference(const v1::ExportRecord& r) {
  for (ExportFormat format : kFormats) {
    for (ReasoningLayout layout : kLayouts) {
      const std::string expected = reference::FormatRecord(r, format, layout);
      ASSERT_EQ(FormatRecord(r, format, layout), expected)
          << "format " << static_cast<int>(format) << " layout "
          << static_cast<int>(layout) << "\n"
          << r.DebugString();
      std::string appended = "x\n";
      AppendRecord(r, format, layout, &appended);
      ASSERT_EQ(appended, "x\n" + expected);
    }
  }
}

// ---- Tests. ----

TEST(FormatRecordReferenceTest, EveryMetadataText) {
  std::mt19937_64 rng(1);
  for (const std::string& metadata : MetadataTexts()) {
    v1::ExportRecord r = RandomRecord(rng);
    r.mutable_prompt()->set_metadata_json(metadata);
    ExpectSameAsReference(r);
  }
}

TEST(FormatRecordReferenceTest, RandomMetadataTexts) {
  std::mt19937_64 rng(4);
  RandomJson random_json(rng);
  v1::ExportRecord r;
  r.mutable_answer()->set_content("4");
  for (int i = 0; i < 20000; ++i) {
    r.mutable_prompt()->set_metadata_json(random_json.Text());
    for (ExportFormat format : {ExportFormat::kChat, ExportFormat::kRaw}) {
      ASSERT_EQ(FormatRecord(r, format),
                reference::FormatRecord(r, format, ReasoningLayout::kField))
          << r.prompt().metadata_json();
    }
  }
}

// Up to the depth limit (json_depth.h); deeper metadata is not re-written
// at all (export_format_test.cc).
TEST(FormatRecordReferenceTest, DeeplyNestedMetadata) {
  v1::ExportRecord r;
  for (int depth : {31, 32, 33, 34, 63, 64}) {
    r.mutable_prompt()->set_metadata_json(std::string(depth, '[') + "1" +
                                          std::string(depth, ']'));
    ExpectSameAsReference(r);
  }
}

TEST(FormatRecordReferenceTest, EveryTextPieceInEveryField) {
  std::mt19937_64 rng(2);
  for (const std::string& text : TextPieces()) {
    v1::ExportRecord r = RandomRecord(rng);
    for (v1::ChatMessage& m : *r.mutable_prompt()->mutable_messages()) {
      m.set_content(text);
    }
    r.mutable_answer()->set_content(text);
    r.mutable_answer()->set_reasoning(text);
    r.mutable_task()->set_last_error(text);
    ExpectSameAsReference(r);
  }
}

TEST(FormatRecordReferenceTest, EmptyRecord) {
  ExpectSameAsReference(v1::ExportRecord());
}

TEST(FormatRecordReferenceTest, RandomRecords) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 3000; ++i) {
    ExpectSameAsReference(RandomRecord(rng));
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace distillery
