// OpenAiBatchApi (batch_apis.h): OpenAI's Batch API over {base_url}/files
// and {base_url}/batches, base_url including the version (.../v1) as for
// Chat Completions.
#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/json_depth.h"
#include "common/base/status_macros.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/batch_http.h"
#include "common/teacher/http_failure.h"
#include "common/teacher/multipart.h"
#include "common/teacher/text_util.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr char kEndpoint[] = "/v1/chat/completions";
constexpr char kTagKey[] = "distillery_batch";
constexpr size_t kMaxTagBytes = 512;  // OpenAI's limit on a metadata value
constexpr char kBatchWhat[] = "OpenAI batch object";
constexpr size_t kMaxFailureText = 1000;

// {base_url} without a trailing /chat/completions (which ChatCompletionsUrl
// also tolerates), so /files and /batches sit beside it.
std::string ApiRoot(const std::string& base_url) {
  std::string_view root = base_url;
  constexpr std::string_view kChat = "/chat/completions";
  if (root.ends_with(kChat)) root.remove_suffix(kChat.size());
  return std::string(root);
}

// The tag as a file name: anything but [A-Za-z0-9._-] as '_'.
std::string FileNameFor(std::string_view tag) {
  std::string name = "distillery-";
  for (char c : tag.substr(0, 100)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    name.push_back(ok ? c : '_');
  }
  return name + ".jsonl";
}

absl::StatusOr<BatchPhase> PhaseOf(std::string_view status) {
  if (status == "validating" || status == "in_progress" ||
      status == "finalizing") {
    return BatchPhase::kRunning;
  }
  if (status == "cancelling") return BatchPhase::kCancelling;
  if (status == "completed" || status == "expired" || status == "cancelled") {
    return BatchPhase::kEnded;
  }
  if (status == "failed") return BatchPhase::kFailed;
  return absl::InternalError(
      absl::StrCat(kBatchWhat, ": unknown status \"",
                   text::Absl(text::Printable(status, 60)), "\""));
}

// The validation errors of a failed batch: their text, and whether one is
// the enqueued-token limit.
absl::Status ReadErrors(const json& batch, BatchInfo* info) {
  ASSIGN_OR_RETURN(const json* errors,
                   batch_json::Object(batch, "errors", kBatchWhat));
  std::string text;
  if (errors != nullptr) {
    auto data = errors->find("data");
    if (data != errors->end() && !data->is_null()) {
      if (!data->is_array()) {
        return absl::InternalError(
            absl::StrCat(kBatchWhat, ": errors.data is not a list"));
      }
      for (const json& error : *data) {
        if (!error.is_object()) continue;
        const std::string what = absl::StrCat(kBatchWhat, " errors.data[]");
        ASSIGN_OR_RETURN(std::string code,
                         batch_json::String(error, "code", what, false));
        ASSIGN_OR_RETURN(std::string message,
                         batch_json::String(error, "message", what, false));
        ASSIGN_OR_RETURN(int64_t line,
                         batch_json::Int(error, "line", what, false));
        if (code == "token_limit_exceeded") info->token_limit = true;
        if (!text.empty()) text += "; ";
        text += code.empty() ? "error" : code;
        if (!message.empty()) absl::StrAppend(&text, ": ", message);
        if (line > 0) absl::StrAppend(&text, " (line ", line, ")");
      }
    }
  }
  info->failure = text.empty() ? "failed (no errors given)"
                               : text::Printable(text, kMaxFailureText);
  return absl::OkStatus();
}

absl::StatusOr<BatchInfo> ParseBatch(const json& batch) {
  BatchInfo info;
  ASSIGN_OR_RETURN(info.id, batch_json::String(batch, "id", kBatchWhat, true));
  ASSIGN_OR_RETURN(info.provider_status,
                   batch_json::String(batch, "status", kBatchWhat, true));
  ASSIGN_OR_RETURN(info.phase, PhaseOf(info.provider_status));
  ASSIGN_OR_RETURN(info.created_at_s,
                   batch_json::Int(batch, "created_at", kBatchWhat, true));
  ASSIGN_OR_RETURN(const json* counts,
                   batch_json::Object(batch, "request_counts", kBatchWhat));
  if (counts != nullptr) {
    const std::string what = absl::StrCat(kBatchWhat, " request_counts");
    ASSIGN_OR_RETURN(info.total,
                     batch_json::Int(*counts, "total", what, false));
    ASSIGN_OR_RETURN(info.succeeded,
                     batch_json::Int(*counts, "completed", what, false));
    ASSIGN_OR_RETURN(info.errored,
                     batch_json::Int(*counts, "failed", what, false));
  }
  ASSIGN_OR_RETURN(
      info.input_file_id,
      batch_json::String(batch, "input_file_id", kBatchWhat, false));
  ASSIGN_OR_RETURN(
      info.output_file_id,
      batch_json::String(batch, "output_file_id", kBatchWhat, false));
  ASSIGN_OR_RETURN(
      info.error_file_id,
      batch_json::String(batch, "error_file_id", kBatchWhat, false));
  ASSIGN_OR_RETURN(const json* metadata,
                   batch_json::Object(batch, "metadata", kBatchWhat));
  if (metadata != nullptr) {
    ASSIGN_OR_RETURN(
        info.tag,
        batch_json::String(*metadata, "distillery_batch",
                           absl::StrCat(kBatchWhat, " metadata"), false));
  }
  if (info.phase == BatchPhase::kFailed) {
    RETURN_IF_ERROR(ReadErrors(batch, &info));
  }
  return info;
}

absl::StatusOr<BatchInfo> ParseBatchBody(std::string_view body) {
  ASSIGN_OR_RETURN(json batch, batch_json::ParseObject(body, kBatchWhat));
  return ParseBatch(batch);
}

// One line of an output or error file, or nullopt when it cannot be read.
std::optional<BatchItemResult> ParseResultLine(const BatchHttp& http,
                                               std::string_view line) {
  if (!CheckJsonDepth(line).ok()) return std::nullopt;
  // Ordered, so that the answer's raw_body keeps the teacher's key order.
  ordered_json doc =
      ordered_json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  auto id = doc.find("custom_id");
  if (id == doc.end() || !id->is_string()) return std::nullopt;
  BatchItemResult item;
  item.custom_id = id->get<std::string>();

  auto response = doc.find("response");
  if (response != doc.end() && response->is_object()) {
    auto status = response->find("status_code");
    if (status == response->end() || !status->is_number_integer()) {
      return std::nullopt;
    }
    auto body = response->find("body");
    std::string text;
    if (body != response->end()) {
      text = body->is_string() ? body->get<std::string>() : body->dump();
    }
    item.result = http.Answer(status->get<int>(), std::move(text));
    return item;
  }
  auto error = doc.find("error");
  if (error == doc.end() || !error->is_object()) return std::nullopt;
  TeacherErrorBody parsed;
  parsed.found = true;
  if (auto it = error->find("code"); it != error->end() && it->is_string()) {
    parsed.code = it->get<std::string>();
  }
  if (auto it = error->find("message"); it != error->end() && it->is_string()) {
    parsed.message = it->get<std::string>();
  }
  if (parsed.code == "batch_expired" || parsed.code == "batch_cancelled") {
    item.not_run = true;
    item.result = NotRunResult(parsed.code == "batch_expired"
                                   ? "the batch expired first"
                                   : "the batch was cancelled first");
    return item;
  }
  // An error with no response: classified as an error object inside a 200
  // is (quota and rate-limit codes known, else retryable).
  item.result = TeacherErrorResult(200, parsed, "");
  item.result.http_status = 0;
  item.result.status = absl::Status(
      item.result.status.code(),
      http.Redact(absl::StrCat(
          "batch request failed (code ",
          text::Absl(text::Printable(parsed.code, 100)),
          "): ", text::Absl(text::Printable(parsed.message, 1000)))));
  return item;
}

}  // namespace

OpenAiBatchApi::OpenAiBatchApi(HttpClient& http,
                               std::shared_ptr<const WireFormat> format,
                               HttpTeacherOptions options)
    : http_(std::make_unique<const BatchHttp>("OpenAI", http, std::move(format),
                                              std::move(options))) {}

OpenAiBatchApi::~OpenAiBatchApi() = default;

BatchLimits OpenAiBatchApi::DefaultLimits() const {
  return BatchLimits{50'000, 200'000'000};
}

absl::StatusOr<std::string> OpenAiBatchApi::BuildLine(
    std::string_view custom_id, const TeacherRequest& request) const {
  if (!http_->options_status().ok()) return http_->options_status();
  if (!ValidCustomId(custom_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("custom_id \"", text::Absl(text::Printable(custom_id, 80)),
                     "\" is not ^[a-zA-Z0-9_-]{1,64}$"));
  }
  ASSIGN_OR_RETURN(std::string body, http_->format().BuildBody(request));
  if (body.find('\n') != std::string::npos) {
    return absl::InternalError("the request body spans lines");
  }
  return absl::StrCat(R"({"custom_id":")", text::Absl(custom_id),
                      R"(","method":"POST","url":")", kEndpoint, R"(","body":)",
                      body, "}");
}

absl::StatusOr<BatchInfo> OpenAiBatchApi::Create(
    const std::vector<std::string>& lines, std::string_view /*model*/,
    std::string_view tag) {
  if (!http_->options_status().ok()) return http_->options_status();
  if (lines.empty()) {
    return absl::InvalidArgumentError("a batch needs at least one request");
  }
  if (tag.empty() || tag.size() > kMaxTagBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch tag must be 1 to ", kMaxTagBytes, " bytes"));
  }
  ordered_json create = {
      {"input_file_id", ""},
      {"endpoint", kEndpoint},
      {"completion_window", "24h"},
      {"metadata", {{kTagKey, std::string(tag)}}},
  };
  try {
    create.dump();  // throws for a tag that is not UTF-8: before uploading
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch tag cannot be sent as JSON: ", e.what()));
  }

  size_t size = 0;
  for (const std::string& line : lines) size += line.size() + 1;
  std::string file;
  file.reserve(size);
  for (const std::string& line : lines) {
    if (line.find('\n') != std::string::npos) {
      return absl::InvalidArgumentError("a batch line holds a line break");
    }
    file += line;
    file += '\n';
  }
  MultipartBody form = BuildMultipartFormData({
      {"purpose", "", "", "batch"},
      {"file", FileNameFor(tag), "application/jsonl", std::move(file)},
  });
  const std::string root = ApiRoot(http_->base_url());
  BatchCall upload;
  upload.method = "POST";
  upload.url = root + "/files";
  upload.content_type = std::move(form.content_type);
  upload.body = std::move(form.body);
  upload.transfer = BatchTransfer::kUpload;
  upload.what = "uploading the batch file";
  upload.creating = true;
  ASSIGN_OR_RETURN(std::string uploaded, http_->Send(std::move(upload)));
  ASSIGN_OR_RETURN(json file_object,
                   batch_json::ParseObject(uploaded, "OpenAI file object"));
  ASSIGN_OR_RETURN(
      std::string file_id,
      batch_json::String(file_object, "id", "OpenAI file object", true));

  create["input_file_id"] = file_id;
  BatchCall call;
  call.method = "POST";
  call.url = root + "/batches";
  call.content_type = "application/json";
  call.body = create.dump();
  call.what = absl::StrCat("creating the batch of file ", file_id);
  call.creating = true;
  ASSIGN_OR_RETURN(std::string created, http_->Send(std::move(call)));
  return ParseBatchBody(created);
}

absl::StatusOr<BatchInfo> OpenAiBatchApi::Get(std::string_view batch_id) {
  if (!IsSafeBatchId(batch_id)) {
    return absl::InvalidArgumentError("not a batch id");
  }
  BatchCall call;
  call.url = absl::StrCat(ApiRoot(http_->base_url()), "/batches/",
                          text::Absl(batch_id));
  call.what = absl::StrCat("reading batch ", text::Absl(batch_id));
  ASSIGN_OR_RETURN(std::string body, http_->Send(std::move(call)));
  return ParseBatchBody(body);
}

absl::StatusOr<std::optional<BatchInfo>> OpenAiBatchApi::Find(
    std::string_view tag, int64_t created_after_s, int64_t /*request_count*/,
    const std::vector<std::string>& exclude) {
  const std::string root = ApiRoot(http_->base_url());
  std::string after;
  for (int page = 0; page < kMaxBatchListPages; ++page) {
    BatchCall call;
    call.url = absl::StrCat(root, "/batches?limit=", kBatchListPageSize);
    if (!after.empty()) absl::StrAppend(&call.url, "&after=", after);
    call.what = "listing batches";
    ASSIGN_OR_RETURN(std::string body, http_->Send(std::move(call)));
    ASSIGN_OR_RETURN(json list,
                     batch_json::ParseObject(body, "OpenAI batch list"));
    auto data = list.find("data");
    if (data == list.end() || !data->is_array()) {
      return absl::InternalError(
          "OpenAI batch list: field \"data\" is not a list");
    }
    bool older_seen = false;
    for (const json& item : *data) {
      if (!item.is_object()) continue;
      // Only the batch with our tag is read strictly: another client's
      // batch in a shape this code does not know must not hide ours.
      absl::StatusOr<int64_t> created =
          batch_json::Int(item, "created_at", kBatchWhat, true);
      if (created.ok() && *created < created_after_s) {
        older_seen = true;
        continue;
      }
      const json* metadata = nullptr;
      if (auto it = item.find("metadata");
          it != item.end() && it->is_object()) {
        metadata = &*it;
      }
      if (metadata == nullptr) continue;
      auto value = metadata->find(kTagKey);
      if (value == metadata->end() || !value->is_string() ||
          value->get<std::string>() != tag) {
        continue;
      }
      ASSIGN_OR_RETURN(BatchInfo info, ParseBatch(item));
      if (info.created_at_s < created_after_s) continue;
      if (std::find(exclude.begin(), exclude.end(), info.id) != exclude.end()) {
        continue;
      }
      return std::optional<BatchInfo>(std::move(info));
    }
    auto has_more = list.find("has_more");
    if (older_seen || data->empty() || has_more == list.end() ||
        !has_more->is_boolean() || !has_more->get<bool>()) {
      return std::optional<BatchInfo>();
    }
    // The next page starts after the last batch of this one.
    std::string next;
    if (auto it = list.find("last_id"); it != list.end() && it->is_string()) {
      next = it->get<std::string>();
    } else if (data->back().is_object()) {
      next =
          batch_json::String(data->back(), "id", kBatchWhat, true).value_or("");
    }
    if (!IsSafeBatchId(next) || next == after) {
      return absl::InternalError(
          "OpenAI batch list: has_more without a usable last_id");
    }
    after = std::move(next);
  }
  return absl::InternalError(
      absl::StrCat("OpenAI batch list: more than ", kMaxBatchListPages,
                   " pages of batches since the time asked"));
}

absl::Status OpenAiBatchApi::Cancel(std::string_view batch_id) {
  if (!IsSafeBatchId(batch_id)) {
    return absl::InvalidArgumentError("not a batch id");
  }
  BatchCall call;
  call.method = "POST";
  call.url = absl::StrCat(ApiRoot(http_->base_url()), "/batches/",
                          text::Absl(batch_id), "/cancel");
  call.what = absl::StrCat("cancelling batch ", text::Absl(batch_id));
  absl::StatusOr<std::string> body = http_->Send(std::move(call));
  if (body.ok()) return absl::OkStatus();
  // OpenAI refuses to cancel a batch that has ended (400, or 409): that is
  // the outcome asked for.
  if (body.status().code() == absl::StatusCode::kInvalidArgument ||
      body.status().code() == absl::StatusCode::kUnavailable) {
    absl::StatusOr<BatchInfo> now = Get(batch_id);
    if (now.ok() && now->phase != BatchPhase::kRunning) {
      return absl::OkStatus();
    }
  }
  return body.status();
}

absl::StatusOr<std::string> OpenAiBatchApi::Download(std::string_view file_id) {
  if (!IsSafeBatchId(file_id)) {
    return absl::InternalError("OpenAI batch object: not a file id");
  }
  BatchCall call;
  call.url = absl::StrCat(ApiRoot(http_->base_url()), "/files/",
                          text::Absl(file_id), "/content");
  call.transfer = BatchTransfer::kDownload;
  call.what = absl::StrCat("downloading file ", text::Absl(file_id));
  return http_->Send(std::move(call));
}

absl::StatusOr<std::vector<BatchItemResult>> OpenAiBatchApi::Results(
    const BatchInfo& batch) {
  if (!http_->options_status().ok()) return http_->options_status();
  std::vector<BatchItemResult> results;
  for (const std::string* file_id :
       {&batch.output_file_id, &batch.error_file_id}) {
    if (file_id->empty()) continue;
    ASSIGN_OR_RETURN(std::string body, Download(*file_id));
    try {
      ForEachLine(body, [&](std::string_view line) {
        if (std::optional<BatchItemResult> item =
                ParseResultLine(*http_, line)) {
          results.push_back(*std::move(item));
        }
      });
    } catch (const std::exception& e) {
      return http_->Error(
          absl::StatusCode::kInternal,
          absl::StrCat("reading file ", *file_id, ": ", e.what()));
    }
  }
  return results;
}

}  // namespace distillery
