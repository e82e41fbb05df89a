// HTTP-level tests of teacher-sim: the real Beast server in-process on
// 127.0.0.1 port 0, and the real teacher-sim binary (from
// $DISTILLERY_BIN_DIR), both driven over plain POSIX sockets so that no
// client HTTP code is shared with the server.
#include "services/teacher_sim/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/teacher_sim/sim_handler.h"

extern char** environ;

namespace distillery::teacher_sim {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Json = nlohmann::json;

constexpr int kIoTimeoutSeconds = 20;
constexpr char kChatBody[] =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is a river?"}],"max_tokens":100})";

// The same for the teacher-sim binary, which serves only its list of
// models unless given --any-model.
constexpr char kSimModelChatBody[] =
    R"({"model":"sim-chat","messages":[{"role":"user","content":"What is a river?"}],"max_tokens":100})";

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking HTTP/1.1 client connection over a raw socket, just enough to
// send hand-written requests and parse Content-Length framed responses.
class RawConnection {
 public:
  static std::unique_ptr<RawConnection> Connect(uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return nullptr;
    timeval tv{kIoTimeoutSeconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return nullptr;
    }
    return std::unique_ptr<RawConnection>(new RawConnection(fd));
  }

  ~RawConnection() { close(fd_); }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response. Returns nullopt on EOF, timeout or garbage.
  std::optional<RawResponse> Read() {
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse r;
    const std::string head = buffer_.substr(0, header_end);
    buffer_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) {
      return std::nullopt;
    }
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(c));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    const size_t length = std::stoul(
        r.headers.count("content-length") ? r.headers["content-length"] : "0");
    while (buffer_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return r;
  }

  // True once the server has closed the connection (EOF or reset).
  bool ClosedByPeer() {
    char c;
    const ssize_t n = recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  explicit RawConnection(int fd) : fd_(fd) {}

  bool Fill() {
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  const int fd_;
  std::string buffer_;
};

std::string PostText(const std::string& target, const std::string& body,
                     const std::string& extra_headers = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: test\r\n" +
         "Content-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string GetText(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

// Sends one request on a fresh connection and reads the response.
std::optional<RawResponse> RoundTrip(uint16_t port, const std::string& text) {
  auto conn = RawConnection::Connect(port);
  if (conn == nullptr || !conn->Send(text)) return std::nullopt;
  return conn->Read();
}

class SimHttpServerTest : public ::testing::Test {
 protected:
  void StartServer(SimHandlerOptions handler_options = {},
                   HttpServer::Options server_options = {}) {
    handler_ = std::make_unique<SimHandler>(handler_options, clock_, nullptr);
    auto server = HttpServer::Start(
        server_options,
        [h = handler_.get()](const SimRequest& r) { return h->Handle(r); });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_NE(server_->port(), 0);
  }

  Json Stats() {
    auto r = RoundTrip(server_->port(), GetText("/stats"));
    EXPECT_TRUE(r.has_value());
    return r ? Json::parse(r->body) : Json();
  }

  FakeClock clock_;
  std::unique_ptr<SimHandler> handler_;
  std::unique_ptr<HttpServer> server_;  // declared last: stops first
};

TEST_F(SimHttpServerTest, AnswersAChatCompletion) {
  StartServer();
  auto r =
      RoundTrip(server_->port(), PostText("/v1/chat/completions", kChatBody));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->Header("content-type"), "application/json");
  EXPECT_EQ(r->Header("x-ratelimit-limit-requests"), "10000");
  EXPECT_THAT(r->Header("x-request-id"), StartsWith("req_"));
  EXPECT_EQ(r->Header("content-length"), std::to_string(r->body.size()));
  const Json j = Json::parse(r->body);
  EXPECT_THAT(j.at("id").get<std::string>(), StartsWith("chatcmpl-"));
  EXPECT_EQ(j.at("object"), "chat.completion");
  EXPECT_THAT(j["choices"][0]["message"]["content"].get<std::string>(),
              HasSubstr("\"What is a river?\""));
  EXPECT_GT(j["usage"]["completion_tokens"], 0);
}

TEST_F(SimHttpServerTest, BadJsonIs400NamingTheProblem) {
  StartServer();
  auto r = RoundTrip(server_->port(),
                     PostText("/v1/chat/completions", R"({"model": "m",)"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  const Json e = Json::parse(r->body).at("error");
  EXPECT_THAT(e.at("message").get<std::string>(),
              HasSubstr("could not parse the JSON body"));
  EXPECT_EQ(e.at("type"), "invalid_request_error");

  r = RoundTrip(server_->port(),
                PostText("/v1/chat/completions", R"({"model":"m"})"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json::parse(r->body)["error"]["param"], "messages");
}

TEST_F(SimHttpServerTest, RequiresTheApiKey) {
  SimHandlerOptions options;
  options.required_api_key = "sk-sim";
  StartServer(options);
  auto r =
      RoundTrip(server_->port(), PostText("/v1/chat/completions", kChatBody));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "invalid_api_key");

  r = RoundTrip(server_->port(),
                PostText("/v1/chat/completions", kChatBody,
                         "Authorization: Bearer sk-wrong\r\n"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);

  r = RoundTrip(server_->port(), PostText("/v1/chat/completions", kChatBody,
                                          "Authorization: Bearer sk-sim\r\n"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(SimHttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  StartServer();
  auto r = RoundTrip(server_->port(), GetText("/v1/models/none"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Json::parse(r->body)["error"]["type"], "invalid_request_error");

  r = RoundTrip(server_->port(), GetText("/v1/chat/completions"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("allow"), "POST");
}

TEST_F(SimHttpServerTest, HealthAndStatsCountRequests) {
  StartServer();
  auto r = RoundTrip(server_->port(), GetText("/health"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json::parse(r->body), Json::parse(R"({"status":"ok"})"));

  Json s = Stats();
  EXPECT_EQ(s.at("requests_total"), 0);
  EXPECT_EQ(s.at("chat_completions_total"), 0);

  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(
        RoundTrip(server_->port(), PostText("/v1/chat/completions", kChatBody))
            ->status,
        200);
  }
  ASSERT_EQ(
      RoundTrip(server_->port(), PostText("/v1/chat/completions", "x"))->status,
      400);
  ASSERT_EQ(RoundTrip(server_->port(), GetText("/nope"))->status, 404);

  s = Stats();
  EXPECT_EQ(s.at("requests_total"), 5);
  EXPECT_EQ(s.at("chat_completions_total"), 3);
  // The same body three times: answered, then answered again twice.
  EXPECT_EQ(s.at("chat_completions_repeated"), 2);
  EXPECT_EQ(s.at("errors_total"), 2);
  EXPECT_EQ(s.at("by_status"), Json::parse(R"({"200":3,"400":1,"404":1})"));
}

TEST_F(SimHttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  StartServer();
  auto conn = RawConnection::Connect(server_->port());
  ASSERT_NE(conn, nullptr);
  // The second request is sent before the first answer is read
  // (pipelined), the third after.
  ASSERT_TRUE(conn->Send(PostText("/v1/chat/completions", kChatBody) +
                         PostText("/v1/chat/completions", "{bad")));
  auto first = conn->Read();
  auto second = conn->Read();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 400);
  ASSERT_TRUE(conn->Send(GetText("/health")));
  auto third = conn->Read();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->status, 200);
  EXPECT_NE(first->Header("connection"), "close");
  EXPECT_EQ(Stats().at("requests_total"), 2);
}

TEST_F(SimHttpServerTest, ClosesWhenTheClientAsks) {
  StartServer();
  auto conn = RawConnection::Connect(server_->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(
      PostText("/v1/chat/completions", kChatBody, "Connection: close\r\n")));
  auto r = conn->Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(conn->ClosedByPeer());

  // HTTP/1.0 without keep-alive closes too.
  conn = RawConnection::Connect(server_->port());
  ASSERT_TRUE(conn->Send("GET /health HTTP/1.0\r\n\r\n"));
  r = conn->Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(conn->ClosedByPeer());
}

TEST_F(SimHttpServerTest, AnswersExpect100ContinueAtOnce) {
  StartServer();
  auto conn = RawConnection::Connect(server_->port());
  ASSERT_NE(conn, nullptr);
  const std::string body = kChatBody;
  ASSERT_TRUE(
      conn->Send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                 "Expect: 100-continue\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n"));
  auto interim = conn->Read();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(conn->Send(body));
  auto r = conn->Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(SimHttpServerTest, RejectsOversizedBodiesWith413) {
  HttpServer::Options options;
  options.max_body_bytes = 1024;
  StartServer({}, options);
  auto r = RoundTrip(server_->port(),
                     PostText("/v1/chat/completions", std::string(2000, ' ')));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
}

TEST_F(SimHttpServerTest, MalformedHttpIs400AndClosed) {
  StartServer();
  auto conn = RawConnection::Connect(server_->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET /health HTTP/9.x\r\n\r\n"));
  auto r = conn->Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(conn->ClosedByPeer());
}

// With a latency, answers wait on timers: many requests on one event loop
// thread are all in flight at once instead of queueing behind each other.
TEST_F(SimHttpServerTest, LatencyDelaysAnswersWithoutBlockingTheLoop) {
  constexpr auto kLatency = std::chrono::milliseconds(400);
  constexpr int kClients = 50;
  SimHandlerOptions options;
  options.latency = kLatency;
  StartServer(options);  // one thread

  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < kClients; ++i) {
    conns.push_back(RawConnection::Connect(server_->port()));
    ASSERT_NE(conns.back(), nullptr);
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& c : conns) {
    ASSERT_TRUE(c->Send(PostText("/v1/chat/completions", kChatBody)));
  }
  for (auto& c : conns) {
    auto r = c->Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->Header("openai-processing-ms"), "400");
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, kLatency);
  // Served one after another they would take kClients * 400 ms = 20 s.
  EXPECT_LT(elapsed, 5 * kLatency);
}

TEST_F(SimHttpServerTest, ServesConcurrentClientsOnSeveralThreads) {
  HttpServer::Options options;
  options.threads = 3;
  StartServer({}, options);
  constexpr int kClients = 6, kRequests = 20;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto conn = RawConnection::Connect(server_->port());
      if (conn == nullptr) return;
      for (int i = 0; i < kRequests; ++i) {
        const std::string body =
            R"({"model":"m","messages":[{"role":"user","content":"q)" +
            std::to_string(c * 1000 + i) + R"("}]})";
        if (!conn->Send(PostText("/v1/chat/completions", body))) return;
        auto r = conn->Read();
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_EQ(Stats().at("chat_completions_total"), kClients * kRequests);
}

TEST_F(SimHttpServerTest, StartFailsOnAPortInUse) {
  StartServer();
  HttpServer::Options options;
  options.port = server_->port();
  auto second = HttpServer::Start(
      options, [](const SimRequest&) { return SimResponse{}; });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SimHttpServerTest, StopClosesConnectionsAndTheListener) {
  SimHandlerOptions options;
  options.latency = std::chrono::minutes(10);  // an answer that never comes
  StartServer(options);
  const uint16_t port = server_->port();
  auto conn = RawConnection::Connect(port);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(PostText("/v1/chat/completions", kChatBody)));
  // Wait until the request is being delayed, so Stop has it in flight.
  while (handler_->stats().Get().chat_completions_total == 0) {
    std::this_thread::yield();
  }
  server_->Stop();
  EXPECT_TRUE(conn->ClosedByPeer());
  EXPECT_EQ(RawConnection::Connect(port), nullptr);
  server_->Stop();  // idempotent
}

// ---------------------------------------------------------------------------
// The teacher-sim binary.

class TeacherSimProcess {
 public:
  // Starts teacher-sim with `args` and reads its first stdout line.
  static std::unique_ptr<TeacherSimProcess> Start(
      const std::vector<std::string>& args) {
    const char* dir = std::getenv("DISTILLERY_BIN_DIR");
    if (dir == nullptr) return nullptr;
    const std::string binary = std::string(dir) + "/teacher-sim";
    int out[2];
    if (pipe(out) != 0) return nullptr;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addclose(&actions, out[1]);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid;
    const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      return nullptr;
    }
    return std::unique_ptr<TeacherSimProcess>(
        new TeacherSimProcess(pid, out[0]));
  }

  ~TeacherSimProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(stdout_);
    if (pidfd_ >= 0) close(pidfd_);
  }

  // Reads stdout up to and including the next newline, or to EOF.
  std::string ReadLine() {
    std::string line;
    char c;
    while (WaitReadable(stdout_) && read(stdout_, &c, 1) == 1) {
      line.push_back(c);
      if (c == '\n') break;
    }
    return line;
  }

  // Sends `signal` and returns the wait status, or -1 if the process does
  // not exit in time.
  int SignalAndWait(int signal) {
    kill(pid_, signal);
    pollfd p{pidfd_, POLLIN, 0};
    if (pidfd_ < 0 || poll(&p, 1, kIoTimeoutSeconds * 1000) != 1) return -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  // Waits for the process to exit by itself; the wait status or -1.
  int Wait() {
    pollfd p{pidfd_, POLLIN, 0};
    if (pidfd_ < 0 || poll(&p, 1, kIoTimeoutSeconds * 1000) != 1) return -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  TeacherSimProcess(pid_t pid, int stdout_fd)
      : pid_(pid),
        stdout_(stdout_fd),
        pidfd_(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))) {}

  static bool WaitReadable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, kIoTimeoutSeconds * 1000) == 1;
  }

  pid_t pid_;
  const int stdout_;
  const int pidfd_;  // readable once the process exits
};

class TeacherSimBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("DISTILLERY_BIN_DIR") == nullptr) {
      GTEST_SKIP() << "DISTILLERY_BIN_DIR is not set (run through ctest)";
    }
  }

  // Starts the binary and parses the port from its listening line.
  std::unique_ptr<TeacherSimProcess> Launch(std::vector<std::string> args,
                                            uint16_t* port) {
    args.insert(args.begin(), {"--listen", "127.0.0.1:0"});
    auto process = TeacherSimProcess::Start(args);
    EXPECT_NE(process, nullptr);
    if (process == nullptr) return nullptr;
    // Exactly "teacher-sim listening on 127.0.0.1:<port>\n".
    const std::string line = process->ReadLine();
    const std::string prefix = "teacher-sim listening on 127.0.0.1:";
    const std::string digits =
        line.rfind(prefix, 0) == 0 && line.back() == '\n'
            ? line.substr(prefix.size(), line.size() - prefix.size() - 1)
            : "";
    const bool well_formed =
        !digits.empty() && digits.size() <= 5 &&
        digits.find_first_not_of("0123456789") == std::string::npos;
    EXPECT_TRUE(well_formed) << "stdout: " << line;
    *port = well_formed ? static_cast<uint16_t>(std::stoi(digits)) : 0;
    EXPECT_NE(*port, 0);
    return process;
  }
};

TEST_F(TeacherSimBinaryTest, PrintsItsPortServesAndExitsOnSigterm) {
  uint16_t port = 0;
  auto sim = Launch({}, &port);
  ASSERT_NE(port, 0);
  auto r = RoundTrip(port, GetText("/health"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  r = RoundTrip(port, PostText("/v1/chat/completions", kSimModelChatBody));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json::parse(RoundTrip(port, GetText("/stats"))->body)
                .at("chat_completions_total"),
            1);

  const int status = sim->SignalAndWait(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(sim->ReadLine(), "");  // exactly one line on stdout
}

TEST_F(TeacherSimBinaryTest, ExitsCleanlyOnSigint) {
  uint16_t port = 0;
  auto sim = Launch({"--threads", "2"}, &port);
  ASSERT_NE(port, 0);
  const int status = sim->SignalAndWait(SIGINT);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(TeacherSimBinaryTest, ErrorRateOneFailsEveryChatRequest) {
  uint16_t port = 0;
  auto sim = Launch({"--error-rate", "1", "--seed", "5"}, &port);
  ASSERT_NE(port, 0);
  auto conn = RawConnection::Connect(port);
  ASSERT_NE(conn, nullptr);
  std::map<int, int> statuses;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(conn->Send(PostText("/v1/chat/completions", kSimModelChatBody)));
    auto r = conn->Read();
    ASSERT_TRUE(r.has_value());
    ++statuses[r->status];
    const Json e = Json::parse(r->body).at("error");
    if (r->status == 429) {
      EXPECT_EQ(r->Header("retry-after"), "1");
      EXPECT_EQ(r->Header("retry-after-ms"), "50");
      EXPECT_EQ(e.at("code"), "rate_limit_exceeded");
    } else {
      EXPECT_EQ(r->status, 500);
      EXPECT_EQ(e.at("type"), "server_error");
    }
  }
  EXPECT_GT(statuses[429], 0);
  EXPECT_GT(statuses[500], 0);
  const Json s = Json::parse(RoundTrip(port, GetText("/stats"))->body);
  EXPECT_EQ(s.at("chat_completions_total"), 0);
  EXPECT_EQ(s.at("errors_total"), 20);
}

TEST_F(TeacherSimBinaryTest, RequireApiKeyAndLatencyFlags) {
  uint16_t port = 0;
  auto sim =
      Launch({"--require-api-key", "sk-flag", "--latency-ms", "150"}, &port);
  ASSERT_NE(port, 0);
  auto r = RoundTrip(port, PostText("/v1/chat/completions", kSimModelChatBody));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);
  const auto start = std::chrono::steady_clock::now();
  r = RoundTrip(port, PostText("/v1/chat/completions", kSimModelChatBody,
                               "Authorization: Bearer sk-flag\r\n"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(150));
}

TEST_F(TeacherSimBinaryTest, RejectsBadFlags) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--listen", "127.0.0.1:0", "--error-rate", "2"},
           {"--listen", "nonsense"},
           {"--latency-ms", "5"}}) {
    auto sim = TeacherSimProcess::Start(args);
    ASSERT_NE(sim, nullptr);
    EXPECT_EQ(sim->ReadLine(), "");  // nothing on stdout
    const int status = sim->Wait();
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_NE(WEXITSTATUS(status), 0);
  }
}

}  // namespace
}  // namespace distillery::teacher_sim
