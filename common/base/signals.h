// Orderly shutdown on SIGTERM/SIGINT without doing work in a signal handler:
// main() blocks the signals before starting threads, then one thread waits
// for them with sigwait and starts the drain.
#ifndef DISTILLERY_COMMON_BASE_SIGNALS_H_
#define DISTILLERY_COMMON_BASE_SIGNALS_H_

#include <csignal>
#include <pthread.h>

namespace distillery {

// Blocks SIGTERM and SIGINT in the calling thread and threads it starts.
// Call first thing in main().
inline void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Waits for SIGTERM or SIGINT and returns its number.
inline int WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace distillery

#endif  // DISTILLERY_COMMON_BASE_SIGNALS_H_
