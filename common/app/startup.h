// The start-up and shutdown steps every Distillery binary's main() shares:
// stop signals taken by one waiting thread, the open-file limit raised for
// many connections, the --log-level/--log-format flags, the Prometheus
// endpoint, and a start-up error printed as one line with its exit code.
// The mains only parse their own flags and wire objects; what they all do
// the same way is here, once. Functions meant for main(); each says whether
// it may be called from other threads.
#ifndef DISTILLERY_COMMON_APP_STARTUP_H_
#define DISTILLERY_COMMON_APP_STARTUP_H_

#include <sys/resource.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace CLI {
class App;
}  // namespace CLI

namespace distillery {

class MetricsExposer;

// Exit codes of every binary: 1 it started but failed, 2 bad usage, flags
// or configuration (the CLI's commands add their own, services/cli).
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "error: MESSAGE" (or "PREFIX: MESSAGE" for a binary whose errors
// carry its name) to stderr and returns `exit_code`, for
// `return FailStartup(status, kExitUsage);` in main().
int FailStartup(const absl::Status& status, int exit_code,
                std::string_view prefix = "error");

// Starts a detached thread that waits for the first SIGTERM or SIGINT
// (blocked first thing in main() by BlockTerminationSignals,
// common/base/signals.h) and calls `on_signal` with its number on that
// thread. Later signals stay blocked: a stop already under way is not
// started again.
void OnTerminationSignal(std::function<void(int signal)> on_signal);

// Raises the soft limit on open files towards `wanted` (at most the hard
// limit) when it is below; returns the soft limit now in force (0 when it
// cannot be read). RLIM_INFINITY: as far as the hard limit allows.
rlim_t RaiseOpenFileLimit(rlim_t wanted);

// Has glibc's malloc serve every allocation of 256 KB or more with its own
// mapping, returned to the kernel when freed, unless the environment sets
// MALLOC_MMAP_THRESHOLD_ itself. glibc's default raises that threshold as
// large blocks are freed, after which RocksDB's memtable arenas and large
// gRPC messages come from the heap, whose freed memory is seldom returned:
// the coordinator's peak grew by 100-200 MB that way, more on one run than
// the next (bench/results.md, row 6). Call first thing in main(). In the
// programs built with jemalloc (DISTILLERY_MALLOC, the default) glibc's
// malloc serves nothing and this changes nothing: jemalloc keeps large
// blocks in their own extents and returns freed memory on its own.
void ReturnLargeAllocationsToTheKernel();

// --log-level and --log-format on `app`, defaults "info" and "text".
struct LoggingFlags {
  std::string level = "info";
  std::string format = "text";
};
void AddLoggingFlags(CLI::App& app, LoggingFlags* flags);
// InitLogging for `program` with the parsed flags.
void InitLogging(const std::string& program, const LoggingFlags& flags);

// For --metrics-listen: nullptr when `address` is empty, else the endpoint
// serving /metrics there; either way the process's build info is recorded
// under `role` ("coordinator", "worker"). UNAVAILABLE when it cannot bind.
absl::StatusOr<std::unique_ptr<MetricsExposer>> StartMetrics(
    const std::string& address, const std::string& role);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_APP_STARTUP_H_
