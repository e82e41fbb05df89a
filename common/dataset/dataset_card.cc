#include "common/dataset/dataset_card.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/base/json_string.h"
#include "common/job/job_state.h"

namespace distillery {
namespace {

// The Hub's ids: "apache-2.0", "cc-by-4.0", "en", "zh-Hans".
bool IsHubId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

bool IsHubSplitName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
  });
}

// A YAML scalar: JSON's string form is a valid YAML double-quoted scalar.
std::string Yaml(std::string_view text) {
  std::string out;
  AppendJsonString(text, &out);
  return out;
}

// The Hub's size_categories bucket for `n` rows.
std::string SizeCategory(int64_t n) {
  static constexpr struct {
    int64_t below;
    const char* name;
  } kBuckets[] = {{1'000, "n<1K"},
                  {10'000, "1K<n<10K"},
                  {100'000, "10K<n<100K"},
                  {1'000'000, "100K<n<1M"},
                  {10'000'000, "1M<n<10M"},
                  {100'000'000, "10M<n<100M"},
                  {1'000'000'000, "100M<n<1B"}};
  for (const auto& b : kBuckets) {
    if (n < b.below) return b.name;
  }
  return "1B<n<10B";
}

// User text in a Markdown table cell or list item: one line, no cell
// breaks, at most 120 characters.
std::string Cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') {
      out.push_back(' ');
    } else if (c == '|' || c == '`' || c == '<' || c == '>' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else {
      out.push_back(c);
    }
    if (out.size() >= 120) {
      // Not in the middle of a UTF-8 sequence.
      while (!out.empty() &&
             (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) {
        out.pop_back();
      }
      if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80)) {
        out.pop_back();
      }
      out += "...";
      break;
    }
  }
  return out;
}

std::string Utc(int64_t ms) {
  if (ms <= 0) return "unknown";
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

std::string Params(const v1::JobSpec& spec) {
  const v1::SamplingParams& p = spec.params();
  std::vector<std::string> parts;
  parts.push_back(absl::StrCat("samples ", spec.samples()));
  parts.push_back(p.max_tokens() > 0
                      ? absl::StrCat("max_tokens ", p.max_tokens())
                      : "max_tokens the profile's default");
  parts.push_back(p.has_temperature()
                      ? absl::StrCat("temperature ", p.temperature())
                      : "temperature the teacher's default");
  if (p.has_top_p()) parts.push_back(absl::StrCat("top_p ", p.top_p()));
  if (p.has_seed()) parts.push_back(absl::StrCat("seed ", p.seed()));
  if (p.stop_size() > 0) {
    parts.push_back(absl::StrCat(p.stop_size(), " stop sequences"));
  }
  parts.push_back(
      spec.system_prompt().empty()
          ? "no job system prompt"
          : absl::StrCat("system prompt \"", Cell(spec.system_prompt()), "\""));
  parts.push_back(absl::StrCat("mode ", JobModeName(spec.mode())));
  if (!spec.verify().empty()) {
    parts.push_back(absl::StrCat("answers checked by --verify ",
                                 Cell(spec.verify())));
  }
  if (spec.until_correct() > 0) {
    parts.push_back(absl::StrCat("sampled until ", spec.until_correct(),
                                 " verified, at most ", spec.max_samples(),
                                 " samples"));
  }
  return absl::StrJoin(parts, ", ");
}

// The export's filters in `distillery export`'s words.
std::vector<std::string> Filters(const v1::ExportRequest& r) {
  std::vector<std::string> f;
  if (r.failed_only()) f.push_back("dead letters only");
  f.push_back(r.finish_reasons().empty()
                  ? "finish reasons: any"
                  : absl::StrCat("finish reasons: ",
                                 absl::StrJoin(r.finish_reasons(), ", ")));
  f.push_back(r.include_duplicates() ? "exact duplicates kept"
                                     : "exact duplicates left out");
  if (r.include_failed()) f.push_back("dead-lettered tasks included");
  if (r.verified_only()) f.push_back("verified answers only");
  if (r.has_min_pass_rate()) {
    f.push_back(absl::StrCat("min pass rate ", r.min_pass_rate()));
  }
  if (r.has_max_pass_rate()) {
    f.push_back(absl::StrCat("max pass rate ", r.max_pass_rate()));
  }
  if (!r.teachers().empty()) {
    f.push_back(absl::StrCat("teachers: ", absl::StrJoin(r.teachers(), ", ")));
  }
  if (!r.models().empty()) {
    f.push_back(absl::StrCat("models: ", absl::StrJoin(r.models(), ", ")));
  }
  if (r.min_chars() > 0) f.push_back(absl::StrCat("min chars ", r.min_chars()));
  if (r.max_chars() > 0) f.push_back(absl::StrCat("max chars ", r.max_chars()));
  if (r.min_tokens() > 0) {
    f.push_back(absl::StrCat("min tokens ", r.min_tokens()));
  }
  if (r.max_tokens() > 0) {
    f.push_back(absl::StrCat("max tokens ", r.max_tokens()));
  }
  for (const v1::MetadataMatch& m : r.metadata()) {
    f.push_back(absl::StrCat("metadata ", Cell(m.key()), "=", Cell(m.value())));
  }
  f.push_back(r.near_dup_threshold() > 0
                  ? absl::StrCat("near-duplicates left out at Jaccard >= ",
                                 r.near_dup_threshold())
                  : "near-duplicates kept");
  return f;
}

}  // namespace

absl::Status CheckCardOptions(const v1::DatasetCardOptions& options,
                              const std::vector<std::string>& split_names) {
  if (!options.license().empty() && !IsHubId(options.license())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--license '", options.license(),
        "': use a Hugging Face license id (e.g. apache-2.0, cc-by-4.0, mit, "
        "other)"));
  }
  for (const std::string& language : options.languages()) {
    if (!IsHubId(language)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--language '", language, "': use an ISO 639-1 code (e.g. en)"));
    }
  }
  for (const std::string& name : split_names) {
    if (!IsHubSplitName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--card: split name '", name,
          "' is not one Hugging Face reads (letters, digits and '_')"));
    }
  }
  if (options.data_files_size() != static_cast<int>(split_names.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("--card: ", options.data_files_size(), " data files for ",
                     split_names.size(), " splits"));
  }
  return absl::OkStatus();
}

void DatasetCard::AddJob(const v1::Job& job) { jobs_.push_back(job); }

void DatasetCard::AddRecord(const v1::ExportRecord& record) {
  ++records_;
  if (record.job_id() != last_job_ ||
      record.task().prompt_seq() != last_prompt_seq_) {
    ++prompts_;  // records come prompt by prompt
    last_job_ = record.job_id();
    last_prompt_seq_ = record.task().prompt_seq();
  }
  if (record.task().state() != v1::TASK_STATE_DONE) {
    ++failed_;
    return;
  }
  switch (record.task().verify_state()) {
    case v1::VERIFY_STATE_VERIFIED: ++verified_; break;
    case v1::VERIFY_STATE_REJECTED: ++rejected_; break;
    case v1::VERIFY_STATE_NO_REFERENCE: ++unverifiable_; break;
    default: break;
  }
  const v1::Answer& a = record.answer();
  prompt_tokens_ += a.usage().prompt_tokens();
  completion_tokens_ += a.usage().completion_tokens();
  reasoning_tokens_ += a.usage().reasoning_tokens();
  cost_usd_ += a.cost_usd();
  if (a.received_ms() > 0) {
    if (first_received_ms_ == 0 || a.received_ms() < first_received_ms_) {
      first_received_ms_ = a.received_ms();
    }
    last_received_ms_ = std::max(last_received_ms_, a.received_ms());
  }
  for (Source& s : sources_) {
    if (s.teacher == a.teacher() && s.model == a.model()) {
      ++s.answers;
      return;
    }
  }
  sources_.push_back(Source{a.teacher(), a.model(), 1});
}

std::string DatasetCard::Render(const v1::DatasetCardOptions& options,
                                const Export& e) const {
  std::string out = "---\n";
  if (!options.pretty_name().empty()) {
    absl::StrAppend(&out, "pretty_name: ", Yaml(options.pretty_name()), "\n");
  }
  // Quoted: YAML 1.1 readers take a bare `no` (Norwegian) for false.
  absl::StrAppend(&out, "license: ",
                  Yaml(options.license().empty() ? "other" : options.license()),
                  "\n");
  if (!options.languages().empty()) {
    out += "language:\n";
    for (const std::string& l : options.languages()) {
      absl::StrAppend(&out, "- ", Yaml(l), "\n");
    }
  }
  absl::StrAppend(&out,
                  "task_categories:\n- text-generation\n"
                  "tags:\n- distillation\n- synthetic\n"
                  "size_categories:\n- ",
                  Yaml(SizeCategory(records_)), "\n");
  out += "configs:\n- config_name: default\n  data_files:\n";
  for (size_t i = 0; i < e.part_names.size(); ++i) {
    absl::StrAppend(&out, "  - split: ", Yaml(e.part_names[i]), "\n    path: ",
                    Yaml(i < static_cast<size_t>(options.data_files_size())
                             ? options.data_files(static_cast<int>(i))
                             : std::string()),
                    "\n");
  }
  out += "---\n\n";

  absl::StrAppend(&out, "# ",
                  options.pretty_name().empty() ? "Distilled dataset"
                                                : Cell(options.pretty_name()),
                  "\n\n");
  absl::StrAppend(
      &out,
      "Answers of teacher models, harvested with Distillery for model "
      "distillation, one JSON object a line in the `",
      e.format, "` format (reasoning traces: ", e.reasoning, ").\n\n");

  out +=
      "## Teachers\n\n| Teacher profile | Model | Answers |\n|---|---|---|\n";
  for (const Source& s : sources_) {
    absl::StrAppend(&out, "| ", Cell(s.teacher), " | ", Cell(s.model), " | ",
                    s.answers, " |\n");
  }
  absl::StrAppend(&out, "\nAnswers received from ", Utc(first_received_ms_),
                  " to ", Utc(last_received_ms_), ".\n\n");

  out += "## Harvest\n\n";
  for (const v1::Job& job : jobs_) {
    absl::StrAppend(&out, "- `", Cell(job.id()), "`",
                    job.spec().source().empty()
                        ? std::string()
                        : absl::StrCat(" from ", Cell(job.spec().source())),
                    ": teacher ", Cell(job.spec().teacher()), ", model ",
                    Cell(job.spec().model()), "; ", job.counters().prompts(),
                    " prompts; ", Params(job.spec()), "; submitted ",
                    Utc(job.created_ms()),
                    job.finished_ms() > 0
                        ? absl::StrCat(", finished ", Utc(job.finished_ms()))
                        : std::string(", still running when exported"),
                    ".\n");
  }

  out += "\n## Counts\n\n| | |\n|---|---|\n";
  absl::StrAppend(&out, "| Prompts | ", prompts_, " |\n");
  absl::StrAppend(&out, "| Records | ", records_, " |\n");
  for (size_t i = 0; i < e.part_names.size() && e.part_names.size() > 1; ++i) {
    absl::StrAppend(&out, "| Split `", e.part_names[i], "` | ",
                    i < e.part_records.size() ? e.part_records[i] : 0, " |\n");
  }
  if (failed_ > 0) {
    absl::StrAppend(&out, "| Dead-lettered tasks (no answer) | ", failed_,
                    " |\n");
  }
  absl::StrAppend(&out, "| Exact duplicates left out | ", e.duplicates_left_out,
                  " |\n");
  absl::StrAppend(&out, "| Near-duplicates left out | ",
                  e.near_duplicates_left_out, " |\n");
  if (verified_ + rejected_ + unverifiable_ == 0) {
    out += "| Verified answers | not checked |\n";
  } else {
    absl::StrAppend(&out, "| Verified answers | ", verified_, " |\n");
    absl::StrAppend(&out, "| Answers found wrong | ", rejected_, " |\n");
    if (unverifiable_ > 0) {
      absl::StrAppend(&out, "| Answers without a reference | ", unverifiable_,
                      " |\n");
    }
  }
  absl::StrAppend(&out, "| Prompt tokens | ", prompt_tokens_, " |\n");
  absl::StrAppend(&out, "| Completion tokens | ", completion_tokens_, " |\n");
  absl::StrAppend(&out, "| of which reasoning | ", reasoning_tokens_, " |\n");
  absl::StrAppend(&out, "| Cost (USD, from the profiles' prices) | ",
                  absl::StrFormat("%.4f", cost_usd_), " |\n");

  out += "\n## Export filters\n\n";
  for (const std::string& f : Filters(e.request)) {
    absl::StrAppend(&out, "- ", f, "\n");
  }

  out +=
      "\n## Terms of use\n\n"
      "These answers were written by the teacher models named above. Each "
      "provider's terms of use apply to its model's outputs, including any "
      "limits on using them to train other models; check them before you "
      "train on or publish this dataset.\n";
  return out;
}

}  // namespace distillery
