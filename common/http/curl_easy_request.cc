#include "common/http/curl_easy_request.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/http/http_client.h"

namespace distillery::curl_request {
namespace {

// Debian's Abseil has its own absl::string_view, distinct from
// std::string_view, so these small helpers stay in std.
std::string_view Trim(std::string_view s) {
  const char* kSpace = " \t\r\n";
  size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  return out;
}

// Curl's text for `code` plus the transfer's error buffer, which names the
// host and port but never the URL path, query or headers.
std::string CurlErrorText(CURLcode code, const char* detail) {
  if (detail[0] == '\0') return curl_easy_strerror(code);
  return absl::StrCat(curl_easy_strerror(code), ": ", detail);
}

}  // namespace

int64_t Millis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

absl::Status StatusFromCurlCode(CURLcode code, const char* detail,
                                const HttpRequest& request) {
  std::string text = CurlErrorText(code, detail);
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(text);
    case CURLE_OPERATION_TIMEDOUT:
      // The only curl timeout we set is the connect timeout.
      return absl::DeadlineExceededError(
          absl::StrCat("connect timeout (", Millis(request.connect_timeout),
                       " ms): ", text));
    case CURLE_FILESIZE_EXCEEDED:
      return absl::ResourceExhaustedError(
          absl::StrCat("response body over max_response_bytes (",
                       request.max_response_bytes, "): ", text));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
      // Nothing reached a server: the teacher is down or misaddressed.
      return UnreachableError(text);
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
    case CURLE_UNRECOVERABLE_POLL:
      return absl::UnavailableError(text);
    default:
      return absl::InternalError(text);
  }
}

// Rejects what libcurl would turn into a broken or smuggled request.
absl::Status ValidateRequest(const HttpRequest& request) {
  CURLU* url = curl_url();
  if (url == nullptr) return absl::InternalError("curl_url: out of memory");
  CURLUcode uc = curl_url_set(url, CURLUPART_URL, request.url.c_str(), 0);
  char* scheme = nullptr;
  if (uc == CURLUE_OK) uc = curl_url_get(url, CURLUPART_SCHEME, &scheme, 0);
  absl::Status status;
  if (uc != CURLUE_OK) {
    // The URL itself stays out of the message: it may carry a key.
    status = absl::InvalidArgumentError(
        absl::StrCat("malformed URL: ", curl_url_strerror(uc)));
  } else if (std::string_view(scheme) != "http" &&
             std::string_view(scheme) != "https") {
    status = absl::InvalidArgumentError(
        absl::StrCat("unsupported URL scheme '", scheme, "'"));
  }
  curl_free(scheme);
  curl_url_cleanup(url);
  if (!status.ok()) return status;

  if (request.method.empty() ||
      request.method.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("malformed HTTP method");
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || name.find_first_of(" \t\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      // Only the name: values carry API keys.
      return absl::InvalidArgumentError(
          absl::StrCat("malformed request header '", name, "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status SetRequestOptions(CURL* e, const HttpRequest& r,
                               const CurlHttpClientOptions& options,
                               curl_slist** headers) {
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(
      e, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(1, Millis(r.connect_timeout))));
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                   static_cast<curl_off_t>(r.max_response_bytes));
  if (options.enable_http2) {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, long{CURL_HTTP_VERSION_2TLS});
    // Wait for an HTTP/2 connection being set up rather than open another;
    // only https can negotiate HTTP/2, so http:// transfers never wait.
    if (absl::StartsWithIgnoreCase(r.url, "https:")) {
      curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }
  } else {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, long{CURL_HTTP_VERSION_1_1});
  }
  if (!options.ca_file.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str());
  }
  if (options.proxy.has_value()) {
    curl_easy_setopt(e, CURLOPT_PROXY, options.proxy->c_str());
  }
  if (!options.user_agent.empty()) {
    curl_easy_setopt(e, CURLOPT_USERAGENT, options.user_agent.c_str());
  }

  const bool sends_body = !r.body.empty() || r.method == "POST" ||
                          r.method == "PUT" || r.method == "PATCH";
  if (r.method == "GET" && !sends_body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (r.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (sends_body) {
      // The body stays owned by `r`, which outlives the transfer.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.c_str());
    }
    if (r.method != "POST") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
  }

  bool has_expect = false;
  for (const auto& [name, value] : r.headers) {
    has_expect = has_expect || absl::EqualsIgnoreCase(name, "expect");
    // "Name;" is curl's spelling of a header with an empty value ("Name:"
    // would delete the header).
    std::string line = value.empty() ? absl::StrCat(name, ";")
                                     : absl::StrCat(name, ": ", value);
    curl_slist* next = curl_slist_append(*headers, line.c_str());
    if (next == nullptr) return absl::InternalError("curl_slist_append failed");
    *headers = next;
  }
  if (!has_expect) {
    // No "Expect: 100-continue" on large bodies: it costs a round trip (or
    // a one-second wait on servers that ignore it).
    curl_slist* next = curl_slist_append(*headers, "Expect:");
    if (next == nullptr) return absl::InternalError("curl_slist_append failed");
    *headers = next;
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, *headers);
  return absl::OkStatus();
}

void AddHeaderLine(std::string_view line, HttpHeaders* headers) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.substr(0, 5) == "HTTP/") {
    // A new status line (after a 100 Continue, say): keep only the final
    // response's headers->
    headers->clear();
  } else if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
    // Obsolete line folding: a continuation of the previous value.
    std::string_view more = Trim(line);
    if (!headers->empty() && !more.empty()) {
      std::string& value = headers->back().second;
      if (!value.empty()) value += ' ';
      value += more;
    }
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    headers->emplace_back(Lower(Trim(line.substr(0, colon))),
                          std::string(Trim(line.substr(colon + 1))));
  }
}

}  // namespace distillery::curl_request
