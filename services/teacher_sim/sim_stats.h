// SimStats: teacher-sim's request counters, served at GET /stats so that
// integration tests can prove the system did (or did not) call the teacher.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_STATS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_STATS_H_

#include <cstdint>
#include <map>
#include "absl/synchronization/mutex.h"
#include <string>
#include <string_view>
#include <unordered_set>

#include "absl/base/thread_annotations.h"

namespace distillery::teacher_sim {

// Thread-safe (an annotated absl::Mutex, checked by clang's -Wthread-safety).
class SimStats {
 public:
  struct Snapshot {
    int64_t requests_total = 0;
    int64_t chat_requests_total = 0;  // POST /v1/chat/completions, any status
    int64_t chat_completions_total = 0;   // ... answered 200
    // 200 answers to a request body already answered 200 before: what a
    // client paid for twice (the same request sent again).
    int64_t chat_completions_repeated = 0;
    int64_t errors_total = 0;             // any request answered >= 400
    int64_t prompt_tokens_total = 0;      // over 200 answers
    int64_t completion_tokens_total = 0;  // over 200 answers
    // Choices in 200 answers (a request with n: 3 serves 3).
    int64_t choices_total = 0;
    std::map<int, int64_t> by_status;
    std::map<std::string, int64_t> faults;  // injected, by kind
  };

  // Counts one request answered with `status`. `chat` marks chat completion
  // requests; tokens are billed only for status 200.
  void Record(int status, bool chat, int64_t prompt_tokens = 0,
              int64_t completion_tokens = 0);

  // Counts one complete 200 answer to the request `body`, with its tokens
  // and choices, and whether that exact body was answered before.
  void RecordCompletion(std::string_view body, int64_t prompt_tokens,
                        int64_t completion_tokens, int64_t choices = 1);

  // Counts one injected fault of `kind` (fault_injector.h's names).
  void RecordFault(std::string_view kind);

  Snapshot Get() const;

  // {"requests_total":N,"chat_requests_total":N,"chat_completions_total":N,
  //  "chat_completions_repeated":N,"errors_total":N,"prompt_tokens_total":N,
  //  "completion_tokens_total":N,"choices_total":N,
  //  "by_status":{"200":N,...},"faults":{"reset":N,...}}
  std::string RenderJson() const;

 private:
  mutable absl::Mutex mu_;
  Snapshot counters_ ABSL_GUARDED_BY(mu_);
  // Hashes of the bodies answered 200 (8 bytes each; a collision would only
  // over-count a repeat, which the tests that read it would report).
  std::unordered_set<size_t> answered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_STATS_H_
