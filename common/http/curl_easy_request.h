// One HTTP request as a libcurl easy handle sees it, apart from the event
// loop that drives it (curl_http_client.cc): checking a request before curl
// sees it, setting it and the client's options on a handle, folding the
// response's header lines into HttpHeaders, and turning curl's result codes
// into canonical Status codes. Nothing here touches the multi handle, Asio
// or the loop thread.
//
// Internal to common/http: includes curl/curl.h, so only the client's .cc
// files include it. All functions are pure (beyond the handle they are
// given) and thread-safe.
#ifndef DISTILLERY_COMMON_HTTP_CURL_EASY_REQUEST_H_
#define DISTILLERY_COMMON_HTTP_CURL_EASY_REQUEST_H_

#include <curl/curl.h>

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "common/base/clock.h"
#include "common/http/curl_http_client.h"
#include "common/http/http_client.h"

namespace distillery::curl_request {

int64_t Millis(Duration d);

// OK, or INVALID_ARGUMENT for what libcurl would turn into a broken or
// smuggled request: a malformed URL or one not http(s), a method with
// whitespace, a header name with whitespace or ':' or a value with a line
// break. The message never quotes the URL nor a header value (either may
// carry a key).
absl::Status ValidateRequest(const HttpRequest& request);

// The Status for a transfer that ended with `code` (not CURLE_OK), `detail`
// being its CURLOPT_ERRORBUFFER: INVALID_ARGUMENT for a bad URL,
// DEADLINE_EXCEEDED for the connect timeout (the only curl timeout set),
// RESOURCE_EXHAUSTED for a declared body over max_response_bytes,
// UnreachableError when nothing reached a server, UNAVAILABLE for what a
// retry may fix, INTERNAL otherwise.
absl::Status StatusFromCurlCode(CURLcode code, const char* detail,
                                const HttpRequest& request);

// Sets `r` (URL, method and body, headers, connect timeout, response cap)
// and the client's `options` (HTTP version, CA file, proxy, user agent) on
// `easy`; the callbacks and CURLOPT_PRIVATE are the caller's. The header
// list is appended to *headers, which the caller frees with
// curl_slist_free_all once the transfer is over. The body is not copied: `r`
// must outlive the transfer. INTERNAL when curl cannot allocate.
absl::Status SetRequestOptions(CURL* easy, const HttpRequest& r,
                               const CurlHttpClientOptions& options,
                               curl_slist** headers);

// Folds one raw header line, as CURLOPT_HEADERFUNCTION receives it, into
// *headers (names lower-cased, values trimmed): a new status line clears
// them, so only the final response's headers stay (after a 100 Continue);
// an obsolete folded line continues the previous value; lines without ':'
// (the blank end of the headers) are ignored.
void AddHeaderLine(std::string_view line, HttpHeaders* headers);

}  // namespace distillery::curl_request

#endif  // DISTILLERY_COMMON_HTTP_CURL_EASY_REQUEST_H_
