#include "common/app/startup.h"

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "common/base/logging.h"
#include "common/base/signals.h"

namespace distillery {

int FailStartup(const absl::Status& status, int exit_code,
                std::string_view prefix) {
  std::cerr << prefix << ": " << status.message() << "\n";
  return exit_code;
}

void OnTerminationSignal(std::function<void(int signal)> on_signal) {
  std::thread([on_signal = std::move(on_signal)] {
    on_signal(WaitForTerminationSignal());
  }).detach();
}

rlim_t RaiseOpenFileLimit(rlim_t wanted) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return 0;
  if (files.rlim_cur < wanted) {
    files.rlim_cur = std::min(files.rlim_max, wanted);
    if (setrlimit(RLIMIT_NOFILE, &files) != 0) getrlimit(RLIMIT_NOFILE, &files);
  }
  return files.rlim_cur;
}

void ReturnLargeAllocationsToTheKernel() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return;
  // A fixed threshold also turns glibc's dynamic one off.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
}

void AddLoggingFlags(CLI::App& app, LoggingFlags* flags) {
  app.add_option("--log-level", flags->level,
                 "trace, debug, info, warn, error");
  app.add_option("--log-format", flags->format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
}

void InitLogging(const std::string& program, const LoggingFlags& flags) {
  InitLogging(program, flags.level, flags.format);
}

}  // namespace distillery
