// AnthropicBatchApi (batch_apis.h): Message Batches at
// {base_url}/v1/messages/batches, base_url the host as for Messages.
#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/json_depth.h"
#include "common/base/status_macros.h"
#include "common/teacher/batch_apis.h"
#include "common/teacher/batch_http.h"
#include "common/teacher/text_util.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr char kBatchWhat[] = "Anthropic message batch";

absl::StatusOr<BatchPhase> PhaseOf(std::string_view status) {
  if (status == "in_progress") return BatchPhase::kRunning;
  if (status == "canceling") return BatchPhase::kCancelling;
  if (status == "ended") return BatchPhase::kEnded;
  return absl::InternalError(
      absl::StrCat(kBatchWhat, ": unknown processing_status \"",
                   text::Absl(text::Printable(status, 60)), "\""));
}

absl::StatusOr<int64_t> ParseRfc3339Seconds(const std::string& value) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, value, &time, &error)) {
    return absl::InternalError(absl::StrCat(
        kBatchWhat, ": created_at \"", text::Absl(text::Printable(value, 60)),
        "\" is not an RFC 3339 time"));
  }
  return absl::ToUnixSeconds(time);
}

absl::StatusOr<BatchInfo> ParseBatch(const json& batch) {
  BatchInfo info;
  ASSIGN_OR_RETURN(info.id, batch_json::String(batch, "id", kBatchWhat, true));
  ASSIGN_OR_RETURN(
      info.provider_status,
      batch_json::String(batch, "processing_status", kBatchWhat, true));
  ASSIGN_OR_RETURN(info.phase, PhaseOf(info.provider_status));
  ASSIGN_OR_RETURN(std::string created,
                   batch_json::String(batch, "created_at", kBatchWhat, true));
  ASSIGN_OR_RETURN(info.created_at_s, ParseRfc3339Seconds(created));
  ASSIGN_OR_RETURN(const json* counts,
                   batch_json::Object(batch, "request_counts", kBatchWhat));
  if (counts != nullptr) {
    const std::string what = absl::StrCat(kBatchWhat, " request_counts");
    ASSIGN_OR_RETURN(int64_t processing,
                     batch_json::Int(*counts, "processing", what, false));
    ASSIGN_OR_RETURN(info.succeeded,
                     batch_json::Int(*counts, "succeeded", what, false));
    ASSIGN_OR_RETURN(info.errored,
                     batch_json::Int(*counts, "errored", what, false));
    ASSIGN_OR_RETURN(int64_t canceled,
                     batch_json::Int(*counts, "canceled", what, false));
    ASSIGN_OR_RETURN(int64_t expired,
                     batch_json::Int(*counts, "expired", what, false));
    info.not_run = canceled + expired;
    info.total = processing + info.succeeded + info.errored + info.not_run;
  }
  ASSIGN_OR_RETURN(info.results_url,
                   batch_json::String(batch, "results_url", kBatchWhat, false));
  return info;
}

absl::StatusOr<BatchInfo> ParseBatchBody(std::string_view body) {
  ASSIGN_OR_RETURN(json batch, batch_json::ParseObject(body, kBatchWhat));
  return ParseBatch(batch);
}

// The HTTP status an online call failing with error `type` would have had,
// so that a batch error is classified as that online failure.
int StatusForErrorType(std::string_view type) {
  if (type == "invalid_request_error") return 400;
  if (type == "authentication_error") return 401;
  if (type == "billing_error") return 402;
  if (type == "permission_error") return 403;
  if (type == "not_found_error") return 404;
  if (type == "request_too_large") return 413;
  if (type == "rate_limit_error") return 429;
  if (type == "timeout_error") return 504;
  if (type == "overloaded_error") return 529;
  return 500;  // api_error, and any type this code does not know: retryable
}

// The origin ("scheme://host[:port]") of an absolute URL, or "".
std::string_view OriginOf(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  const size_t path = url.find_first_of("/?#", scheme + 3);
  return url.substr(0, path);
}

// One results line, or nullopt when it cannot be read.
std::optional<BatchItemResult> ParseResultLine(const BatchHttp& http,
                                               std::string_view line) {
  if (!CheckJsonDepth(line).ok()) return std::nullopt;
  // Ordered, so that the answer's raw_body keeps the teacher's key order.
  ordered_json doc =
      ordered_json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  auto id = doc.find("custom_id");
  auto result = doc.find("result");
  if (id == doc.end() || !id->is_string() || result == doc.end() ||
      !result->is_object()) {
    return std::nullopt;
  }
  auto type = result->find("type");
  if (type == result->end() || !type->is_string()) return std::nullopt;
  BatchItemResult item;
  item.custom_id = id->get<std::string>();
  const std::string kind = type->get<std::string>();
  if (kind == "succeeded") {
    auto message = result->find("message");
    if (message == result->end() || !message->is_object()) return std::nullopt;
    item.result = http.Answer(200, message->dump());
    return item;
  }
  if (kind == "errored") {
    auto error = result->find("error");
    if (error == result->end() || !error->is_object()) return std::nullopt;
    // {"type":"error","error":{"type","message"}}, or the inner object alone.
    const ordered_json* inner = &*error;
    if (auto it = error->find("error"); it != error->end() && it->is_object()) {
      inner = &*it;
    }
    std::string error_type;
    if (auto it = inner->find("type"); it != inner->end() && it->is_string()) {
      error_type = it->get<std::string>();
    }
    const std::string body = inner == &*error
                                 ? ordered_json{{"error", *inner}}.dump()
                                 : error->dump();
    item.result = http.Answer(StatusForErrorType(error_type), body);
    return item;
  }
  if (kind == "expired" || kind == "canceled") {
    item.not_run = true;
    item.result =
        NotRunResult(kind == "expired" ? "the batch expired first"
                                       : "the batch was canceled first");
    return item;
  }
  return std::nullopt;
}

}  // namespace

AnthropicBatchApi::AnthropicBatchApi(HttpClient& http,
                                     std::shared_ptr<const WireFormat> format,
                                     HttpTeacherOptions options)
    : http_(std::make_unique<const BatchHttp>(
          "Anthropic", http, std::move(format), std::move(options))) {}

AnthropicBatchApi::~AnthropicBatchApi() = default;

BatchLimits AnthropicBatchApi::DefaultLimits() const {
  return BatchLimits{100'000, 256'000'000};
}

std::string AnthropicBatchApi::BatchesUrl() const {
  // As MessagesUrl: a base_url may already end in /v1 or /v1/messages.
  std::string_view root = http_->base_url();
  for (std::string_view suffix : {"/v1/messages", "/v1"}) {
    if (root.ends_with(suffix)) {
      root.remove_suffix(suffix.size());
      break;
    }
  }
  return absl::StrCat(text::Absl(root), "/v1/messages/batches");
}

absl::StatusOr<std::string> AnthropicBatchApi::BuildLine(
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
                      R"(","params":)", body, "}");
}

absl::StatusOr<BatchInfo> AnthropicBatchApi::Create(
    const std::vector<std::string>& lines, std::string_view /*model*/,
    std::string_view /*tag*/) {
  if (!http_->options_status().ok()) return http_->options_status();
  if (lines.empty()) {
    return absl::InvalidArgumentError("a batch needs at least one request");
  }
  size_t size = 16;
  for (const std::string& line : lines) size += line.size() + 1;
  std::string body;
  body.reserve(size);
  body += R"({"requests":[)";
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) body += ',';
    body += lines[i];
  }
  body += "]}";
  BatchCall call;
  call.method = "POST";
  call.url = BatchesUrl();
  call.content_type = "application/json";
  call.body = std::move(body);
  call.transfer = BatchTransfer::kUpload;
  call.what = "creating the batch";
  call.creating = true;
  ASSIGN_OR_RETURN(std::string created, http_->Send(std::move(call)));
  return ParseBatchBody(created);
}

absl::StatusOr<BatchInfo> AnthropicBatchApi::Get(std::string_view batch_id) {
  if (!IsSafeBatchId(batch_id)) {
    return absl::InvalidArgumentError("not a batch id");
  }
  BatchCall call;
  call.url = absl::StrCat(BatchesUrl(), "/", text::Absl(batch_id));
  call.what = absl::StrCat("reading batch ", text::Absl(batch_id));
  ASSIGN_OR_RETURN(std::string body, http_->Send(std::move(call)));
  return ParseBatchBody(body);
}

absl::StatusOr<std::optional<BatchInfo>> AnthropicBatchApi::Find(
    std::string_view /*tag*/, int64_t created_after_s, int64_t request_count,
    const std::vector<std::string>& exclude) {
  // A batch within the window that cannot be read might be the one sought:
  // "none" would then make the caller create (and pay for) it again, so
  // that error is returned instead.
  absl::Status unreadable;
  std::string after;
  for (int page = 0; page < kMaxBatchListPages; ++page) {
    BatchCall call;
    call.url = absl::StrCat(BatchesUrl(), "?limit=", kBatchListPageSize);
    if (!after.empty()) absl::StrAppend(&call.url, "&after_id=", after);
    call.what = "listing batches";
    ASSIGN_OR_RETURN(std::string body, http_->Send(std::move(call)));
    ASSIGN_OR_RETURN(json list,
                     batch_json::ParseObject(body, "Anthropic batch list"));
    auto data = list.find("data");
    if (data == list.end() || !data->is_array()) {
      return absl::InternalError(
          "Anthropic batch list: field \"data\" is not a list");
    }
    bool older_seen = false;
    for (const json& item : *data) {
      absl::StatusOr<BatchInfo> info =
          item.is_object() ? ParseBatch(item)
                           : absl::InternalError(absl::StrCat(
                                 kBatchWhat, " in a list is not an object"));
      if (!info.ok()) {
        if (unreadable.ok()) unreadable = info.status();
        continue;
      }
      if (info->created_at_s < created_after_s) {
        older_seen = true;
        continue;
      }
      if (info->total != request_count ||
          std::find(exclude.begin(), exclude.end(), info->id) !=
              exclude.end()) {
        continue;
      }
      return std::optional<BatchInfo>(*std::move(info));
    }
    auto has_more = list.find("has_more");
    if (older_seen || data->empty() || has_more == list.end() ||
        !has_more->is_boolean() || !has_more->get<bool>()) {
      if (!unreadable.ok()) return unreadable;
      return std::optional<BatchInfo>();
    }
    std::string next;
    if (auto it = list.find("last_id"); it != list.end() && it->is_string()) {
      next = it->get<std::string>();
    } else if (data->back().is_object()) {
      next =
          batch_json::String(data->back(), "id", kBatchWhat, true).value_or("");
    }
    if (!IsSafeBatchId(next) || next == after) {
      return absl::InternalError(
          "Anthropic batch list: has_more without a usable last_id");
    }
    after = std::move(next);
  }
  return absl::InternalError(
      absl::StrCat("Anthropic batch list: more than ", kMaxBatchListPages,
                   " pages of batches since the time asked"));
}

absl::Status AnthropicBatchApi::Cancel(std::string_view batch_id) {
  if (!IsSafeBatchId(batch_id)) {
    return absl::InvalidArgumentError("not a batch id");
  }
  BatchCall call;
  call.method = "POST";
  call.url = absl::StrCat(BatchesUrl(), "/", text::Absl(batch_id), "/cancel");
  call.what = absl::StrCat("cancelling batch ", text::Absl(batch_id));
  absl::StatusOr<std::string> body = http_->Send(std::move(call));
  if (body.ok()) return absl::OkStatus();
  // A batch that has ended cannot be canceled: the outcome asked for.
  if (body.status().code() == absl::StatusCode::kInvalidArgument ||
      body.status().code() == absl::StatusCode::kUnavailable) {
    absl::StatusOr<BatchInfo> now = Get(batch_id);
    if (now.ok() && now->phase != BatchPhase::kRunning) {
      return absl::OkStatus();
    }
  }
  return body.status();
}

absl::StatusOr<std::vector<BatchItemResult>> AnthropicBatchApi::Results(
    const BatchInfo& batch) {
  if (!http_->options_status().ok()) return http_->options_status();
  if (batch.results_url.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Anthropic batch ", batch.id, " has no results yet"));
  }
  const std::string_view url = batch.results_url;
  if (!text::StartsWithIgnoreCase(url, "http://") &&
      !text::StartsWithIgnoreCase(url, "https://")) {
    return absl::InternalError(
        absl::StrCat(kBatchWhat, ": results_url is not an http(s) URL"));
  }
  BatchCall call;
  call.url = batch.results_url;
  call.transfer = BatchTransfer::kDownload;
  call.what = absl::StrCat("downloading the results of batch ", batch.id);
  // The key goes only to the host the profile names: a results_url
  // elsewhere is fetched without it.
  call.with_auth =
      text::EqualsIgnoreCase(OriginOf(url), OriginOf(http_->base_url()));
  ASSIGN_OR_RETURN(std::string body, http_->Send(std::move(call)));
  std::vector<BatchItemResult> results;
  try {
    ForEachLine(body, [&](std::string_view line) {
      if (std::optional<BatchItemResult> item = ParseResultLine(*http_, line)) {
        results.push_back(*std::move(item));
      }
    });
  } catch (const std::exception& e) {
    return http_->Error(
        absl::StatusCode::kInternal,
        absl::StrCat("reading results of batch ", batch.id, ": ", e.what()));
  }
  return results;
}

}  // namespace distillery
