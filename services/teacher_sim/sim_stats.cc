#include "services/teacher_sim/sim_stats.h"

#include "services/teacher_sim/json_writer.h"

namespace distillery::teacher_sim {

void SimStats::Record(int status, bool chat, int64_t prompt_tokens,
                      int64_t completion_tokens) {
  absl::MutexLock lock(&mu_);
  ++counters_.requests_total;
  ++counters_.by_status[status];
  if (status >= 400) ++counters_.errors_total;
  if (chat) {
    ++counters_.chat_requests_total;
    if (status == 200) {
      ++counters_.chat_completions_total;
      counters_.prompt_tokens_total += prompt_tokens;
      counters_.completion_tokens_total += completion_tokens;
    }
  }
}

void SimStats::RecordCompletion(std::string_view body, int64_t prompt_tokens,
                                int64_t completion_tokens, int64_t choices) {
  const size_t hash = std::hash<std::string_view>{}(body);
  Record(200, /*chat=*/true, prompt_tokens, completion_tokens);
  absl::MutexLock lock(&mu_);
  counters_.choices_total += choices;
  if (!answered_.insert(hash).second) ++counters_.chat_completions_repeated;
}

void SimStats::RecordFault(std::string_view kind) {
  absl::MutexLock lock(&mu_);
  ++counters_.faults[std::string(kind)];
}

SimStats::Snapshot SimStats::Get() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

std::string SimStats::RenderJson() const {
  const Snapshot s = Get();
  JsonWriter w;
  w.BeginObject();
  w.Key("requests_total").Int(s.requests_total);
  w.Key("chat_requests_total").Int(s.chat_requests_total);
  w.Key("chat_completions_total").Int(s.chat_completions_total);
  w.Key("chat_completions_repeated").Int(s.chat_completions_repeated);
  w.Key("errors_total").Int(s.errors_total);
  w.Key("prompt_tokens_total").Int(s.prompt_tokens_total);
  w.Key("completion_tokens_total").Int(s.completion_tokens_total);
  w.Key("choices_total").Int(s.choices_total);
  w.Key("by_status").BeginObject();
  for (const auto& [status, count] : s.by_status) {
    w.Key(std::to_string(status)).Int(count);
  }
  w.EndObject();
  w.Key("faults").BeginObject();
  for (const auto& [kind, count] : s.faults) w.Key(kind).Int(count);
  w.EndObject();
  w.EndObject();
  return w.Release();
}

}  // namespace distillery::teacher_sim
