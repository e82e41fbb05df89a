#include "services/teacher_sim/sim_batches.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/teacher_sim/json_spans.h"
#include "services/teacher_sim/json_writer.h"
#include "services/teacher_sim/response_render.h"
#include "services/teacher_sim/sim_ids.h"

namespace distillery::teacher_sim {
namespace {

constexpr std::string_view kFilesPath = "/v1/files";
constexpr std::string_view kOpenAiBatchesPath = "/v1/batches";
constexpr std::string_view kAnthropicBatchesPath = "/v1/messages/batches";
constexpr std::string_view kChatEndpoint = "/v1/chat/completions";
constexpr int64_t kMaxListLimit = 100;

int64_t Ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

SimResponse Json(int status, std::string body) {
  SimResponse r;
  r.status = status;
  r.headers.emplace_back("content-type", "application/json");
  r.body = std::move(body);
  return r;
}

std::string OpenAiError(std::string_view message, std::string_view code) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject();
  w.Key("message").String(message);
  w.Key("type").String("invalid_request_error");
  w.Key("param").Null();
  w.Key("code").String(code);
  w.EndObject().EndObject();
  return w.Release();
}

SimResponse OpenAiFailure(int status, std::string_view message,
                          std::string_view code) {
  return Json(status, OpenAiError(message, code));
}

SimResponse AnthropicFailure(int status, std::string_view type,
                             std::string_view message) {
  return Json(status, RenderAnthropicErrorJson(type, message));
}

// RFC 3339 in UTC, as Anthropic writes times.
std::string Rfc3339(int64_t ms) {
  const time_t seconds = static_cast<time_t>(ms / 1000);
  struct tm t;
  gmtime_r(&seconds, &t);
  char out[32];
  std::strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &t);
  return out;
}

// The value of query parameter `name` in `target`, or "".
std::string_view QueryParam(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view()
                                          : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

bool ValidCustomId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A request's weight against the enqueued-token limit: its bytes / 4 plus
// its max_tokens (or max_completion_tokens).
int64_t TokensOf(std::string_view body) {
  int64_t tokens = static_cast<int64_t>(body.size() / 4);
  std::vector<JsonMember> members;
  if (!ObjectMembers(body, &members)) return tokens;
  for (std::string_view key : {"max_completion_tokens", "max_tokens"}) {
    const std::string_view value = MemberValue(members, key);
    int64_t n = 0;
    if (!value.empty() &&
        std::from_chars(value.data(), value.data() + value.size(), n).ec ==
            std::errc()) {
      return tokens + std::max<int64_t>(0, n);
    }
  }
  return tokens;
}

// One part of a multipart/form-data body.
struct FormPart {
  std::string name;
  std::string_view content;
};

// The parts of `body` under the boundary named in `content_type`; false
// when it is not multipart/form-data that parses.
bool ParseMultipart(std::string_view content_type, std::string_view body,
                    std::vector<FormPart>* parts) {
  const size_t b = content_type.find("boundary=");
  if (content_type.find("multipart/form-data") == std::string_view::npos ||
      b == std::string_view::npos) {
    return false;
  }
  std::string_view boundary = content_type.substr(b + 9);
  boundary = boundary.substr(0, boundary.find(';'));
  if (boundary.size() >= 2 && boundary.front() == '"' &&
      boundary.back() == '"') {
    boundary = boundary.substr(1, boundary.size() - 2);
  }
  if (boundary.empty()) return false;
  const std::string delimiter = "--" + std::string(boundary);
  size_t pos = body.find(delimiter);
  if (pos == std::string_view::npos) return false;
  while (true) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") return true;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") return false;
    pos += 2;
    const size_t headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) return false;
    const std::string_view headers = body.substr(pos, headers_end - pos);
    const size_t content_start = headers_end + 4;
    const size_t next = body.find(absl::StrCat("\r\n", delimiter), content_start);
    if (next == std::string_view::npos) return false;
    FormPart part;
    const size_t name = headers.find("name=\"");
    if (name != std::string_view::npos) {
      const size_t start = name + 6;
      const size_t end = headers.find('"', start);
      if (end == std::string_view::npos) return false;
      part.name = std::string(headers.substr(start, end - start));
    }
    part.content = body.substr(content_start, next - content_start);
    parts->push_back(std::move(part));
    pos = next + 2;
  }
}

}  // namespace

struct SimBatches::Batch {
  struct Request {
    std::string custom_id;
    std::string body;
  };
  struct ValidationError {
    std::string code;
    std::string message;
    int64_t line = 0;  // 1-based; 0: the whole file
  };

  std::string id;
  bool anthropic = false;
  uint64_t sequence = 0;
  int64_t created_ms = 0;
  std::string input_file_id;
  std::string metadata = "null";  // OpenAI: the metadata object as sent
  std::string model;
  std::vector<Request> requests;
  int64_t total = 0;
  int64_t tokens = 0;
  std::vector<ValidationError> errors;  // OpenAI: fails validation
  std::optional<int64_t> cancel_ms;

  // Set once it has ended (or failed).
  bool ended = false;
  std::string final_status;
  int64_t ended_ms = 0;
  int64_t succeeded = 0, errored = 0, expired = 0, cancelled = 0;
  std::string output_file_id, error_file_id;  // OpenAI
  std::string results;                        // Anthropic JSONL
  std::string results_url;                    // Anthropic, shown once ended
};

SimBatches::SimBatches(SimBatchOptions options, Clock& clock,
                       SimBatchRunner runner)
    : options_(std::move(options)),
      clock_(clock),
      runner_(std::move(runner)),
      nonce_(Mix64(static_cast<uint64_t>(clock.WallMillis()) ^ options_.seed)) {}

SimBatches::~SimBatches() = default;

bool SimBatches::IsOpenAiPath(std::string_view path) {
  for (std::string_view root : {kFilesPath, kOpenAiBatchesPath}) {
    if (path == root ||
        (path.starts_with(root) && path.size() > root.size() &&
         path[root.size()] == '/')) {
      return true;
    }
  }
  return false;
}

bool SimBatches::IsAnthropicPath(std::string_view path) {
  return path == kAnthropicBatchesPath ||
         (path.starts_with(kAnthropicBatchesPath) &&
          path.size() > kAnthropicBatchesPath.size() &&
          path[kAnthropicBatchesPath.size()] == '/');
}

std::string SimBatches::NewId(std::string_view prefix) {
  const uint64_t n = next_id_++;
  return std::string(prefix) + Hex64(Mix64(nonce_ ^ n)) + Hex64(n);
}

SimResponse SimBatches::Handle(const SimRequest& request,
                               std::string_view path) {
  absl::MutexLock lock(&mu_);
  const bool anthropic = IsAnthropicPath(path);
  const std::string_view root = anthropic ? kAnthropicBatchesPath
                                : path.starts_with(kFilesPath)
                                    ? kFilesPath
                                    : kOpenAiBatchesPath;
  std::string_view rest = path.substr(root.size());
  if (!rest.empty()) rest.remove_prefix(1);  // '/'
  const std::string_view id = rest.substr(0, rest.find('/'));
  const std::string_view action =
      rest.find('/') == std::string_view::npos ? std::string_view()
                                               : rest.substr(rest.find('/') + 1);
  const bool post = request.method == "POST";
  const bool get = request.method == "GET";
  const auto not_found = [&]() {
    return anthropic
               ? AnthropicFailure(404, "not_found_error",
                                  absl::StrCat("no such batch or route: ",
                                               std::string(path)))
               : OpenAiFailure(404,
                               absl::StrCat("No such object: ",
                                            std::string(path)),
                               "not_found");
  };

  if (root == kFilesPath) {
    if (id.empty() && post) return Upload(request);
    if (!id.empty() && action == "content" && get) return FileContent(id);
    return not_found();
  }
  if (id.empty()) {
    if (post) return anthropic ? CreateAnthropic(request) : CreateOpenAi(request);
    if (get) return List(request, anthropic);
    return not_found();
  }
  Batch* batch = Find(id, anthropic);
  if (batch == nullptr) return not_found();
  Advance(*batch, clock_.WallMillis());
  if (action.empty() && get) return Json(200, Render(*batch));
  if (action == "cancel" && post) return Cancel(*batch);
  if (action == "results" && get && anthropic) return Results(*batch);
  return not_found();
}

SimBatches::Batch* SimBatches::Find(std::string_view id, bool anthropic) {
  for (auto& batch : batches_) {
    if (batch->id == id && batch->anthropic == anthropic) return batch.get();
  }
  return nullptr;
}

SimResponse SimBatches::Upload(const SimRequest& request) {
  if (static_cast<int64_t>(request.body.size()) > options_.max_upload_bytes) {
    ++counters_.rejected["too_large"];
    return OpenAiFailure(
        413,
        absl::StrCat("File is too large: ", request.body.size(),
                     " bytes, the limit is ", options_.max_upload_bytes),
        "file_too_large");
  }
  std::vector<FormPart> parts;
  if (!ParseMultipart(request.Header("content-type"), request.body, &parts)) {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(400, "The body is not multipart/form-data.",
                         "invalid_request");
  }
  std::string_view purpose;
  const FormPart* file = nullptr;
  for (const FormPart& part : parts) {
    if (part.name == "purpose") purpose = part.content;
    if (part.name == "file") file = &part;
  }
  if (purpose != "batch" || file == nullptr) {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(400, "An upload needs purpose=batch and a file.",
                         "invalid_request");
  }
  const std::string id = NewId("file-");
  const int64_t bytes = static_cast<int64_t>(file->content.size());
  files_[id] = std::string(file->content);
  JsonWriter w;
  w.BeginObject();
  w.Key("id").String(id);
  w.Key("object").String("file");
  w.Key("bytes").Int(bytes);
  w.Key("created_at").Int(clock_.WallMillis() / 1000);
  w.Key("filename").String("batch.jsonl");
  w.Key("purpose").String("batch");
  w.EndObject();
  return Json(200, w.Release());
}

SimResponse SimBatches::FileContent(std::string_view file_id) {
  auto it = files_.find(std::string(file_id));
  if (it == files_.end()) {
    return OpenAiFailure(404, "No such file.", "not_found");
  }
  SimResponse r;
  r.status = 200;
  r.headers.emplace_back("content-type", "application/octet-stream");
  r.body = it->second;
  return r;
}

SimResponse SimBatches::CreateOpenAi(const SimRequest& request) {
  std::vector<JsonMember> members;
  if (!ObjectMembers(request.body, &members)) {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(400, "The body is not a JSON object.",
                         "invalid_request");
  }
  std::string_view file_id, endpoint, window;
  if (!PlainString(MemberValue(members, "input_file_id"), &file_id) ||
      !PlainString(MemberValue(members, "endpoint"), &endpoint) ||
      !PlainString(MemberValue(members, "completion_window"), &window)) {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(
        400, "input_file_id, endpoint and completion_window are required.",
        "invalid_request");
  }
  if (endpoint != kChatEndpoint || window != "24h") {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(400,
                         "endpoint must be /v1/chat/completions and "
                         "completion_window 24h.",
                         "invalid_request");
  }
  auto file = files_.find(std::string(file_id));
  if (file == files_.end()) {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(400, "No such input file.", "invalid_request");
  }
  const std::string_view metadata = MemberValue(members, "metadata");
  std::vector<JsonMember> pairs;
  if (!metadata.empty() && metadata != "null" &&
      (!ObjectMembers(metadata, &pairs) || pairs.size() > 16 ||
       std::any_of(pairs.begin(), pairs.end(), [](const JsonMember& m) {
         return m.second.empty() || m.second.front() != '"' ||
                m.second.size() > 514;
       }))) {
    ++counters_.rejected["invalid_request"];
    return OpenAiFailure(400, "metadata: up to 16 string values.",
                         "invalid_request");
  }

  AdvanceAll();
  auto batch = std::make_unique<Batch>();
  batch->id = NewId("batch_");
  batch->sequence = next_id_;
  batch->created_ms = clock_.WallMillis();
  batch->input_file_id = std::string(file_id);
  if (!metadata.empty()) batch->metadata = std::string(metadata);
  // Validation, as OpenAI does it after accepting the file.
  const std::string_view content = file->second;
  const auto fail = [&](std::string code, std::string message, int64_t line) {
    if (batch->errors.empty()) {
      batch->errors.push_back({std::move(code), std::move(message), line});
    }
  };
  if (static_cast<int64_t>(content.size()) > options_.openai_max_bytes) {
    fail("file_too_large",
         absl::StrCat("The input file is ", content.size(),
                      " bytes; the limit is ", options_.openai_max_bytes, "."),
         0);
  }
  std::set<std::string_view> ids;
  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    const std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    ++line_number;
    std::vector<JsonMember> fields;
    std::string_view custom_id, method, url, model;
    if (!ObjectMembers(line, &fields) ||
        !PlainString(MemberValue(fields, "custom_id"), &custom_id) ||
        !PlainString(MemberValue(fields, "method"), &method) ||
        !PlainString(MemberValue(fields, "url"), &url) ||
        MemberValue(fields, "body").empty()) {
      fail("invalid_line", "The line is not a batch request.", line_number);
      continue;
    }
    const std::string_view request_body = MemberValue(fields, "body");
    if (method != "POST" || url != kChatEndpoint) {
      fail("invalid_url", "Every line must POST to /v1/chat/completions.",
           line_number);
    }
    if (!ids.insert(custom_id).second) {
      fail("duplicate_custom_id",
           absl::StrCat("The custom_id ", std::string(custom_id),
                        " is used more than once."),
           line_number);
    }
    std::vector<JsonMember> body_fields;
    if (!ObjectMembers(request_body, &body_fields) ||
        !PlainString(MemberValue(body_fields, "model"), &model)) {
      fail("invalid_body", "The body has no model.", line_number);
    } else if (batch->model.empty()) {
      batch->model = std::string(model);
    } else if (model != batch->model) {
      fail("mixed_models", "All requests of a batch must use the same model.",
           line_number);
    }
    batch->tokens += TokensOf(request_body);
    batch->requests.push_back(
        {std::string(custom_id), std::string(request_body)});
  }
  batch->total = static_cast<int64_t>(batch->requests.size());
  if (batch->total == 0) fail("empty_file", "The input file is empty.", 0);
  if (batch->total > options_.openai_max_requests) {
    batch->errors.insert(
        batch->errors.begin(),
        {"too_many_requests",
         absl::StrCat("The file has ", batch->total,
                      " requests; the limit is ", options_.openai_max_requests,
                      "."),
         0});
  }
  if (batch->errors.empty() && options_.enqueued_token_limit > 0 &&
      EnqueuedTokens(batch->model) + batch->tokens >
          options_.enqueued_token_limit) {
    fail("token_limit_exceeded",
         absl::StrCat("Enqueued token limit reached for ", batch->model,
                      ": ", options_.enqueued_token_limit,
                      " tokens. Try again once running batches finish."),
         0);
  }
  ++counters_.created;
  if (!batch->errors.empty()) {
    ++counters_.failed_validation[batch->errors.front().code];
    batch->requests.clear();
  }
  batches_.push_back(std::move(batch));
  return Json(200, Render(*batches_.back()));
}

SimResponse SimBatches::CreateAnthropic(const SimRequest& request) {
  if (static_cast<int64_t>(request.body.size()) >
      options_.anthropic_max_bytes) {
    ++counters_.rejected["too_large"];
    return AnthropicFailure(
        413, "request_too_large",
        absl::StrCat("The batch is ", request.body.size(),
                     " bytes; the limit is ", options_.anthropic_max_bytes));
  }
  std::vector<JsonMember> members;
  std::vector<std::string_view> items;
  if (!ObjectMembers(request.body, &members) ||
      !ArrayElements(MemberValue(members, "requests"), &items)) {
    ++counters_.rejected["invalid_request"];
    return AnthropicFailure(400, "invalid_request_error",
                            "requests: a list of {custom_id, params} is "
                            "required");
  }
  if (items.empty()) {
    ++counters_.rejected["invalid_request"];
    return AnthropicFailure(400, "invalid_request_error",
                            "requests: at least one is required");
  }
  if (static_cast<int64_t>(items.size()) > options_.anthropic_max_requests) {
    ++counters_.rejected["too_large"];
    return AnthropicFailure(
        413, "request_too_large",
        absl::StrCat("The batch has ", items.size(),
                     " requests; the limit is ",
                     options_.anthropic_max_requests));
  }
  auto batch = std::make_unique<Batch>();
  batch->anthropic = true;
  std::set<std::string_view> ids;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<JsonMember> fields;
    std::string_view custom_id;
    const bool shaped = ObjectMembers(items[i], &fields) &&
                        !MemberValue(fields, "params").empty() &&
                        MemberValue(fields, "params").front() == '{';
    if (!shaped) {
      ++counters_.rejected["invalid_request"];
      return AnthropicFailure(
          400, "invalid_request_error",
          absl::StrCat("requests.", i, ": custom_id and params are required"));
    }
    if (!PlainString(MemberValue(fields, "custom_id"), &custom_id) ||
        !ValidCustomId(custom_id)) {
      ++counters_.rejected["custom_id"];
      return AnthropicFailure(
          400, "invalid_request_error",
          absl::StrCat("requests.", i,
                       ".custom_id: String should match pattern "
                       "'^[a-zA-Z0-9_-]{1,64}$'"));
    }
    if (!ids.insert(custom_id).second) {
      ++counters_.rejected["custom_id"];
      return AnthropicFailure(
          400, "invalid_request_error",
          absl::StrCat("requests.", i, ".custom_id: duplicate custom_id ",
                       std::string(custom_id)));
    }
    const std::string_view params = MemberValue(fields, "params");
    batch->tokens += TokensOf(params);
    batch->requests.push_back({std::string(custom_id), std::string(params)});
  }
  AdvanceAll();
  if (options_.enqueued_token_limit > 0 &&
      EnqueuedTokens("") + batch->tokens > options_.enqueued_token_limit) {
    ++counters_.rejected["rate_limited"];
    SimResponse r = AnthropicFailure(
        429, "rate_limit_error",
        "Number of batch tokens in the queue exceeds your limit; wait for "
        "batches to finish.");
    r.headers.emplace_back("retry-after", "1");
    return r;
  }
  batch->id = NewId("msgbatch_");
  batch->sequence = next_id_;
  // results_url is absolute: this server, as the client reached it.
  std::string_view host = request.Header("host");
  if (host.empty()) host = "127.0.0.1";
  batch->results_url = absl::StrCat("http://", std::string(host),
                                    std::string(kAnthropicBatchesPath), "/",
                                    batch->id, "/results");
  batch->created_ms = clock_.WallMillis();
  batch->total = static_cast<int64_t>(batch->requests.size());
  ++counters_.created;
  batches_.push_back(std::move(batch));
  return Json(200, Render(*batches_.back()));
}

SimResponse SimBatches::List(const SimRequest& request, bool anthropic) {
  AdvanceAll();
  int64_t limit = 20;
  const std::string_view limit_text = QueryParam(request.target, "limit");
  if (!limit_text.empty()) {
    int64_t n = 0;
    if (std::from_chars(limit_text.data(),
                        limit_text.data() + limit_text.size(), n)
                .ec != std::errc() ||
        n < 1 || n > kMaxListLimit) {
      return anthropic ? AnthropicFailure(400, "invalid_request_error",
                                          "limit: 1 to 100")
                       : OpenAiFailure(400, "limit: 1 to 100",
                                       "invalid_request");
    }
    limit = n;
  }
  const std::string_view after =
      QueryParam(request.target, anthropic ? "after_id" : "after");
  std::vector<const Batch*> page;
  bool started = after.empty();
  bool has_more = false;
  for (auto it = batches_.rbegin(); it != batches_.rend(); ++it) {
    const Batch& batch = **it;
    if (batch.anthropic != anthropic) continue;
    if (!started) {
      started = batch.id == after;
      continue;
    }
    if (static_cast<int64_t>(page.size()) == limit) {
      has_more = true;
      break;
    }
    page.push_back(&batch);
  }
  std::string body = anthropic ? "{\"data\":[" : "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < page.size(); ++i) {
    if (i > 0) body += ',';
    body += Render(*page[i]);
  }
  JsonWriter tail;
  tail.BeginObject();
  tail.Key("first_id");
  page.empty() ? tail.Null() : tail.String(page.front()->id);
  tail.Key("last_id");
  page.empty() ? tail.Null() : tail.String(page.back()->id);
  tail.Key("has_more").Bool(has_more);
  tail.EndObject();
  std::string rest = tail.Release();
  rest.front() = ',';
  absl::StrAppend(&body, "]", rest);
  return Json(200, std::move(body));
}

SimResponse SimBatches::Cancel(Batch& batch) {
  if (batch.ended) {
    if (batch.anthropic) return Json(200, Render(batch));
    return OpenAiFailure(
        400,
        absl::StrCat("Cannot cancel a batch with status ", batch.final_status,
                     "."),
        "invalid_request");
  }
  if (!batch.cancel_ms.has_value()) batch.cancel_ms = clock_.WallMillis();
  Advance(batch, clock_.WallMillis());
  return Json(200, Render(batch));
}

SimResponse SimBatches::Results(const Batch& batch) {
  if (!batch.ended) {
    return AnthropicFailure(400, "invalid_request_error",
                            "The batch has not ended; its results are not "
                            "ready.");
  }
  SimResponse r;
  r.status = 200;
  r.headers.emplace_back("content-type", "application/binary");
  r.body = batch.results;
  return r;
}

int64_t SimBatches::RanBy(const Batch& batch, int64_t t_ms) const {
  const int64_t start =
      batch.created_ms + Ms(options_.validate) + Ms(options_.latency);
  if (t_ms < start) return 0;
  if (options_.requests_per_second <= 0) return batch.total;
  const double ran =
      static_cast<double>(t_ms - start) * options_.requests_per_second / 1000.0;
  return std::min<int64_t>(batch.total, static_cast<int64_t>(ran));
}

void SimBatches::AdvanceAll() {
  const int64_t now = clock_.WallMillis();
  for (auto& batch : batches_) Advance(*batch, now);
}

void SimBatches::Advance(Batch& batch, int64_t now_ms) {
  if (batch.ended) return;
  const int64_t validated = batch.created_ms + Ms(options_.validate);
  if (!batch.errors.empty()) {
    if (now_ms >= validated) {
      batch.ended = true;
      batch.final_status = "failed";
      batch.ended_ms = validated;
    }
    return;
  }
  const int64_t expires = batch.created_ms + Ms(options_.expire);
  if (batch.cancel_ms.has_value()) {
    const int64_t cancelled = *batch.cancel_ms + Ms(options_.cancel);
    if (now_ms >= cancelled) {
      Finish(batch, "cancelled",
             RanBy(batch, std::min(*batch.cancel_ms, expires)), cancelled);
    }
    return;
  }
  const int64_t start = validated + Ms(options_.latency);
  const int64_t runs =
      options_.requests_per_second <= 0
          ? 0
          : static_cast<int64_t>(static_cast<double>(batch.total) * 1000.0 /
                                     options_.requests_per_second +
                                 0.999);
  const int64_t done = start + runs;
  if (done <= expires) {
    if (now_ms >= done) Finish(batch, "completed", batch.total, done);
  } else if (now_ms >= expires) {
    Finish(batch, "expired", RanBy(batch, expires), expires);
  }
}

void SimBatches::Finish(Batch& batch, std::string_view status, int64_t ran,
                        int64_t now_ms) {
  batch.ended = true;
  batch.final_status = std::string(status);
  batch.ended_ms = now_ms;
  // Results in a shuffled order; which requests ran is the shuffle's prefix.
  std::mt19937_64 rng(Mix64(options_.seed ^ Mix64(batch.sequence)));
  std::vector<size_t> order(batch.requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::bernoulli_distribution injected_error(
      std::clamp(options_.error_rate, 0.0, 1.0));
  const bool cancelled = status == "cancelled";
  std::string output, errors;
  for (size_t k = 0; k < order.size(); ++k) {
    const Batch::Request& request = batch.requests[order[k]];
    const std::string line_id = NewId("batch_req_");
    if (static_cast<int64_t>(k) >= ran) {
      if (cancelled) {
        ++batch.cancelled;
      } else {
        ++batch.expired;
      }
      if (batch.anthropic) {
        JsonWriter w;
        w.BeginObject().Key("custom_id").String(request.custom_id);
        w.Key("result").BeginObject();
        w.Key("type").String(cancelled ? "canceled" : "expired");
        w.EndObject().EndObject();
        absl::StrAppend(&batch.results, w.Release(), "\n");
      } else {
        JsonWriter w;
        w.BeginObject().Key("id").String(line_id);
        w.Key("custom_id").String(request.custom_id);
        w.Key("response").Null();
        w.Key("error").BeginObject();
        w.Key("code").String(cancelled ? "batch_cancelled" : "batch_expired");
        w.Key("message").String(
            cancelled ? "This request was not executed because the batch "
                        "was cancelled."
                      : "This request could not be executed before the "
                        "completion window expired.");
        w.EndObject().EndObject();
        absl::StrAppend(&errors, w.Release(), "\n");
      }
      continue;
    }
    SimBatchAnswer answer;
    if (injected_error(rng)) {
      answer.status = 500;
      answer.body =
          batch.anthropic
              ? RenderAnthropicErrorJson("api_error", "Internal server error")
              : OpenAiError("The server had an error while processing your "
                            "request.",
                            "server_error");
    } else {
      answer = runner_(batch.anthropic, request.body);
    }
    const bool ok = answer.status == 200;
    ok ? ++batch.succeeded : ++batch.errored;
    JsonWriter w;
    w.BeginObject();
    if (batch.anthropic) {
      w.Key("custom_id").String(request.custom_id);
      w.Key("result").BeginObject();
      if (ok) {
        w.Key("type").String("succeeded");
        w.Key("message").Raw(answer.body);
      } else {
        w.Key("type").String("errored");
        w.Key("error").Raw(answer.body);
      }
      w.EndObject().EndObject();
      absl::StrAppend(&batch.results, w.Release(), "\n");
      continue;
    }
    w.Key("id").String(line_id);
    w.Key("custom_id").String(request.custom_id);
    w.Key("response").BeginObject();
    w.Key("status_code").Int(answer.status);
    w.Key("request_id").String(NewId("req_"));
    w.Key("body").Raw(answer.body);
    w.EndObject();
    w.Key("error").Null();
    w.EndObject();
    absl::StrAppend(ok ? &output : &errors, w.Release(), "\n");
  }
  if (!output.empty()) {
    batch.output_file_id = NewId("file-");
    files_[batch.output_file_id] = std::move(output);
  }
  if (!errors.empty()) {
    batch.error_file_id = NewId("file-");
    files_[batch.error_file_id] = std::move(errors);
  }
  batch.requests.clear();
  batch.requests.shrink_to_fit();
  if (status == "completed") ++counters_.completed;
  if (status == "cancelled") ++counters_.cancelled;
  if (status == "expired") ++counters_.expired;
  counters_.requests_succeeded += batch.succeeded;
  counters_.requests_errored += batch.errored;
  counters_.requests_expired += batch.expired;
  counters_.requests_cancelled += batch.cancelled;
}

int64_t SimBatches::EnqueuedTokens(std::string_view model) const {
  int64_t tokens = 0;
  for (const auto& batch : batches_) {
    if (batch->ended || !batch->errors.empty()) continue;
    if (!model.empty() && batch->model != model) continue;
    tokens += batch->tokens;
  }
  return tokens;
}

std::string SimBatches::Render(const Batch& batch) const {
  const int64_t now = clock_.WallMillis();
  const int64_t ran = batch.ended ? batch.succeeded + batch.errored
                                  : RanBy(batch, now);
  JsonWriter w;
  w.BeginObject();
  w.Key("id").String(batch.id);
  if (batch.anthropic) {
    w.Key("type").String("message_batch");
    w.Key("processing_status")
        .String(batch.ended              ? "ended"
                : batch.cancel_ms.has_value() ? "canceling"
                                              : "in_progress");
    w.Key("request_counts").BeginObject();
    w.Key("processing").Int(batch.ended ? 0 : batch.total);
    w.Key("succeeded").Int(batch.succeeded);
    w.Key("errored").Int(batch.errored);
    w.Key("canceled").Int(batch.cancelled);
    w.Key("expired").Int(batch.expired);
    w.EndObject();
    w.Key("ended_at");
    batch.ended ? w.String(Rfc3339(batch.ended_ms)) : w.Null();
    w.Key("created_at").String(Rfc3339(batch.created_ms));
    w.Key("expires_at").String(
        Rfc3339(batch.created_ms + Ms(options_.expire)));
    w.Key("cancel_initiated_at");
    batch.cancel_ms.has_value() ? w.String(Rfc3339(*batch.cancel_ms))
                                : w.Null();
    w.Key("results_url");
    batch.ended ? w.String(batch.results_url) : w.Null();
    w.EndObject();
    return w.Release();
  }
  std::string status;
  if (batch.ended) {
    status = batch.final_status;
  } else if (now < batch.created_ms + Ms(options_.validate) ||
             !batch.errors.empty()) {
    status = "validating";
  } else if (batch.cancel_ms.has_value()) {
    status = "cancelling";
  } else {
    status = "in_progress";
  }
  w.Key("object").String("batch");
  w.Key("endpoint").String(kChatEndpoint);
  w.Key("errors");
  if (batch.ended && !batch.errors.empty()) {
    w.BeginObject().Key("object").String("list");
    w.Key("data").BeginArray();
    for (const auto& error : batch.errors) {
      w.BeginObject();
      w.Key("code").String(error.code);
      w.Key("message").String(error.message);
      w.Key("param").Null();
      w.Key("line");
      error.line > 0 ? w.Int(error.line) : w.Null();
      w.EndObject();
    }
    w.EndArray().EndObject();
  } else {
    w.Null();
  }
  w.Key("input_file_id").String(batch.input_file_id);
  w.Key("completion_window").String("24h");
  w.Key("status").String(status);
  w.Key("output_file_id");
  batch.output_file_id.empty() ? w.Null() : w.String(batch.output_file_id);
  w.Key("error_file_id");
  batch.error_file_id.empty() ? w.Null() : w.String(batch.error_file_id);
  w.Key("created_at").Int(batch.created_ms / 1000);
  w.Key("in_progress_at");
  status != "validating" && status != "failed"
      ? w.Int((batch.created_ms + Ms(options_.validate)) / 1000)
      : w.Null();
  w.Key("expires_at").Int((batch.created_ms + Ms(options_.expire)) / 1000);
  for (std::string_view key :
       {"completed_at", "failed_at", "expired_at", "cancelled_at"}) {
    w.Key(key);
    const bool at = batch.ended &&
                    key.substr(0, key.size() - 3) == batch.final_status;
    at ? w.Int(batch.ended_ms / 1000) : w.Null();
  }
  w.Key("cancelling_at");
  batch.cancel_ms.has_value() ? w.Int(*batch.cancel_ms / 1000) : w.Null();
  w.Key("request_counts").BeginObject();
  w.Key("total").Int(batch.errors.empty() ? batch.total : 0);
  w.Key("completed").Int(batch.ended ? batch.succeeded : ran);
  w.Key("failed").Int(batch.errored);
  w.EndObject();
  w.Key("metadata").Raw(batch.metadata);
  w.EndObject();
  return w.Release();
}

std::string SimBatches::RenderStatsJson() {
  absl::MutexLock lock(&mu_);
  AdvanceAll();
  int64_t open = 0;
  for (const auto& batch : batches_) {
    if (!batch->ended) ++open;
  }
  JsonWriter w;
  w.BeginObject();
  w.Key("created").Int(counters_.created);
  w.Key("failed_validation").BeginObject();
  for (const auto& [code, n] : counters_.failed_validation) w.Key(code).Int(n);
  w.EndObject();
  w.Key("rejected").BeginObject();
  for (const auto& [reason, n] : counters_.rejected) w.Key(reason).Int(n);
  w.EndObject();
  w.Key("completed").Int(counters_.completed);
  w.Key("cancelled").Int(counters_.cancelled);
  w.Key("expired").Int(counters_.expired);
  w.Key("requests_succeeded").Int(counters_.requests_succeeded);
  w.Key("requests_errored").Int(counters_.requests_errored);
  w.Key("requests_expired").Int(counters_.requests_expired);
  w.Key("requests_cancelled").Int(counters_.requests_cancelled);
  w.Key("open").Int(open);
  w.EndObject();
  return w.Release();
}

}  // namespace distillery::teacher_sim
