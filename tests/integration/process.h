// Test support for integration tests: real processes on loopback. Spawns a
// binary from build/bin with its output in files, waits for its "listening
// on HOST:PORT" line, signals it, and runs CLI commands to completion.
#ifndef DISTILLERY_TESTS_INTEGRATION_PROCESS_H_
#define DISTILLERY_TESTS_INTEGRATION_PROCESS_H_

#include <csignal>
#include <string>
#include <vector>

namespace distillery::testing {

// The directory holding the built binaries (DISTILLERY_BIN_DIR).
std::string BinDir();
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);
// A fresh temporary directory, removed by the caller (or left for autopsy).
std::string MakeTempDir(const std::string& tag);

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
                         const std::string& log_dir,
                         int timeout_seconds = 300);

// A loopback TCP port that was free a moment ago (bound to port 0 and
// released), for servers that cannot report the port they bound.
int PickFreePort();

// GET http://address/path over a plain socket; returns the body or "".
std::string HttpGet(const std::string& address, const std::string& path);

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_INTEGRATION_PROCESS_H_
