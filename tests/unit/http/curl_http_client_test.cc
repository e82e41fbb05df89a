// CurlHttpClient against a real HTTP/1.1 server on loopback. Timeouts are
// short (hundreds of ms) and no test asserts how long anything took.
#include "common/http/curl_http_client.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/http/test_http_server.h"

namespace distillery {
namespace {

using ::distillery::testing::TestHttpServer;
using ::testing::Contains;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::Pair;
using namespace std::chrono_literals;

using Conn = TestHttpServer::Connection;
using Req = TestHttpServer::Request;

HttpRequest Get(std::string url) {
  HttpRequest r;
  r.method = "GET";
  r.url = std::move(url);
  r.connect_timeout = 2s;
  r.idle_timeout = 5s;
  r.total_timeout = 20s;
  return r;
}

// Loopback only: ignore any proxy the environment names.
CurlHttpClientOptions Options() {
  CurlHttpClientOptions options;
  options.proxy = "";
  return options;
}

// Sends and waits (the test thread may block; the client's loop may not).
absl::StatusOr<HttpResponse> SendAndWait(HttpClient& client,
                                         HttpRequest request) {
  std::promise<absl::StatusOr<HttpResponse>> promise;
  auto future = promise.get_future();
  client.Send(std::move(request), [&promise](absl::StatusOr<HttpResponse> r) {
    promise.set_value(std::move(r));
  });
  if (future.wait_for(60s) != std::future_status::ready) {
    return absl::InternalError("test: no callback within 60 s");
  }
  return future.get();
}

// A port with nothing listening on it.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(CurlHttpClientTest, ReturnsStatusHeadersAndBody) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write(
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "X-Request-ID:    abc-123   \r\n"
        "X-RateLimit-Remaining-Requests:\t42\r\n"
        "Content-Length: 11\r\n"
        "\r\n"
        "{\"ok\":true}");
  });
  CurlHttpClient client(Options());
  std::thread::id callback_thread;
  std::promise<absl::StatusOr<HttpResponse>> promise;
  client.Send(Get(server.Url("/v1/models")),
              [&](absl::StatusOr<HttpResponse> r) {
                callback_thread = std::this_thread::get_id();
                promise.set_value(std::move(r));
              });
  absl::StatusOr<HttpResponse> r = promise.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"ok\":true}");
  EXPECT_EQ(r->Header("content-type"), "application/json");
  EXPECT_EQ(r->Header("x-request-id"), "abc-123");
  EXPECT_EQ(r->Header("x-ratelimit-remaining-requests"), "42");
  EXPECT_THAT(r->headers, Contains(Pair("content-length", "11")));
  EXPECT_NE(callback_thread, std::this_thread::get_id());
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].method, "GET");
  EXPECT_EQ(server.requests()[0].target, "/v1/models");
}

TEST(CurlHttpClientTest, SendsMethodHeadersAndBodyWithoutExpect) {
  TestHttpServer server;
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url("/v1/chat/completions"));
  req.method = "POST";
  req.headers = {{"Content-Type", "application/json"},
                 {"Authorization", "Bearer sk-test"},
                 {"X-Empty", ""}};
  // Big enough that curl would otherwise send "Expect: 100-continue".
  req.body = std::string(2 << 20, 'x');
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(server.requests().size(), 1u);
  const Req got = server.requests()[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.target, "/v1/chat/completions");
  EXPECT_EQ(got.body, req.body);
  EXPECT_EQ(got.Header("authorization"), "Bearer sk-test");
  EXPECT_EQ(got.Header("content-type"), "application/json");
  EXPECT_TRUE(got.HasHeader("x-empty"));
  EXPECT_FALSE(got.HasHeader("expect"));
}

TEST(CurlHttpClientTest, EmptyPostSendsContentLengthZero) {
  TestHttpServer server;
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.method = "POST";
  ASSERT_TRUE(SendAndWait(client, req).ok());
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].method, "POST");
  EXPECT_EQ(server.requests()[0].Header("content-length"), "0");
}

TEST(CurlHttpClientTest, HttpErrorIsAResponse) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write(TestHttpServer::Response(
        429, "{\"error\":{\"type\":\"rate_limit_exceeded\"}}",
        "Retry-After: 7\r\nRetry-After-Ms: 6500\r\n"));
  });
  CurlHttpClient client(Options());
  absl::StatusOr<HttpResponse> r = SendAndWait(client, Get(server.Url()));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->Header("retry-after"), "7");
  EXPECT_EQ(r->Header("retry-after-ms"), "6500");
  EXPECT_THAT(r->body, HasSubstr("rate_limit_exceeded"));
}

TEST(CurlHttpClientTest, ConnectionRefusedIsUnavailable) {
  CurlHttpClient client(Options());
  absl::StatusOr<HttpResponse> r = SendAndWait(
      client, Get(absl::StrCat("http://127.0.0.1:", ClosedPort(), "/")));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("onnect"));
}

TEST(CurlHttpClientTest, TruncatedBodyIsUnavailable) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    c.Close();
  });
  CurlHttpClient client(Options());
  absl::StatusOr<HttpResponse> r = SendAndWait(client, Get(server.Url()));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(CurlHttpClientTest, ResetIsUnavailable) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    c.Reset();
  });
  CurlHttpClient client(Options());
  absl::StatusOr<HttpResponse> r = SendAndWait(client, Get(server.Url()));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(CurlHttpClientTest, ClosedWithoutResponseIsUnavailable) {
  TestHttpServer server([](const Req&, Conn& c) { c.Close(); });
  CurlHttpClient client(Options());
  absl::StatusOr<HttpResponse> r = SendAndWait(client, Get(server.Url()));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(CurlHttpClientTest, SilentServerHitsIdleTimeout) {
  TestHttpServer server([](const Req&, Conn& c) { c.Stall(); });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.idle_timeout = 300ms;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("idle"));
}

TEST(CurlHttpClientTest, StallMidBodyHitsIdleTimeout) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    c.Stall();
  });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.idle_timeout = 300ms;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("idle"));
}

TEST(CurlHttpClientTest, BlankLinePaddingKeepsRequestAlive) {
  constexpr int kPads = 8;  // 8 x 100 ms of padding against a 300 ms idle limit
  const std::string json = "{\"choices\":[]}";
  TestHttpServer server([&](const Req&, Conn& c) {
    c.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ",
                         kPads + json.size(), "\r\n\r\n"));
    for (int i = 0; i < kPads; ++i) {
      if (!c.Pause(100ms) || !c.Write("\n")) return;
    }
    c.Write(json);
  });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.idle_timeout = 300ms;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, std::string(kPads, '\n') + json);
}

TEST(CurlHttpClientTest, EndlessPaddingHitsTotalTimeout) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    while (c.Pause(50ms) && c.Write("\n")) {
    }
  });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.idle_timeout = 300ms;
  req.total_timeout = 700ms;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("total"));
}

TEST(CurlHttpClientTest, UnacceptedConnectionHitsConnectTimeout) {
  // A listener whose accept queue is full drops new SYNs, so connect()
  // hangs: the one local way to make a connection attempt time out.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  std::this_thread::yield();
  CurlHttpClient client(Options());
  HttpRequest req =
      Get(absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/"));
  req.connect_timeout = 300ms;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("connect"));
  for (int fd : fillers) ::close(fd);
  ::close(listener);
}

TEST(CurlHttpClientTest, DeclaredOversizeBodyIsResourceExhausted) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write(TestHttpServer::Response(200, std::string(5000, 'a')));
  });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.max_response_bytes = 1000;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
}

TEST(CurlHttpClientTest, ChunkedOversizeBodyIsResourceExhausted) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 10; ++i) {
      if (!c.Write(absl::StrCat("1f4\r\n", std::string(500, 'a'), "\r\n"))) {
        return;
      }
    }
    c.Write("0\r\n\r\n");
  });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.max_response_bytes = 1000;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
}

TEST(CurlHttpClientTest, BodyAtTheCapIsAccepted) {
  TestHttpServer server([](const Req&, Conn& c) {
    c.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.Write(absl::StrCat("3e8\r\n", std::string(1000, 'a'), "\r\n0\r\n\r\n"));
  });
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.max_response_bytes = 1000;
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body.size(), 1000u);
}

TEST(CurlHttpClientTest, MalformedUrlIsInvalidArgument) {
  CurlHttpClient client(Options());
  for (const char* url : {"not a url", "ftp://127.0.0.1/file", "", "http://"}) {
    absl::StatusOr<HttpResponse> r = SendAndWait(client, Get(url));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << url << ": " << r.status();
  }
}

TEST(CurlHttpClientTest, HeaderInjectionIsInvalidArgument) {
  TestHttpServer server;
  CurlHttpClient client(Options());
  HttpRequest req = Get(server.Url());
  req.headers = {{"X-Evil", "a\r\nX-Smuggled: 1"}};
  absl::StatusOr<HttpResponse> r = SendAndWait(client, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr("Smuggled")));
  EXPECT_TRUE(server.requests().empty());
}

TEST(CurlHttpClientTest, SequentialRequestsReuseOneConnection) {
  TestHttpServer server;
  CurlHttpClient client(Options());
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpResponse> r =
        SendAndWait(client, Get(server.Url(absl::StrCat("/", i))));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_EQ(server.requests().size(), 5u);
  EXPECT_EQ(server.connections(), 1);
}

TEST(CurlHttpClientTest, ThousandConcurrentRequestsShareFewConnections) {
  constexpr int kRequests = 1000;
  constexpr int kMaxConnections = 8;
  TestHttpServer server([](const Req& req, Conn& c) {
    c.Write(TestHttpServer::Response(200, req.target.substr(1)));
  });
  CurlHttpClientOptions options = Options();
  options.max_connections = kMaxConnections;
  options.max_connections_per_host = kMaxConnections;
  CurlHttpClient client(options);

  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<int> calls(kRequests, 0);
  std::vector<std::string> failures;
  // Four sending threads: Send is thread-safe.
  std::vector<std::thread> senders;
  for (int s = 0; s < 4; ++s) {
    senders.emplace_back([&, s] {
      for (int i = s; i < kRequests; i += 4) {
        client.Send(
            Get(server.Url(absl::StrCat("/", i))),
            [&, i](absl::StatusOr<HttpResponse> r) {
              std::lock_guard<std::mutex> lock(mu);
              ++calls[i];
              if (!r.ok()) {
                failures.push_back(r.status().ToString());
              } else if (r->status != 200 || r->body != absl::StrCat(i)) {
                failures.push_back(absl::StrCat("bad answer to ", i));
              }
              if (++done == kRequests) cv.notify_all();
            });
      }
    });
  }
  for (auto& t : senders) t.join();
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 60s, [&] { return done == kRequests; }))
      << done << " of " << kRequests << " completed";
  EXPECT_THAT(failures, ::testing::IsEmpty());
  EXPECT_THAT(calls, Each(1));
  EXPECT_EQ(server.requests().size(), static_cast<size_t>(kRequests));
  EXPECT_LE(server.connections(), kMaxConnections);
}

TEST(CurlHttpClientTest, DestructorCancelsInFlightRequestsOnce) {
  // With two connections, requests end up in every state the destructor
  // must handle: on the wire, queued inside curl for a connection, and
  // posted to the loop but not yet started.
  constexpr int kOnTheWire = 2;
  constexpr int kRequests = 10;
  TestHttpServer server([](const Req&, Conn& c) { c.Stall(); });
  CurlHttpClientOptions options = Options();
  options.max_connections = kOnTheWire;
  auto client = std::make_unique<CurlHttpClient>(options);

  std::mutex mu;
  std::vector<int> calls(kRequests, 0);
  std::vector<absl::StatusCode> codes(kRequests, absl::StatusCode::kOk);
  auto send = [&](int i) {
    client->Send(Get(server.Url()), [&, i](absl::StatusOr<HttpResponse> r) {
      std::lock_guard<std::mutex> lock(mu);
      ++calls[i];
      codes[i] = r.status().code();
    });
  };
  for (int i = 0; i < kRequests - 2; ++i) send(i);
  ASSERT_TRUE(server.WaitForRequests(kOnTheWire));
  for (int i = kRequests - 2; i < kRequests; ++i) send(i);
  client.reset();

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_THAT(calls, Each(1));
  EXPECT_THAT(codes, Each(absl::StatusCode::kCancelled));
  EXPECT_EQ(server.requests().size(), static_cast<size_t>(kOnTheWire));
}

TEST(CurlHttpClientTest, PerHostCapBoundsConnections) {
  constexpr int kRequests = 50;
  TestHttpServer server;
  CurlHttpClientOptions options = Options();
  options.max_connections_per_host = 2;
  CurlHttpClient client(options);
  std::vector<std::future<absl::StatusOr<HttpResponse>>> results;
  std::vector<std::promise<absl::StatusOr<HttpResponse>>> promises(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    results.push_back(promises[i].get_future());
    client.Send(Get(server.Url()), [&, i](absl::StatusOr<HttpResponse> r) {
      promises[i].set_value(std::move(r));
    });
  }
  for (auto& f : results) {
    absl::StatusOr<HttpResponse> r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_LE(server.connections(), 2);
}

TEST(CurlHttpClientTest, IdleClockStartsWhenTheRequestIsSent) {
  // The second request waits behind the first for the only connection for
  // longer than its idle timeout; waiting in the queue is not silence.
  TestHttpServer server([](const Req& req, Conn& c) {
    if (req.target == "/slow") {
      c.Write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n");
      for (int i = 0; i < 6; ++i) {
        if (!c.Pause(100ms) || !c.Write("\n")) return;
      }
    } else {
      c.Write(TestHttpServer::Response(200, "fast"));
    }
  });
  CurlHttpClientOptions options = Options();
  options.max_connections = 1;
  CurlHttpClient client(options);
  std::promise<absl::StatusOr<HttpResponse>> slow, fast;
  HttpRequest slow_req = Get(server.Url("/slow"));
  slow_req.idle_timeout = 300ms;
  HttpRequest fast_req = Get(server.Url("/fast"));
  fast_req.idle_timeout = 300ms;
  client.Send(slow_req, [&](absl::StatusOr<HttpResponse> r) {
    slow.set_value(std::move(r));
  });
  ASSERT_TRUE(server.WaitForRequests(1));
  client.Send(fast_req, [&](absl::StatusOr<HttpResponse> r) {
    fast.set_value(std::move(r));
  });
  absl::StatusOr<HttpResponse> s = slow.get_future().get();
  absl::StatusOr<HttpResponse> f = fast.get_future().get();
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->body, "fast");
  EXPECT_EQ(server.connections(), 1);
}

TEST(CurlHttpClientTest, CallbackMaySendAgain) {
  TestHttpServer server;
  CurlHttpClient client(Options());
  std::promise<absl::StatusOr<HttpResponse>> second;
  client.Send(Get(server.Url("/1")), [&](absl::StatusOr<HttpResponse> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    client.Send(Get(server.Url("/2")), [&](absl::StatusOr<HttpResponse> r2) {
      second.set_value(std::move(r2));
    });
  });
  absl::StatusOr<HttpResponse> r = second.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.connections(), 1);
}

}  // namespace
}  // namespace distillery
