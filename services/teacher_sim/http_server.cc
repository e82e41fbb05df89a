// The only Boost.Beast translation unit of teacher-sim (see http_server.h).
//
// Threading: every io_context is run by exactly one thread, and a connection
// stays on the io_context its socket was accepted onto, so a Session is only
// ever touched by one thread and needs no strand or lock.
#include "services/teacher_sim/http_server.h"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <exception>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace distillery::teacher_sim {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using TcpExecutor = beast::tcp_stream::executor_type;

constexpr auto kWriteTimeout = std::chrono::seconds(60);
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(20);

std::string Lower(beast::string_view s) {
  std::string out(s.data(), s.size());
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

SimResponse PlainError(int status, std::string message) {
  SimResponse r;
  r.status = status;
  r.headers.emplace_back("content-type", "text/plain");
  r.body = std::move(message);
  return r;
}

// One client connection: read a request, answer it (after its delay), and
// read the next one while the client keeps the connection alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServer::Options& options,
          const HttpServer::Handler& handler)
      : stream_(std::move(socket)),
        timer_(stream_.get_executor()),
        options_(options),
        handler_(handler) {}

  void Start() { ReadHeader(); }

  TcpExecutor executor() { return stream_.get_executor(); }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    stream_.expires_after(options_.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    // libcurl waits up to a second for "100 Continue" before sending a large
    // body; answer at once so clients see no artificial stall.
    const auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      continue_.emplace(http::status::continue_, parser_->get().version());
      http::async_write(stream_, *continue_,
                        beast::bind_front_handler(&Session::OnContinueSent,
                                                  shared_from_this()));
      return;
    }
    ReadBody();
  }

  void OnContinueSent(beast::error_code ec, std::size_t) {
    continue_.reset();
    if (ec) return;
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return Close();
    if (ec == http::error::body_limit) {
      return Send(PlainError(413, "request body too large\n"), 11,
                  /*keep_alive=*/false);
    }
    // Any other HTTP parse error (bad version, bad header, ...) gets a 400
    // before the connection closes; if the client already left (a partial
    // message), the write just fails.
    static const auto& kHttpErrors =
        beast::error_code(http::error::bad_target).category();
    if (ec.category() == kHttpErrors) {
      return Send(PlainError(400, "malformed HTTP request\n"), 11,
                  /*keep_alive=*/false);
    }
    // Timeouts, resets and aborts: nothing to answer.
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    http::request<http::string_body> req = parser_->release();
    // Beast's string_view is Boost's, hence the explicit conversions.
    SimRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    for (const auto& field : req) {
      request.headers.emplace_back(Lower(field.name_string()),
                                   std::string(field.value()));
    }
    request.body = std::move(req.body());
    SimResponse response;
    try {
      response = handler_(request);
    } catch (const std::exception& e) {
      response = PlainError(500, absl::StrCat("handler failed: ", e.what()));
    }
    Send(std::move(response), req.version(), req.keep_alive());
  }

  void Send(SimResponse response, unsigned version, bool keep_alive) {
    if (response.wire_fault != WireFault::kNone) {
      return SendFaulty(std::move(response));
    }
    keep_alive_ = keep_alive;
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(response.status));
    res_.set(http::field::server, "teacher-sim");
    for (const auto& [name, value] : response.headers) {
      res_.insert(name, value);
    }
    // An event stream goes out chunked, as real teachers send one (the body
    // is pre-rendered: one chunk); everything else with a content-length.
    const bool event_stream =
        version == 11 &&
        response.Header("content-type").starts_with("text/event-stream");
    res_.body() = std::move(response.body);
    res_.keep_alive(keep_alive);
    if (event_stream) {
      res_.chunked(true);
    } else {
      res_.prepare_payload();
    }
    if (response.delay > Duration::zero()) {
      // The idle timeout must not cut a deliberately slow answer.
      stream_.expires_never();
      timer_.expires_after(response.delay);
      timer_.async_wait(
          beast::bind_front_handler(&Session::OnDelayDone, shared_from_this()));
      return;
    }
    Write();
  }

  // Faults below the HTTP layer, written by hand rather than by Beast's
  // serializer: a reset, a body cut short, padding trickled before the body.
  void SendFaulty(SimResponse response) {
    fault_ = response.wire_fault;
    pieces_.clear();
    next_piece_ = 0;
    pad_interval_ = response.pad_interval;
    if (fault_ != WireFault::kReset) {
      const size_t padding = response.pad.size() * response.pad_count;
      const auto status = http::int_to_status(response.status);
      const beast::string_view reason = http::obsolete_reason(status);
      std::string head = absl::StrCat("HTTP/1.1 ", response.status, " ",
                                      std::string(reason.data(), reason.size()),
                                      "\r\nserver: teacher-sim\r\n");
      for (const auto& [name, value] : response.headers) {
        absl::StrAppend(&head, name, ": ", value, "\r\n");
      }
      absl::StrAppend(&head, "content-length: ",
                      padding + response.body.size(),
                      "\r\nconnection: close\r\n\r\n");
      if (fault_ == WireFault::kTruncate) {
        head += response.body.substr(0, response.body.size() / 2);
        pieces_.push_back(std::move(head));
      } else {
        pieces_.push_back(std::move(head));
        for (int i = 0; i < response.pad_count; ++i) {
          pieces_.push_back(response.pad);
        }
        pieces_.push_back(std::move(response.body));
      }
    }
    stream_.expires_never();
    timer_.expires_after(response.delay);
    timer_.async_wait(beast::bind_front_handler(&Session::OnFaultTimer,
                                                shared_from_this()));
  }

  void OnFaultTimer(beast::error_code ec) {
    if (ec) return;
    if (next_piece_ >= pieces_.size()) return EndFaulty();
    stream_.expires_after(kWriteTimeout);
    net::async_write(
        stream_, net::buffer(pieces_[next_piece_]),
        beast::bind_front_handler(&Session::OnPieceWritten,
                                  shared_from_this()));
  }

  void OnPieceWritten(beast::error_code ec, std::size_t) {
    if (ec) return;
    ++next_piece_;
    // Padding trickles: the wait is before every piece after the headers
    // except the first padding line.
    const bool wait = fault_ == WireFault::kPad && next_piece_ > 1 &&
                      next_piece_ < pieces_.size();
    stream_.expires_never();
    timer_.expires_after(wait ? pad_interval_ : Duration::zero());
    timer_.async_wait(beast::bind_front_handler(&Session::OnFaultTimer,
                                                shared_from_this()));
  }

  void EndFaulty() {
    beast::error_code ignored;
    tcp::socket& socket = stream_.socket();
    if (fault_ != WireFault::kReset) {
      // FIN after the bytes written: a cut body ends short of its length.
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    // Linger 0 makes close() send RST, not FIN.
    socket.set_option(net::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
  }

  void OnDelayDone(beast::error_code ec) {
    if (ec) return;
    Write();
  }

  void Write() {
    stream_.expires_after(kWriteTimeout);
    http::async_write(
        stream_, res_,
        beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (!keep_alive_) return Close();
    ReadHeader();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> res_;
  bool keep_alive_ = false;
  WireFault fault_ = WireFault::kNone;
  std::vector<std::string> pieces_;
  size_t next_piece_ = 0;
  Duration pad_interval_{0};
  const HttpServer::Options& options_;
  const HttpServer::Handler& handler_;
};

class BeastHttpServer : public HttpServer {
 public:
  BeastHttpServer(const Options& options, Handler handler)
      : options_(options), handler_(std::move(handler)) {
    const int n = options_.threads < 1 ? 1 : options_.threads;
    for (int i = 0; i < n; ++i) {
      contexts_.push_back(std::make_unique<net::io_context>(1));
      work_.push_back(net::make_work_guard(*contexts_.back()));
    }
  }

  ~BeastHttpServer() override { Stop(); }

  absl::Status Listen() {
    net::io_context& ctx = *contexts_[0];
    beast::error_code ec;
    tcp::resolver resolver(ctx);
    auto results =
        resolver.resolve(options_.host, std::to_string(options_.port),
                         tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve '", options_.host, "': ", ec.message()));
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    listener_.emplace(ctx);
    tcp::acceptor& acceptor = listener_->acceptor;
    if (acceptor.open(endpoint.protocol(), ec); !ec) {
      acceptor.set_option(net::socket_base::reuse_address(true), ec);
    }
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", endpoint.address().to_string(), ":",
                       endpoint.port(), ": ", ec.message()));
    }
    port_ = acceptor.local_endpoint().port();
    Accept();
    for (auto& context : contexts_) {
      threads_.emplace_back([ctx = context.get()] { ctx->run(); });
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    for (auto& guard : work_) guard.reset();
    for (auto& context : contexts_) context->stop();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    // Destroying the contexts destroys their pending handlers, and with them
    // the sessions and sockets those handlers keep alive.
    listener_.reset();
    work_.clear();
    contexts_.clear();
  }

 private:
  struct Listener {
    explicit Listener(net::io_context& ctx) : acceptor(ctx), retry(ctx) {}
    tcp::acceptor acceptor;
    net::steady_timer retry;
  };

  // Runs on contexts_[0]'s thread only.
  void Accept() {
    net::io_context& target = *contexts_[next_context_++ % contexts_.size()];
    listener_->acceptor.async_accept(
        target, [this](beast::error_code ec, tcp::socket socket) {
          OnAccept(ec, std::move(socket));
        });
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (ec) {
      // Typically out of file descriptors: back off briefly rather than
      // spin, and keep serving the connections already open.
      listener_->retry.expires_after(kAcceptRetryDelay);
      listener_->retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session =
        std::make_shared<Session>(std::move(socket), options_, handler_);
    // Start on the session's own thread (see the threading note above).
    net::post(session->executor(), [session] { session->Start(); });
    Accept();
  }

  const Options options_;
  const Handler handler_;
  std::vector<std::unique_ptr<net::io_context>> contexts_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::optional<Listener> listener_;
  std::vector<std::thread> threads_;
  size_t next_context_ = 0;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const Options& options, Handler handler) {
  auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
  absl::Status status = server->Listen();
  if (!status.ok()) return status;
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace distillery::teacher_sim
