// TestHttpServer: a tiny scriptable HTTP/1.1 server on 127.0.0.1, port 0,
// for testing the real HttpClient against real sockets. One blocking thread
// per connection, which is plenty for tests and keeps the server too simple
// to share bugs with the client. Handlers write raw bytes, so a test can
// send malformed, truncated, slow or oversized responses.
#ifndef DISTILLERY_TESTS_UNIT_HTTP_TEST_HTTP_SERVER_H_
#define DISTILLERY_TESTS_UNIT_HTTP_TEST_HTTP_SERVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace distillery::testing {

class TestHttpServer {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;  // lower-cased
    std::string body;
    int connection = 0;  // 1, 2, ... in accept order

    bool HasHeader(std::string_view name) const {
      for (const auto& h : headers) {
        if (h.first == name) return true;
      }
      return false;
    }
    std::string Header(std::string_view name) const {
      for (const auto& h : headers) {
        if (h.first == name) return h.second;
      }
      return "";
    }
  };

  // The handler's side of one connection.
  class Connection {
   public:
    Connection(TestHttpServer* server, int fd) : server_(server), fd_(fd) {}
    bool Write(std::string_view data) {
      while (!data.empty()) {
        ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        data.remove_prefix(static_cast<size_t>(n));
      }
      return true;
    }
    // Ends the connection after the handler returns.
    void Close() { close_ = true; }
    // Ends it with a TCP reset instead of a clean close.
    void Reset() {
      linger lg{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      close_ = true;
    }
    // Waits `d` like a slow peer; returns false early when the server stops.
    bool Pause(std::chrono::milliseconds d) { return !server_->WaitStop(d); }
    // Blocks until the server stops: a peer that never answers.
    void Stall() { server_->WaitStop(std::chrono::minutes(5)); }
    bool closing() const { return close_; }

   private:
    TestHttpServer* server_;
    int fd_;
    bool close_ = false;
  };

  using Handler = std::function<void(const Request&, Connection&)>;

  // Answers 200 "ok" to everything until SetHandler.
  TestHttpServer()
      : TestHttpServer([](const Request&, Connection& c) {
          c.Write(Response(200, "ok"));
        }) {}
  explicit TestHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0 ||
        ::listen(listen_fd_, 1024) != 0) {
      std::abort();
    }
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestHttpServer() { Stop(); }

  // A complete response with Content-Length.
  static std::string Response(int status, std::string_view body,
                              std::string_view extra_headers = "") {
    std::string out = absl::StrCat(
        "HTTP/1.1 ", status, " X\r\nContent-Length: ", body.size(), "\r\n");
    out.append(extra_headers).append("\r\n").append(body);
    return out;
  }

  void SetHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }

  int port() const { return port_; }
  std::string Url(const std::string& path = "/") const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }
  int connections() const { return connections_.load(); }
  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Waits until `n` requests have arrived; false after `timeout`.
  bool WaitForRequests(
      size_t n, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    ::shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    ::close(listen_fd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(conn_threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  // True if the server stopped within `d`.
  bool WaitStop(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [&] { return stopping_; });
  }

  void AcceptLoop() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      int id = ++connections_;
      open_fds_.push_back(fd);
      conn_threads_.emplace_back([this, fd, id] { Serve(fd, id); });
    }
  }

  void Serve(int fd, int id) {
    std::string buf;
    Connection conn(this, fd);
    while (!conn.closing()) {
      Request request;
      if (!ReadRequest(fd, buf, request)) break;
      request.connection = id;
      Handler handler;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
        handler = handler_;
      }
      cv_.notify_all();
      handler(request, conn);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::erase(open_fds_, fd);
    }
    ::close(fd);
  }

  static bool ReadRequest(int fd, std::string& buf, Request& request) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore(fd, buf)) return false;
    }
    std::vector<std::string> lines = absl::StrSplit(buf.substr(0, end), "\r\n");
    std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
    if (first.size() < 2) return false;
    request.method = first[0];
    request.target = first[1];
    size_t content_length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
      std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
      if (name == "content-length" &&
          !absl::SimpleAtoi(value, &content_length)) {
        return false;
      }
      request.headers.emplace_back(std::move(name), std::move(value));
    }
    buf.erase(0, end + 4);
    while (buf.size() < content_length) {
      if (!ReadMore(fd, buf)) return false;
    }
    request.body = buf.substr(0, content_length);
    buf.erase(0, content_length);
    return true;
  }

  static bool ReadMore(int fd, std::string& buf) {
    char chunk[65536];
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Handler handler_;
  std::vector<Request> requests_;
  std::vector<int> open_fds_;
  std::vector<std::thread> conn_threads_;
  std::thread accept_thread_;
};

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_UNIT_HTTP_TEST_HTTP_SERVER_H_
