// `distillery run` (and `make demo`): a whole cluster in this process, a
// coordinator on an embedded RocksDB and workers calling the teacher, driven
// by the same commands a user runs (submit, watch, export) over loopback
// gRPC. The only part of the CLI that links the coordinator, the worker and
// RocksDB. One Run at a time per data dir (RocksDB locks it).
// Run is called from main() on one thread; the cluster it starts is
// thread-safe.
#ifndef DISTILLERY_SERVICES_CLI_EMBEDDED_CLUSTER_H_
#define DISTILLERY_SERVICES_CLI_EMBEDDED_CLUSTER_H_

#include <iosfwd>
#include <string>

#include "services/cli/commands.h"
#include "services/cli/export_command.h"

namespace distillery::cli {

struct RunOptions {
  SubmitOptions submit;  // its file is empty when resuming
  std::string teachers_file;
  int workers = 2;
  std::string data_dir = ".distillery";
  bool sync_writes = false;  // see the coordinator's --sync-writes
  ExportOptions export_options;
  // The progress display, as `watch` draws it: a bar redrawn in place on a
  // terminal `progress_width` columns wide, else plain lines.
  bool progress_tty = false;
  int progress_width = 80;
  // Set: harvest (and export) this job of the data dir, left unfinished by
  // an interrupted run, instead of submitting a file.
  std::string resume_job;
  // Set: Ctrl-C stops the run (see Run).
  Interrupter* interrupt = nullptr;
};

// Harvests with a coordinator on `options.data_dir` and `options.workers`
// workers in this process: submit, watch, export, and a summary of what it
// cost. Only the job it submits (or `resume_job`) is harvested: unfinished
// jobs of earlier runs in the data dir are named and left as they are. On
// `interrupt` the workers stop (requests in flight finish and are stored),
// the job is kept, nothing is exported, the summary and the command that
// resumes the job are printed, and it returns kExitInterrupted. Otherwise
// the exit code is watch's, or export's when the watch ended with 0.
int Run(const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace distillery::cli

#endif  // DISTILLERY_SERVICES_CLI_EMBEDDED_CLUSTER_H_
