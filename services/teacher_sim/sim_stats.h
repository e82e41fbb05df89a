// SimStats: teacher-sim's request counters, served at GET /stats so that
// integration tests can prove the system did (or did not) call the teacher.
#ifndef DISTILLERY_SERVICES_TEACHER_SIM_SIM_STATS_H_
#define DISTILLERY_SERVICES_TEACHER_SIM_SIM_STATS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"

namespace distillery::teacher_sim {

// Thread-safe. (std::mutex rather than absl::Mutex: Debian's Abseil is not
// built for ThreadSanitizer, which then cannot see absl::Mutex at all.)
class SimStats {
 public:
  struct Snapshot {
    int64_t requests_total = 0;
    int64_t chat_requests_total = 0;  // POST /v1/chat/completions, any status
    int64_t chat_completions_total = 0;   // ... answered 200
    int64_t errors_total = 0;             // any request answered >= 400
    int64_t prompt_tokens_total = 0;      // over 200 answers
    int64_t completion_tokens_total = 0;  // over 200 answers
    std::map<int, int64_t> by_status;
    std::map<std::string, int64_t> faults;  // injected, by kind
  };

  // Counts one request answered with `status`. `chat` marks chat completion
  // requests; tokens are billed only for status 200.
  void Record(int status, bool chat, int64_t prompt_tokens = 0,
              int64_t completion_tokens = 0);

  // Counts one injected fault of `kind` (fault_injector.h's names).
  void RecordFault(std::string_view kind);

  Snapshot Get() const;

  // {"requests_total":N,"chat_requests_total":N,"chat_completions_total":N,
  //  "errors_total":N,"prompt_tokens_total":N,"completion_tokens_total":N,
  //  "by_status":{"200":N,...},"faults":{"reset":N,...}}
  std::string RenderJson() const;

 private:
  mutable std::mutex mu_;
  Snapshot counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distillery::teacher_sim

#endif  // DISTILLERY_SERVICES_TEACHER_SIM_SIM_STATS_H_
