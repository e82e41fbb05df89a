#include "services/cli/export_command.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/dataset/export_filter.h"
#include "common/dataset/export_format.h"
#include "common/dataset/split.h"
#include "common/job/job_state.h"
#include "services/cli/commands.h"
#include "services/cli/export_writer.h"
#include "services/cli/progress.h"

namespace distillery::cli {

const std::vector<std::string>& KnownFinishReasons() {
  // OpenAI and OpenAI-compatible servers (vLLM's "abort"), DeepSeek's
  // "insufficient_system_resource", then Anthropic's stop_reason values.
  static const std::vector<std::string> kReasons = {
      "stop",        "length",        "content_filter",
      "tool_calls",  "function_call", "abort",
      "insufficient_system_resource", "end_turn",      "max_tokens",
      "stop_sequence", "tool_use",    "pause_turn",    "refusal"};
  return kReasons;
}

absl::StatusOr<v1::ExportRequest> BuildExportRequest(
    const ExportOptions& options) {
  ASSIGN_OR_RETURN(ExportFormat format, ParseExportFormat(options.format));
  v1::ExportRequest request;
  std::vector<std::string> seen;
  for (const std::string& id : options.job_ids) {
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    request.add_job_ids(id);
  }
  if (request.job_ids().empty()) {
    return absl::InvalidArgumentError("export: give at least one job");
  }
  for (const std::string& t : options.teachers) request.add_teachers(t);
  for (const std::string& m : options.models) request.add_models(m);
  for (const std::string& m : options.metadata) {
    ASSIGN_OR_RETURN(*request.add_metadata(), ParseMetadataMatch(m));
  }
  if (format == ExportFormat::kErrors) {
    // Dead letters have no answer: answer filters do not apply.
    request.set_failed_only(true);
    return request;
  }
  request.set_include_duplicates(options.include_duplicates);
  request.set_include_failed(options.include_failed);
  const bool any_reason =
      std::find(options.finish_reasons.begin(), options.finish_reasons.end(),
                "any") != options.finish_reasons.end();
  if (!any_reason) {
    const std::vector<std::string>& known = KnownFinishReasons();
    for (const std::string& r : options.finish_reasons) {
      if (std::find(known.begin(), known.end(), r) == known.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--finish-reason: no teacher reports '", r, "'; known: ",
            absl::StrJoin(known, ", "), "; 'any' keeps every answer"));
      }
      request.add_finish_reasons(r);
    }
  }
  request.set_min_chars(options.min_chars);
  request.set_max_chars(options.max_chars);
  request.set_min_tokens(options.min_tokens);
  request.set_max_tokens(options.max_tokens);
  request.set_near_dup_threshold(options.near_dup_threshold);
  return request;
}

int Export(v1::ClientService::StubInterface& stub,
           const ExportOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<ExportFormat> format = ParseExportFormat(options.format);
  absl::StatusOr<ReasoningLayout> layout =
      ParseReasoningLayout(options.reasoning);
  absl::StatusOr<v1::ExportRequest> request = BuildExportRequest(options);
  std::optional<SplitSpec> split;
  absl::Status bad = !format.ok()    ? format.status()
                     : !layout.ok()  ? layout.status()
                     : !request.ok() ? request.status()
                                     : absl::OkStatus();
  if (bad.ok() && !options.split.empty()) {
    absl::StatusOr<SplitSpec> parsed = ParseSplitSpec(options.split);
    if (!parsed.ok()) {
      bad = parsed.status();
    } else if (options.out.empty()) {
      bad = absl::InvalidArgumentError("--split writes files: give --out");
    } else {
      split = std::move(*parsed);
    }
  }
  if (!bad.ok()) {
    err << "error: " << bad.message() << "\n";
    return 2;
  }
  // A job still harvesting exports what it has so far: say so, with counts.
  for (const std::string& id : request->job_ids()) {
    absl::StatusOr<v1::Job> fetched = FetchJob(stub, id);
    if (!fetched.ok()) return PrintCommandError(err, fetched.status());
    const v1::Job& job = *fetched;
    if (job.state() == v1::JOB_STATE_RUNNING ||
        job.state() == v1::JOB_STATE_PAUSED) {
      const v1::JobCounters& c = job.counters();
      err << absl::StrFormat(
          "warning: job %s is %s (%d of %d tasks settled: %d answered, %d "
          "failed); the export holds only what is there so far\n",
          id, JobStateName(job.state()), SettledTasks(job), c.tasks_total(),
          c.tasks_done(), c.tasks_failed());
    }
  }
  // One output per split (or one), each whole or absent.
  std::vector<std::string> paths;
  if (split) {
    for (const SplitSpec::Part& part : split->parts) {
      paths.push_back(SplitPath(options.out, part.name));
    }
  } else if (!options.out.empty()) {
    paths.push_back(options.out);
  }
  // Each file locked against other exports and written beside its
  // destination (export_writer.h); destroying one unrenamed removes it.
  std::vector<std::unique_ptr<ExportFile>> files;
  for (const std::string& path : paths) {
    absl::StatusOr<std::unique_ptr<ExportFile>> file = ExportFile::Open(path);
    if (!file.ok()) {
      err << "error: " << file.status().message() << "\n";
      return 1;
    }
    files.push_back(std::move(*file));
  }
  grpc::ClientContext context;
  auto reader = stub.Export(&context, *request);
  v1::ExportChunk chunk;
  std::vector<int64_t> counts(std::max<size_t>(1, paths.size()), 0);
  std::vector<std::string> buffers(counts.size());
  absl::Status written;
  while (reader->Read(&chunk)) {
    for (std::string& b : buffers) b.clear();
    for (const v1::ExportRecord& record : chunk.records()) {
      const int i =
          split ? AssignSplit(*split, record.prompt().id(), options.seed) : 0;
      AppendRecord(record, *format, *layout, &buffers[i]);
      buffers[i] += '\n';
      ++counts[i];
    }
    for (size_t i = 0; i < buffers.size() && written.ok(); ++i) {
      if (files.empty()) {
        out.write(buffers[i].data(),
                  static_cast<std::streamsize>(buffers[i].size()));
      } else {
        written = files[i]->Write(buffers[i]);
      }
    }
    if (!written.ok()) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (files.empty()) out.flush();
  if (!written.ok()) {
    err << "error: writing the export failed: " << written.message() << "\n";
    return 1;
  }
  if (!s.ok()) return PrintCommandError(err, s);
  for (const std::unique_ptr<ExportFile>& file : files) {
    if (absl::Status c = file->Commit(); !c.ok()) {
      err << "error: writing the export failed: " << c.message() << "\n";
      return 1;
    }
  }
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  err << "exported " << total << " records";
  if (split) {
    for (size_t i = 0; i < paths.size(); ++i) {
      err << (i ? ", " : ": ") << counts[i] << " to " << paths[i];
    }
  } else if (!options.out.empty()) {
    err << " to " << options.out;
  }
  err << "\n";
  return 0;
}

}  // namespace distillery::cli
