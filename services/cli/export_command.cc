#include "services/cli/export_command.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/dataset/dataset_builder.h"
#include "common/dataset/decontaminate.h"
#include "common/dataset/export_filter.h"
#include "common/dataset/export_format.h"
#include "common/dataset/split.h"
#include "common/job/job_state.h"
#include "services/cli/commands.h"
#include "services/cli/export_writer.h"
#include "services/cli/progress.h"

namespace distillery::cli {
namespace {

// What --decontaminate found, prompt by prompt (records come in prompt
// order, so each prompt's text is checked once).
class ContaminationTally {
 public:
  // False when `record` is to be left out; with `mark`, kept and marked.
  bool Keep(const Decontaminator& d, bool mark, v1::ExportRecord* record) {
    if (record->job_id() != job_ || record->task().prompt_seq() != seq_) {
      job_ = record->job_id();
      seq_ = record->task().prompt_seq();
      std::string text;
      for (const v1::ChatMessage& m : record->prompt().messages()) {
        text.append(m.content()).push_back('\n');
      }
      match_ = d.Find(text);
      if (match_) {
        ++prompts_;
        lines_.insert(match_->benchmark_line);
      }
    }
    if (!match_) return true;
    ++records_;
    if (!mark) return false;
    record->mutable_contamination()->set_benchmark_line(match_->benchmark_line);
    record->mutable_contamination()->set_ngram(match_->ngram);
    return true;
  }

  std::string Report(bool marked) const {
    std::vector<int64_t> shown;
    for (int64_t line : lines_) {
      if (shown.size() == 20) break;
      shown.push_back(line);
    }
    return absl::StrCat(
        "decontamination: ", prompts_, " prompts (", records_, " records) ",
        marked ? "marked" : "left out", " for sharing an n-gram with ",
        lines_.size(), " benchmark questions",
        lines_.empty() ? std::string()
                       : absl::StrCat(" (lines ", absl::StrJoin(shown, ", "),
                                      lines_.size() > shown.size() ? ", ..." : "",
                                      ")"),
        marked ? "" : "; --include-contaminated --format raw lists them",
        "\n");
  }

 private:
  std::string job_;
  int64_t seq_ = -1;
  std::optional<ContaminationMatch> match_;
  int64_t prompts_ = 0;
  int64_t records_ = 0;
  std::set<int64_t> lines_;
};

}  // namespace

v1::ExportLayout BuildExportLayout(const ExportOptions& options) {
  v1::ExportLayout layout;
  layout.set_format(options.format);
  layout.set_reasoning(options.reasoning);
  layout.set_reasoning_key(options.reasoning_key);
  layout.set_split(options.split);
  layout.set_split_seed(options.seed);
  if (options.card) {
    v1::DatasetCardOptions* card = layout.mutable_card();
    card->set_license(options.license);
    for (const std::string& l : options.languages) card->add_languages(l);
    card->set_pretty_name(options.pretty_name);
    // The files as the card names them: beside it, so by their names.
    absl::StatusOr<SplitSpec> split = ParseSplitSpec(options.split);
    const auto name = [](const std::string& path) {
      return std::filesystem::path(path).filename().string();
    };
    if (options.split.empty() || !split.ok()) {
      card->add_data_files(name(options.out));
    } else {
      for (const SplitSpec::Part& part : split->parts) {
        card->add_data_files(name(SplitPath(options.out, part.name)));
      }
    }
  }
  return layout;
}

std::string CardPath(const std::string& out) {
  return (std::filesystem::path(out).parent_path() / "README.md").string();
}

absl::StatusOr<v1::ExportRequest> BuildExportRequest(
    const ExportOptions& options) {
  ASSIGN_OR_RETURN(ExportFormat format, ParseExportFormat(options.format));
  RETURN_IF_ERROR(DatasetBuilder::Create(BuildExportLayout(options)).status());
  if (!options.split.empty() && options.out.empty()) {
    return absl::InvalidArgumentError("--split writes files: give --out");
  }
  if (options.card && options.out.empty()) {
    return absl::InvalidArgumentError(
        "--card writes README.md beside the dataset: give --out");
  }
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
    for (const std::string& r : options.finish_reasons) {
      request.add_finish_reasons(r);
    }
  }
  request.set_min_chars(options.min_chars);
  request.set_max_chars(options.max_chars);
  request.set_min_tokens(options.min_tokens);
  request.set_max_tokens(options.max_tokens);
  request.set_near_dup_threshold(options.near_dup_threshold);
  request.set_verified_only(options.verified_only);
  if (options.min_pass_rate) request.set_min_pass_rate(*options.min_pass_rate);
  if (options.max_pass_rate) request.set_max_pass_rate(*options.max_pass_rate);
  // The coordinator checks the same; here it fails before any call.
  RETURN_IF_ERROR(ExportFilter::Create(request).status());
  return request;
}

int Export(v1::ClientService::StubInterface& stub,
           const ExportOptions& options, std::ostream& out, std::ostream& err) {
  // The records of the coordinator's Export stream, chunk by chunk; the
  // summary comes with the last chunk.
  const ExportRecordSource over_grpc =
      [&stub](const v1::ExportRequest& request,
              const std::function<bool(v1::ExportRecord&&)>& emit,
              v1::ExportSummary* summary) -> absl::Status {
    grpc::ClientContext context;
    auto reader = stub.Export(&context, request);
    v1::ExportChunk chunk;
    bool stopped = false;
    while (!stopped && reader->Read(&chunk)) {
      if (chunk.has_summary()) *summary = chunk.summary();
      for (v1::ExportRecord& record : *chunk.mutable_records()) {
        if (!emit(std::move(record))) {
          stopped = true;
          break;
        }
      }
    }
    if (stopped) context.TryCancel();
    grpc::Status s = reader->Finish();
    return stopped ? absl::OkStatus() : FromGrpcStatus(s);
  };
  return Export(stub, over_grpc, options, out, err);
}

int Export(v1::ClientService::StubInterface& stub,
           const ExportRecordSource& source, const ExportOptions& options,
           std::ostream& out, std::ostream& err) {
  absl::StatusOr<v1::ExportRequest> request = BuildExportRequest(options);
  if (!request.ok()) {
    err << "error: " << request.status().message() << "\n";
    return 2;
  }
  // Checked by BuildExportRequest.
  DatasetBuilder builder = *DatasetBuilder::Create(BuildExportLayout(options));
  // Decontamination runs here, on the CLI's side, where the benchmark file
  // is: the coordinator never needs it.
  std::optional<Decontaminator> decontaminator;
  if (!options.decontaminate.empty()) {
    if (options.include_contaminated && options.format != "raw") {
      err << "error: --include-contaminated marks records in --format raw "
             "only; other formats have no field for it\n";
      return 2;
    }
    absl::StatusOr<Decontaminator> loaded = Decontaminator::Load(
        options.decontaminate, options.decontaminate_ngram);
    if (!loaded.ok()) {
      err << "error: " << loaded.status().message() << "\n";
      return 2;
    }
    decontaminator = std::move(*loaded);
  } else if (options.include_contaminated) {
    err << "error: --include-contaminated needs --decontaminate FILE\n";
    return 2;
  }
  ContaminationTally tally;
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
    builder.card().AddJob(job);
  }
  // One output per split (or one), and the card, each whole or absent.
  std::vector<std::string> paths;
  if (builder.split()) {
    for (const std::string& name : builder.part_names()) {
      paths.push_back(SplitPath(options.out, name));
    }
  } else if (!options.out.empty()) {
    paths.push_back(options.out);
  }
  if (options.card) paths.push_back(CardPath(options.out));
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
  // Records are formatted as they come and written about a megabyte at a
  // time.
  constexpr size_t kWriteBytes = 1 << 20;
  v1::ExportSummary summary;
  std::vector<std::string> buffers(builder.part_names().size());
  absl::Status written;
  const auto write_buffers = [&] {
    for (size_t i = 0; i < buffers.size() && written.ok(); ++i) {
      if (files.empty()) {
        out.write(buffers[i].data(),
                  static_cast<std::streamsize>(buffers[i].size()));
      } else {
        written = files[i]->Write(buffers[i]);
      }
      buffers[i].clear();
    }
    return written.ok();
  };
  absl::Status s = source(
      *request,
      [&](v1::ExportRecord&& record) {
        if (decontaminator &&
            !tally.Keep(*decontaminator, options.include_contaminated,
                        &record)) {
          return true;
        }
        builder.Add(record, &buffers);
        size_t buffered = 0;
        for (const std::string& b : buffers) buffered += b.size();
        return buffered < kWriteBytes || write_buffers();
      },
      &summary);
  if (written.ok()) write_buffers();
  if (files.empty()) out.flush();
  if (!written.ok()) {
    err << "error: writing the export failed: " << written.message() << "\n";
    return 1;
  }
  if (!s.ok()) return PrintCommandError(err, s);
  if (options.card) {
    written = files.back()->Write(builder.RenderCard(*request, summary));
  }
  for (const std::unique_ptr<ExportFile>& file : files) {
    if (written.ok()) written = file->Commit();
  }
  if (!written.ok()) {
    err << "error: writing the export failed: " << written.message() << "\n";
    return 1;
  }
  err << "exported " << builder.records() << " records";
  if (builder.split()) {
    for (size_t i = 0; i < builder.part_names().size(); ++i) {
      err << (i ? ", " : ": ") << builder.part_records()[i] << " to "
          << paths[i];
    }
  } else if (!options.out.empty()) {
    err << " to " << options.out;
  }
  if (summary.duplicates_left_out() > 0 ||
      summary.near_duplicates_left_out() > 0) {
    err << " (left out: " << summary.duplicates_left_out()
        << " duplicates, " << summary.near_duplicates_left_out()
        << " near-duplicates)";
  }
  if (options.card) err << "; card " << paths.back();
  err << "\n";
  if (decontaminator) err << tally.Report(options.include_contaminated);
  if (builder.traces_dropped() > 0 && options.reasoning.empty()) {
    err << "note: " << builder.traces_dropped()
        << " reasoning traces left out: OpenAI's fine-tuning format has no "
           "key for them; --reasoning think-tags puts them inline, --format "
           "chat keeps them under --reasoning-key\n";
  }
  return 0;
}

}  // namespace distillery::cli
