// Job states: the one definition of what each state of a job is called, which
// states are final and which stop a watcher, used by the coordinator, the
// gRPC services, the metrics and the CLI. The states themselves are the
// v1::JobState enum; names derive from its descriptor ("JOB_STATE_PAUSED" is
// "paused"), so a state added to the proto appears everywhere at once, and
// IsTerminal's switch has no default so the compiler asks about it.
// Thread-safe (everything here is immutable).
#ifndef DISTILLERY_COMMON_JOB_JOB_STATE_H_
#define DISTILLERY_COMMON_JOB_JOB_STATE_H_

#include <string>
#include <vector>

#include "distillery/v1/types.pb.h"

namespace distillery {

// Every state a job can be in, in the proto's order, without UNSPECIFIED.
// This is the list `distillery_job_state` reports a series for.
const std::vector<v1::JobState>& AllJobStates();

// The lowercase name users see: "running", "paused", ...; "unknown" for a
// value outside the enum or UNSPECIFIED.
const std::string& JobStateName(v1::JobState state);

// "online", "batch", "auto".
const char* JobModeName(v1::JobMode mode);

// True when nothing more happens to the job unless a user acts on it with
// `retry` (completed or failed) or never (cancelled).
bool IsTerminal(v1::JobState state);

// True when the job makes no progress until a user acts: terminal, or
// paused at its budget. `watch` ends in these states.
bool IsSettledForNow(v1::JobState state);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_JOB_JOB_STATE_H_
