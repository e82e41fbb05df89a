#include "services/teacher_sim/sim_logprobs.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>

#include "services/teacher_sim/sim_ids.h"

namespace distillery::teacher_sim {
namespace {

constexpr uint64_t kLogprobSalt = 0x6c6f677072627321ULL;
constexpr double kMaxChosenDrop = 2.5;
constexpr double kMinStep = 0.05;
constexpr double kStepSpread = 0.8;

// The alternatives a token competes with.
constexpr std::array kAlternatives = {
    "the",    "a",     "of",     "and",    "to",      "in",     "is",
    "that",   "it",    "for",    "on",     "with",    "as",     "this",
    "model",  "river", "theory", "signal", "pattern", "system", "answer",
    "method", "proof", "story",  "simple", "careful", "quiet",  "rapid",
    ",",      ".",     ";",      ":",      "!",       "?",      "\"",
    "(",      ")",     "-",      "1",      "2"};

bool IsSpace(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' ||
         c == '\v';
}

bool IsWordByte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || c == '_' || c == '\'';
}

// A uniform double in [0, 1) from `bits`.
double Unit(uint64_t bits) {
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// `v` with 6 significant digits, as logprobs are printed.
double Round6(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return std::strtod(buf, nullptr);
}

// The whitespace a token starts with ("" or " ").
std::string_view LeadingSpace(std::string_view token) {
  size_t i = 0;
  while (i < token.size() && IsSpace(token[i])) ++i;
  return token.substr(0, i);
}

SimTokenLogprob Entry(std::string_view token, uint64_t hash, int top) {
  SimTokenLogprob entry;
  entry.token = std::string(token);
  uint64_t state = hash;
  auto next = [&state] { return Mix64(state++); };
  entry.logprob = Round6(-(1e-4 + kMaxChosenDrop * Unit(next()) *
                                      Unit(next()) * Unit(next())));
  if (top <= 0) return entry;
  entry.top.emplace_back(entry.token, entry.logprob);
  const std::string space(LeadingSpace(token));
  double value = entry.logprob;
  size_t at = next() % kAlternatives.size();
  while (static_cast<int>(entry.top.size()) < top) {
    std::string candidate = space + kAlternatives[at];
    at = (at + 1) % kAlternatives.size();
    const bool taken =
        std::any_of(entry.top.begin(), entry.top.end(),
                    [&](const auto& t) { return t.first == candidate; });
    if (taken) continue;
    value = Round6(value - kMinStep - kStepSpread * Unit(next()));
    entry.top.emplace_back(std::move(candidate), value);
  }
  return entry;
}

void WriteBytes(std::string_view token, JsonWriter& w) {
  w.Key("bytes").BeginArray();
  for (char c : token) w.Int(static_cast<unsigned char>(c));
  w.EndArray();
}

}  // namespace

std::vector<std::string_view> SplitIntoTokens(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i < text.size() && IsWordByte(text[i])) {
      while (i < text.size() && IsWordByte(text[i])) ++i;
    } else if (i < text.size()) {
      ++i;  // one punctuation mark
    }
    tokens.push_back(text.substr(start, i - start));
  }
  return tokens;
}

std::vector<SimTokenLogprob> TokenLogprobs(std::string_view text,
                                           uint64_t hash, int top_logprobs) {
  const int top = std::clamp(top_logprobs, 0, kMaxTopLogprobs);
  std::vector<SimTokenLogprob> out;
  uint64_t index = 0;
  for (std::string_view token : SplitIntoTokens(text)) {
    out.push_back(Entry(token, Mix64(hash ^ kLogprobSalt) + (index++ << 8),
                        top));
  }
  return out;
}

void WriteLogprobContent(const std::vector<SimTokenLogprob>& tokens,
                         size_t begin, size_t end, JsonWriter& w) {
  w.BeginArray();
  for (size_t i = begin; i < end && i < tokens.size(); ++i) {
    const SimTokenLogprob& t = tokens[i];
    w.BeginObject();
    w.Key("token").String(t.token);
    w.Key("logprob").Double(t.logprob);
    WriteBytes(t.token, w);
    w.Key("top_logprobs").BeginArray();
    for (const auto& [token, logprob] : t.top) {
      w.BeginObject();
      w.Key("token").String(token);
      w.Key("logprob").Double(logprob);
      WriteBytes(token, w);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace distillery::teacher_sim
