// `distillery export`: turns the export flags into the coordinator's
// ExportRequest (the filters run there), then streams the records through
// the chosen format and split into stdout or export files that are whole
// or absent (export_writer.h). Stateless functions.
// Thread-safe: stateless functions over their arguments.
#ifndef DISTILLERY_SERVICES_CLI_EXPORT_COMMAND_H_
#define DISTILLERY_SERVICES_CLI_EXPORT_COMMAND_H_

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distillery/v1/client_service.grpc.pb.h"

namespace distillery::cli {

struct ExportOptions {
  std::vector<std::string> job_ids;  // exported in this order, once each
  std::string format = "openai";     // openai, chat, sharegpt, raw, errors
  std::string reasoning;             // field, think-tags, drop; "": format's
  std::string reasoning_key;         // chat's key; "": reasoning_content
  std::string out;                   // empty: stdout
  bool include_duplicates = false;
  bool include_failed = false;
  // Answers kept by finish reason; "any" anywhere in the list keeps all.
  std::vector<std::string> finish_reasons = {"stop", "end_turn", "tool_calls",
                                             "tool_use"};
  std::vector<std::string> teachers;
  std::vector<std::string> models;
  int64_t min_chars = 0, max_chars = 0, min_tokens = 0, max_tokens = 0;
  std::vector<std::string> metadata;  // KEY=VALUE, all must match
  double near_dup_threshold = 0;      // 0: keep near-duplicates
  bool verified_only = false;         // --verify jobs: verified answers only
  std::optional<double> min_pass_rate, max_pass_rate;  // per prompt
  // Benchmark questions whose prompts are left out (decontaminate.h); with
  // include_contaminated (raw only) they are kept and marked instead.
  std::string decontaminate;
  int decontaminate_ngram = 13;
  bool include_contaminated = false;
  std::string split;                  // "train=0.95,test=0.05"; needs `out`
  uint64_t seed = 0;                  // of the split assignment
  // A Hugging Face dataset card, README.md beside `out`.
  bool card = false;
  std::string license;                // "": other
  std::vector<std::string> languages;
  std::string pretty_name;
};

// The dataset layout of `options` (format, reasoning, split, card); the
// card names the files `Export` writes. Checked with BuildExportRequest.
v1::ExportLayout BuildExportLayout(const ExportOptions& options);

// The README.md path of `--card` for `out`: in the same directory.
std::string CardPath(const std::string& out);

// The server-side part of `options` (the format's and filters' request).
// INVALID_ARGUMENT for a bad format, reasoning layout or key, split, card
// option, --metadata, or a finish reason no teacher reports (a typo would
// export nothing). The layout itself is applied on the CLI's side: the
// request carries none.
absl::StatusOr<v1::ExportRequest> BuildExportRequest(
    const ExportOptions& options);

// Exports the jobs of `options` (a warning for each job still harvesting).
// Exit codes: 0 ok, 1 the export or its writing failed, 2 bad options or an
// unknown job.
int Export(v1::ClientService::StubInterface& stub, const ExportOptions& options,
           std::ostream& out, std::ostream& err);

// Where an export's records come from: streams the records `request`
// selects to `emit` (stopping, OK, when it returns false) and fills
// `summary`'s counts. Over gRPC for the CLI; `distillery run` reads its
// in-process coordinator directly, without serialising every record twice.
using ExportRecordSource = std::function<absl::Status(
    const v1::ExportRequest& request,
    const std::function<bool(v1::ExportRecord&&)>& emit,
    v1::ExportSummary* summary)>;

// As above, with the records from `source` (the stub still fetches the
// jobs, for the warnings and the card).
int Export(v1::ClientService::StubInterface& stub,
           const ExportRecordSource& source, const ExportOptions& options,
           std::ostream& out, std::ostream& err);

}  // namespace distillery::cli

#endif  // DISTILLERY_SERVICES_CLI_EXPORT_COMMAND_H_
