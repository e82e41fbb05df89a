#include "services/teacher_sim/answer_generator.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/json_string.h"
#include "services/teacher_sim/json_writer.h"
#include "services/teacher_sim/schema_value.h"
#include "services/teacher_sim/sim_ids.h"
#include "services/teacher_sim/sim_logprobs.h"

namespace distillery::teacher_sim {
namespace {

// Salts that separate the hash streams of content and reasoning.
constexpr uint64_t kContentSalt = 0x636f6e74656e7421ULL;
constexpr uint64_t kReasoningSalt = 0x7265617330ULL;
constexpr uint64_t kJsonSalt = 0x6a736f6e21ULL;
constexpr uint64_t kToolCallSalt = 0x746f6f6c63616c6cULL;

constexpr int64_t kMinContentTokens = 20;
constexpr int64_t kMaxContentTokens = 200;
constexpr int64_t kMinReasoningTokens = 30;
constexpr int64_t kMaxReasoningTokens = 250;
constexpr int kQuoteWords = 6;
constexpr size_t kQuoteBytes = 60;

// Per-message framing and reply priming, as OpenAI's cookbook counts them.
constexpr int64_t kTokensPerMessage = 4;
constexpr int64_t kReplyPrimingTokens = 3;

constexpr std::array kAdjectives = {
    "careful",   "gradual", "hidden",  "simple",  "robust",   "subtle",
    "practical", "elegant", "distant", "steady",  "curious",  "bright",
    "modest",    "complex", "quiet",   "ancient", "modern",   "useful",
    "fragile",   "natural", "formal",  "rapid",   "gentle",   "precise",
    "broad",     "narrow",  "stable",  "early",   "final",    "central",
    "common",    "rare",    "clear",   "vivid",   "balanced", "honest",
    "hollow",    "layered", "local",   "global"};
constexpr std::array kNouns = {
    "model",    "river",     "theory",    "signal",  "pattern",  "garden",
    "system",   "question",  "answer",    "method",  "market",   "engine",
    "process",  "record",    "harbor",    "lantern", "network",  "proof",
    "language", "structure", "principle", "memory",  "boundary", "journey",
    "example",  "detail",    "library",   "forest",  "teacher",  "student",
    "argument", "equation",  "history",   "window",  "surface",  "measure",
    "balance",  "feature",   "current",   "story",   "design",   "pathway",
    "compass",  "village",   "circuit",   "element", "context",  "outcome",
    "estimate", "habit"};
constexpr std::array kVerbs = {
    "shapes",    "reveals",   "supports",  "connects",  "explains", "follows",
    "changes",   "guides",    "limits",    "reflects",  "improves", "measures",
    "describes", "tests",     "links",     "frames",    "carries",  "balances",
    "predicts",  "organizes", "protects",  "clarifies", "extends",  "requires",
    "combines",  "anchors",   "separates", "produces",  "tracks",   "informs"};
constexpr std::array kAdverbs = {
    "Usually",     "In practice", "Often",     "Over time",    "In short",
    "At first",    "Later",       "Typically", "Surprisingly", "In most cases",
    "Eventually",  "Quietly",     "Naturally", "By contrast",  "Similarly",
    "As a result", "In turn",     "Notably",   "For instance", "Meanwhile"};
constexpr std::array kDeterminers = {"the", "each",     "every",   "this",
                                     "one", "a single", "another", "any"};
constexpr std::array kPrepositions = {
    "within", "across", "beyond", "beneath", "around",  "through", "alongside",
    "after",  "before", "inside", "toward",  "between", "under",   "near"};

// Sentence shapes. {a} adjective, {n} noun, {v} verb, {d} determiner,
// {p} preposition, {A} adverbial opener.
constexpr std::array kAnswerTemplates = {
    "The {a} {n} {v} the {n} {p} {d} {a} {n}.",
    "{A}, the {n} {v} {d} {a} {n}.",
    "{d} {n} {p} the {n} {v} {d} {n}.",
    "{A}, {d} {a} {n} {v} the {n}, and the {n} {v} {d} {a} {n}.",
    "This is why the {n} {v} the {a} {n} {p} the {n}.",
    "One {a} {n} {v} the {n} only when the {n} {v} it.",
    "The {n} {v} {d} {n}, so the {a} {n} stays {a}."};
constexpr std::array kReasoningTemplates = {
    "First, I should consider how the {n} {v} the {a} {n}.",
    "Wait, the {n} might also depend on the {a} {n}.",
    "So the {a} {n} {v} {d} {n} {p} the {n}.",
    "Let me check whether the {n} {v} the {n}.",
    "Hmm, {d} {a} {n} {v} the {n}, which matters here.",
    "That means the answer should mention the {a} {n}.",
    "Next, compare the {n} with the {a} {n} {p} it.",
    "Actually, the {n} {v} {d} {a} {n}, so I need to be careful."};
constexpr std::array kAnswerOpeners = {
    "You asked about \"{q}\".", "Regarding \"{q}\", here is a short answer.",
    "On the question \"{q}\", consider the following.",
    "Here is my answer to \"{q}\"."};

// SplitMix64: a tiny, fully specified generator, so answers never change
// with the standard library's distribution implementations.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  template <typename Array>
  const char* Pick(const Array& words) {
    return words[Below(words.size())];
  }

 private:
  uint64_t state_;
};

uint64_t Mix(uint64_t x) { return Rng(x).Next(); }

class Fnv1a {
 public:
  void Bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      hash_ = (hash_ ^ p[i]) * 0x100000001B3ULL;
    }
  }
  void U64(uint64_t v) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; ++i)
      bytes[i] = static_cast<unsigned char>(v >> (8 * i));
    Bytes(bytes, sizeof(bytes));
  }
  // Length-prefixed, so ("ab","c") and ("a","bc") differ.
  void Str(std::string_view s) {
    U64(s.size());
    Bytes(s.data(), s.size());
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xCBF29CE484222325ULL;
};

bool IsSpace(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' ||
         c == '\v';
}

// The last user message (or the last message if no user spoke).
const SimMessage& LastUserMessage(const std::vector<SimMessage>& messages) {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->role == "user") return *it;
  }
  return messages.back();
}

// The last user message that asks something: an Anthropic user turn that
// only carries a tool's result is passed over.
const SimMessage& AskingMessage(const ChatRequest& request) {
  const std::vector<SimMessage>& messages = request.messages;
  if (request.after_tool_result && messages.size() > 1 &&
      messages.back().role == "user") {
    for (auto it = messages.rbegin() + 1; it != messages.rend(); ++it) {
      if (it->role == "user") return *it;
    }
  }
  return LastUserMessage(messages);
}

// The first few words of `text`, whitespace collapsed.
std::string QuoteText(std::string_view text) {
  std::string quote;
  int words = 0;
  bool more = false;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i == text.size()) break;
    if (words == kQuoteWords) {
      more = true;
      break;
    }
    const size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (!quote.empty()) quote.push_back(' ');
    quote.append(text.substr(start, i - start));
    ++words;
  }
  if (quote.size() > kQuoteBytes) {
    quote = std::string(Utf8Prefix(quote, kQuoteBytes));
    more = true;
  }
  if (more) quote += "...";
  return quote;
}

std::string PromptQuote(const ChatRequest& request) {
  return QuoteText(AskingMessage(request).content);
}

// Expands one template with words drawn from `rng`.
void AppendSentence(const char* pattern, Rng& rng, std::string* out) {
  if (!out->empty()) out->push_back(' ');
  const size_t sentence_start = out->size();
  for (const char* p = pattern; *p != '\0'; ++p) {
    if (p[0] == '{' && p[1] != '\0' && p[2] == '}') {
      switch (p[1]) {
        case 'a':
          out->append(rng.Pick(kAdjectives));
          break;
        case 'n':
          out->append(rng.Pick(kNouns));
          break;
        case 'v':
          out->append(rng.Pick(kVerbs));
          break;
        case 'd':
          out->append(rng.Pick(kDeterminers));
          break;
        case 'p':
          out->append(rng.Pick(kPrepositions));
          break;
        case 'A':
          out->append(rng.Pick(kAdverbs));
          break;
      }
      p += 2;
    } else {
      // The literal text up to the next placeholder, in one append.
      const char* end = p + 1;
      while (*end != '\0' && *end != '{') ++end;
      out->append(p, end);
      p = end - 1;
    }
  }
  char& first = (*out)[sentence_start];
  first = static_cast<char>(std::toupper(static_cast<unsigned char>(first)));
}

std::string ReplaceQuote(std::string_view pattern, std::string_view quote) {
  std::string out;
  const size_t at = pattern.find("{q}");
  out.append(pattern.substr(0, at));
  out.append(quote);
  out.append(pattern.substr(at + 3));
  return out;
}

int64_t CountWords(std::string_view text) {
  int64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = IsSpace(c);
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

// CountTokens(*text) is kept up to date sentence by sentence rather than
// recounted over the whole text after each one (quadratic in the answer's
// length). The sums agree because AppendSentence starts every sentence after
// the first with a space, so no word spans the join.
template <typename Templates>
void AppendSentencesUntil(const Templates& templates, int64_t target_tokens,
                          Rng& rng, std::string* text) {
  int64_t words = CountWords(*text);
  const auto tokens = [&] {
    return std::max(words, static_cast<int64_t>((text->size() + 3) / 4));
  };
  while (tokens() < target_tokens) {
    const size_t before = text->size();
    AppendSentence(rng.Pick(templates), rng, text);
    words += CountWords(std::string_view(*text).substr(before));
  }
}

std::string GenerateContent(uint64_t hash, const std::string& quote) {
  Rng rng(hash ^ kContentSalt);
  const int64_t target =
      kMinContentTokens +
      static_cast<int64_t>(rng.Next() %
                           (kMaxContentTokens - kMinContentTokens + 1));
  std::string text = quote.empty()
                         ? std::string("Here is my answer.")
                         : ReplaceQuote(rng.Pick(kAnswerOpeners), quote);
  AppendSentencesUntil(kAnswerTemplates, target, rng, &text);
  return text;
}

std::string GenerateReasoning(uint64_t hash, const std::string& quote) {
  Rng rng(hash ^ kReasoningSalt);
  const int64_t target =
      kMinReasoningTokens +
      static_cast<int64_t>(rng.Next() %
                           (kMaxReasoningTokens - kMinReasoningTokens + 1));
  std::string text = quote.empty()
                         ? std::string("Let me think about this.")
                         : ReplaceQuote("Let me think about \"{q}\".", quote);
  AppendSentencesUntil(kReasoningTemplates, target, rng, &text);
  text += " Now I can write the answer.";
  return text;
}

// Cuts `content` before the earliest stop sequence. Returns true if cut.
bool ApplyStop(const std::vector<std::string>& stop, std::string* content) {
  size_t earliest = std::string::npos;
  for (const std::string& s : stop) {
    earliest = std::min(earliest, content->find(s));
  }
  if (earliest == std::string::npos) return false;
  content->resize(earliest);
  return true;
}

// The content answering `question`: right when `hash` says so.
std::string MathContent(const MathQuestion& question, uint64_t hash,
                        double math_accuracy) {
  const double u = static_cast<double>(Mix(hash ^ 0x6d617468) >> 11) *
                   (1.0 / 9007199254740992.0);  // [0, 1)
  const int64_t right = question.answer();
  const int64_t given =
      u < math_accuracy ? right : right + 1 + static_cast<int64_t>(hash % 9);
  const char* verb = question.op == '+'   ? "Adding"
                     : question.op == '-' ? "Subtracting"
                                          : "Multiplying";
  return absl::StrCat(verb, " the two numbers: ", question.a, " ",
                      std::string(1, question.op), " ", question.b, " = ",
                      given, ". The answer is $\\boxed{", given, "}$.");
}

// How --json-invalid-rate spoils choice `hash`'s JSON, given how often the
// request was seen before: asking again redraws.
SchemaFault JsonFault(const ChatRequest& request, uint64_t hash,
                      double invalid_rate) {
  const uint64_t draw =
      Mix(hash ^ kJsonSalt ^ Mix(static_cast<uint64_t>(request.repeat)));
  const double u =
      static_cast<double>(draw >> 11) * (1.0 / 9007199254740992.0);
  if (u >= invalid_rate) return SchemaFault::kNone;
  if (request.tool_input_is_output) return SchemaFault::kWrongType;
  if ((draw & 1) == 0) return SchemaFault::kUnparsable;
  return (draw & 2) == 0 ? SchemaFault::kWrongType
                         : SchemaFault::kMissingRequired;
}

// A choice that calls ChosenTool(request).
SimChoice ToolCallChoice(const ChatRequest& request, uint64_t hash,
                         const GenerateOptions& options) {
  const SimTool& tool = ChosenTool(request);
  SimChoice choice;
  choice.hash = hash;
  choice.finish_reason = "tool_calls";
  SchemaValueOptions values;
  values.all_properties = false;
  values.words = AskingMessage(request).content;
  if (request.tool_input_is_output) {
    values.fault = JsonFault(request, hash, options.json_invalid_rate);
  }
  SimToolCall call;
  call.id_hex = Hex64(Mix(hash ^ kToolCallSalt));
  call.name = tool.name;
  call.arguments = GenerateSchemaJson(tool.parameters, hash, values);
  if (request.text_before_tool_call) {
    choice.content =
        absl::StrCat("I'll use the ", tool.name, " tool to answer this.");
  }
  choice.content_tokens =
      CountTokens(choice.content) + CountTokens(call.arguments);
  choice.tool_call = std::move(call);
  return choice;
}

// The content of a text choice: JSON for structured output, a worked line
// for arithmetic, else sentences; after a tool's result, a report of it
// first.
std::string ChoiceContent(const ChatRequest& request, uint64_t hash,
                          const std::string& quote,
                          const GenerateOptions& options) {
  if (request.structured_output) {
    SchemaValueOptions values;
    values.words = AskingMessage(request).content;
    values.fault = JsonFault(request, hash, options.json_invalid_rate);
    return GenerateSchemaJson(request.output_schema, hash, values);
  }
  std::string content;
  if (request.after_tool_result) {
    const std::string result = QuoteText(request.tool_result);
    content = result.empty()
                  ? "The tool returned nothing. "
                  : absl::StrCat("The tool returned \"", result, "\". ");
  }
  const SimMessage& last_user = AskingMessage(request);
  const std::optional<MathQuestion> question =
      last_user.role == "user" ? FindMathQuestion(last_user.content)
                               : std::nullopt;
  content += question ? MathContent(*question, hash, options.math_accuracy)
                      : GenerateContent(hash, quote);
  return content;
}

SimChoice GenerateChoice(const ChatRequest& request, int index,
                         const std::string& quote, bool reasoning_model,
                         const GenerateOptions& options) {
  const uint64_t hash = HashRequest(request, index);
  if (AnswersWithToolCall(request)) {
    return ToolCallChoice(request, hash, options);
  }
  SimChoice choice;
  choice.hash = hash;
  choice.finish_reason = "stop";
  if (reasoning_model) {
    choice.reasoning_content = GenerateReasoning(hash, quote);
    if (request.reasoning_budget > 0) {
      choice.reasoning_content =
          TruncateToTokens(choice.reasoning_content, request.reasoning_budget);
    }
  }
  choice.content = ChoiceContent(request, hash, quote, options);
  ApplyStop(request.stop, &choice.content);
  choice.reasoning_tokens = CountTokens(choice.reasoning_content);
  choice.content_tokens = CountTokens(choice.content);

  if (request.max_tokens.has_value() &&
      choice.reasoning_tokens + choice.content_tokens > *request.max_tokens) {
    const int64_t budget = *request.max_tokens;
    choice.finish_reason = "length";
    if (choice.reasoning_tokens >= budget) {
      // Out of budget while still thinking: no answer text at all, as
      // OpenAI's reasoning models do.
      choice.reasoning_content =
          TruncateToTokens(choice.reasoning_content, budget);
      choice.reasoning_tokens = CountTokens(choice.reasoning_content);
      choice.content.clear();
      choice.content_tokens = 0;
    } else {
      choice.content =
          TruncateToTokens(choice.content, budget - choice.reasoning_tokens);
      choice.content_tokens = CountTokens(choice.content);
    }
  }
  return choice;
}

// "tool_calls":[{"id":"call_...","type":"function","function":{"name",
// "arguments"}}].
void WriteToolCalls(const SimToolCall& call, JsonWriter& w) {
  w.Key("tool_calls").BeginArray().BeginObject();
  w.Key("id").String("call_" + call.id_hex);
  w.Key("type").String("function");
  w.Key("function").BeginObject();
  w.Key("name").String(call.name);
  w.Key("arguments").String(call.arguments);
  w.EndObject();
  w.EndObject().EndArray();
}

}  // namespace

int64_t CountTokens(std::string_view text) {
  const int64_t words = CountWords(text);
  const int64_t by_bytes = static_cast<int64_t>((text.size() + 3) / 4);
  return std::max(words, by_bytes);
}

int64_t CountPromptTokens(const std::vector<SimMessage>& messages) {
  int64_t tokens = kReplyPrimingTokens;
  for (const SimMessage& m : messages) {
    tokens += kTokensPerMessage + CountTokens(m.content);
  }
  return tokens;
}

std::string TruncateToTokens(std::string_view text, int64_t budget) {
  if (budget <= 0) return "";
  if (CountTokens(text) <= budget) return std::string(text);
  // CountTokens of a prefix grows with the prefix, so keep the last word end
  // that still fits.
  int64_t words = 0;
  size_t fits_until = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i == text.size()) break;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    ++words;
    const int64_t tokens = std::max(words, static_cast<int64_t>((i + 3) / 4));
    if (tokens > budget) break;
    fits_until = i;
  }
  if (fits_until == 0) {
    return std::string(Utf8Prefix(text, static_cast<size_t>(budget) * 4));
  }
  return std::string(text.substr(0, fits_until));
}

bool IsReasoningModel(std::string_view model) {
  return model.find("reasoner") != std::string_view::npos;
}

uint64_t HashRequest(const ChatRequest& request, int choice_index) {
  Fnv1a h;
  h.Str(request.model);
  h.U64(request.messages.size());
  for (const SimMessage& m : request.messages) {
    h.Str(m.role);
    h.Str(m.content);
  }
  h.U64(request.seed.has_value() ? 1 : 0);
  h.U64(static_cast<uint64_t>(request.seed.value_or(0)));
  h.U64(request.temperature.has_value() ? 1 : 0);
  // +0.0 folds -0.0 into 0.0 so equal temperatures hash equally.
  h.U64(std::bit_cast<uint64_t>(request.temperature.value_or(0.0) + 0.0));
  h.U64(static_cast<uint64_t>(static_cast<int64_t>(choice_index)));
  return Mix(h.value());
}

std::optional<MathQuestion> FindMathQuestion(std::string_view text) {
  constexpr std::string_view kAsk = "What is ";
  constexpr int64_t kLimit = 1'000'000'000;
  for (size_t at = text.find(kAsk); at != std::string_view::npos;
       at = text.find(kAsk, at + 1)) {
    size_t i = at + kAsk.size();
    auto skip_spaces = [&] {
      while (i < text.size() && text[i] == ' ') ++i;
    };
    auto number = [&](int64_t* out) {
      bool negative = false;
      if (i < text.size() && text[i] == '-') {
        negative = true;
        ++i;
      }
      const size_t start = i;
      int64_t v = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9' &&
             v < kLimit) {
        v = v * 10 + (text[i] - '0');
        ++i;
      }
      if (i == start || v >= kLimit) return false;
      *out = negative ? -v : v;
      return true;
    };
    MathQuestion q;
    if (!number(&q.a)) continue;
    skip_spaces();
    if (i >= text.size() || (text[i] != '+' && text[i] != '-' && text[i] != '*')) {
      continue;
    }
    q.op = text[i++];
    skip_spaces();
    if (!number(&q.b)) continue;
    return q;
  }
  return std::nullopt;
}

SimCompletion GenerateCompletion(const ChatRequest& request,
                                 const GenerateOptions& options) {
  SimCompletion completion;
  completion.logprobs = request.logprobs;
  completion.top_logprobs = request.top_logprobs;
  completion.model = request.model;
  completion.reasoning_model =
      IsReasoningModel(request.model) || request.force_reasoning;
  completion.request_hash = HashRequest(request, -1);
  const std::string quote = PromptQuote(request);
  completion.usage.prompt_tokens = CountPromptTokens(request.messages);
  for (int i = 0; i < request.n; ++i) {
    SimChoice choice = GenerateChoice(request, i, quote,
                                      completion.reasoning_model, options);
    completion.usage.completion_tokens +=
        choice.content_tokens + choice.reasoning_tokens;
    completion.usage.reasoning_tokens += choice.reasoning_tokens;
    completion.choices.push_back(std::move(choice));
  }
  completion.usage.total_tokens =
      completion.usage.prompt_tokens + completion.usage.completion_tokens;
  return completion;
}

void ResizeAnswers(size_t bytes, SimCompletion* completion) {
  SimUsage& usage = completion->usage;
  usage.completion_tokens = 0;
  for (SimChoice& choice : completion->choices) {
    if (choice.tool_call.has_value()) {
      usage.completion_tokens += choice.content_tokens;
      continue;
    }
    std::string content;
    content.reserve(bytes + 1);
    const std::string seed = choice.content.empty() ? "answer" : choice.content;
    while (content.size() < bytes) content += seed + " ";
    content = std::string(Utf8Prefix(content, bytes));
    choice.content = std::move(content);
    choice.content_tokens = CountTokens(choice.content);
    usage.completion_tokens += choice.content_tokens + choice.reasoning_tokens;
  }
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
}

std::string RenderCompletionJson(const SimCompletion& completion,
                                 std::string_view id, int64_t created) {
  JsonWriter w;
  w.BeginObject();
  w.Key("id").String(id);
  w.Key("object").String("chat.completion");
  w.Key("created").Int(created);
  w.Key("model").String(completion.model);
  w.Key("choices").BeginArray();
  for (size_t i = 0; i < completion.choices.size(); ++i) {
    const SimChoice& c = completion.choices[i];
    w.BeginObject();
    w.Key("index").Int(static_cast<int64_t>(i));
    w.Key("message").BeginObject();
    w.Key("role").String("assistant");
    w.Key("content");
    if (c.tool_call.has_value()) {
      w.Null();
    } else {
      w.String(c.content);
    }
    if (completion.reasoning_model) {
      w.Key("reasoning_content").String(c.reasoning_content);
    }
    if (c.tool_call.has_value()) WriteToolCalls(*c.tool_call, w);
    w.Key("refusal").Null();
    w.EndObject();
    w.Key("logprobs");
    if (completion.logprobs && !c.tool_call.has_value()) {
      const std::vector<SimTokenLogprob> tokens =
          TokenLogprobs(c.content, c.hash, completion.top_logprobs);
      w.BeginObject().Key("content");
      WriteLogprobContent(tokens, 0, tokens.size(), w);
      w.Key("refusal").Null();
      w.EndObject();
    } else {
      w.Null();
    }
    w.Key("finish_reason").String(c.finish_reason);
    w.EndObject();
  }
  w.EndArray();
  w.Key("usage").BeginObject();
  w.Key("prompt_tokens").Int(completion.usage.prompt_tokens);
  w.Key("completion_tokens").Int(completion.usage.completion_tokens);
  w.Key("total_tokens").Int(completion.usage.total_tokens);
  w.Key("prompt_tokens_details").BeginObject();
  w.Key("cached_tokens").Int(0);
  w.EndObject();
  w.Key("completion_tokens_details").BeginObject();
  w.Key("reasoning_tokens").Int(completion.usage.reasoning_tokens);
  w.EndObject();
  w.EndObject();
  w.Key("system_fingerprint").String("fp_teachersim");
  w.EndObject();
  return w.Release();
}

}  // namespace distillery::teacher_sim
