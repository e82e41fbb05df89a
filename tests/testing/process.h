// Test support for integration tests: real processes on loopback. Spawns a
// binary from build/bin with its output in files, waits for its "listening
// on HOST:PORT" line, signals it, and runs CLI commands to completion. A
// Process is not thread-safe; the free functions are.
#ifndef DISTILLERY_TESTS_TESTING_PROCESS_H_
#define DISTILLERY_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace distillery::testing {

// The directory holding the built binaries (DISTILLERY_BIN_DIR).
std::string BinDir();

class Process {
 public:
  // Starts `binary` (a name in BinDir(), or a path with a '/') with `args`;
  // stdout and stderr go to files in `log_dir`.
  Process(const std::string& binary, std::vector<std::string> args,
          const std::string& log_dir);
  ~Process();  // SIGKILLs a process still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Waits for "listening on ADDRESS" on stdout; returns ADDRESS or "" when
  // the process exits or 30 s pass first.
  std::string WaitForAddress();
  void Signal(int sig);
  // Waits for exit; returns the exit code, or 128 + signal.
  int Wait();
  bool Running();
  std::string Stdout() const { return ReadFile(stdout_path_); }
  std::string Stderr() const { return ReadFile(stderr_path_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string stdout_path_, stderr_path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `binary args...` to completion (at most `timeout_seconds`).
CommandResult RunCommand(const std::string& binary,
                         const std::vector<std::string>& args,
                         const std::string& log_dir, int timeout_seconds = 300);

// A loopback TCP port that was free a moment ago (bound to port 0 and
// released), for servers that cannot report the port they bound.
int PickFreePort();

// GET http://address/path over a plain socket; returns the body or "".
std::string HttpGet(const std::string& address, const std::string& path);

// Polls `condition` every `poll_ms` until it holds or `timeout_seconds`
// pass; returns its last value (checked once more at the deadline).
bool WaitUntil(const std::function<bool()>& condition, int timeout_seconds,
               int poll_ms = 50);

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_PROCESS_H_
