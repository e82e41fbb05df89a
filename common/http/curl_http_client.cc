// libcurl's multi_socket API on a Boost.Asio loop. This file is the loop:
// transfers in flight, sockets, curl's timer, our idle and total deadlines.
// What concerns one request alone (checking it, setting it on an easy
// handle, reading header lines, mapping curl's codes) is in
// curl_easy_request.h.
//
// curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
// wake it (CURLMOPT_TIMERFUNCTION); Asio waits and calls
// curl_multi_socket_action back. Everything except Send() and the destructor
// runs on the one loop thread, so the loop-thread state needs no lock.
//
// Socket ownership: curl opens and closes every socket itself. We wrap each
// fd in a posix::stream_descriptor only to wait on it, and release() it (which
// deregisters it from epoll without closing) when curl says CURL_POLL_REMOVE,
// which curl does before it closes the fd. We chose this over
// CURLOPT_OPENSOCKETFUNCTION/CLOSESOCKETFUNCTION because it leaves curl's
// own socket setup (address families, Unix sockets, happy eyeballs) alone
// and keeps the ownership rule to one line: Asio never closes a curl fd.
//
// Timeouts: curl enforces the connect timeout (CURLOPT_CONNECTTIMEOUT_MS,
// which covers DNS, TCP and TLS). The idle and total timeouts are ours, on
// one Asio timer per transfer: curl's LOW_SPEED_TIME counts whole seconds,
// and curl reports every timeout as the same CURLE_OPERATION_TIMEDOUT while
// callers are told which one fired. The idle clock starts when the request
// goes on the wire (CURLOPT_PREREQFUNCTION), so time queued behind the
// connection cap is not silence, and restarts on every byte received or
// sent: a server that pads with blank lines stays alive, one that sends
// nothing does not.

#include "common/http/curl_http_client.h"

#include <curl/curl.h>
#include <pthread.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/http/curl_easy_request.h"

namespace distillery {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using curl_request::Millis;

// Bounds the easy handles kept for reuse: enough for the requests a busy
// client has in flight, little memory when it is idle.
constexpr size_t kMaxIdleEasyHandles = 1024;

void EnsureCurlGlobalInit() {
  // curl_global_init is not guaranteed thread-safe; a function-local static
  // runs it exactly once. It is never paired with curl_global_cleanup since
  // other clients may live until exit.
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)rc;  // A failure surfaces as curl_easy_init returning null.
}

}  // namespace

class CurlHttpClient::Impl {
 public:
  explicit Impl(CurlHttpClientOptions options);
  ~Impl();

  void Send(HttpRequest request, Callback done);

 private:
  // One request in flight. Owned by transfers_; curl's easy handle points
  // back at it through CURLOPT_PRIVATE and the callbacks' user data.
  struct Transfer {
    Transfer(Impl* impl, uint64_t id, HttpRequest request, Callback done)
        : impl(impl),
          id(id),
          request(std::move(request)),
          done(std::move(done)),
          timer(impl->io_) {
      error[0] = '\0';
    }
    ~Transfer() {
      if (easy != nullptr) curl_easy_cleanup(easy);
      curl_slist_free_all(headers);
    }

    Impl* const impl;
    const uint64_t id;
    const HttpRequest request;  // owns the body curl sends (POSTFIELDS)
    Callback done;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    HttpResponse response;
    TimePoint start;
    TimePoint total_deadline;
    bool on_the_wire = false;  // the idle clock runs once this is set
    TimePoint last_activity;
    TimePoint armed_deadline;  // when `timer` fires
    curl_off_t uploaded = 0;
    absl::Status abort;        // why one of our callbacks stopped the transfer
    asio::steady_timer timer;  // idle and total deadlines
    char error[CURL_ERROR_SIZE];
  };

  // A socket curl asked us to watch. Shared with pending wait handlers, which
  // may run after curl has dropped the socket (then `closed` is set).
  struct Socket {
    Socket(asio::io_context& io, curl_socket_t fd) : fd(fd), descriptor(io) {}
    const curl_socket_t fd;
    asio::posix::stream_descriptor descriptor;
    int what = 0;  // CURL_POLL_IN / CURL_POLL_OUT bits curl wants now
    bool read_pending = false;
    bool write_pending = false;
    bool closed = false;
  };

  // All below run on the loop thread.
  void Start(HttpRequest request, Callback done);
  absl::Status Configure(Transfer& t);
  // Returns a finished transfer's easy handle (already removed from the
  // multi) for reuse, or frees it.
  void RecycleEasy(CURL* easy);
  void ArmDeadline(Transfer& t);
  void OnDeadline(uint64_t id);
  void Complete(uint64_t id, absl::StatusOr<HttpResponse> result);
  absl::StatusOr<HttpResponse> Result(Transfer& t, CURLcode code);
  void ProcessMessages();
  void Shutdown();

  void OnSocket(curl_socket_t fd, int what);
  void Watch(const std::shared_ptr<Socket>& socket, int direction);
  void OnSocketReady(const std::shared_ptr<Socket>& socket, int direction,
                     const error_code& ec);
  void OnCurlTimer(long timeout_ms);
  void SocketAction(curl_socket_t fd, int events);

  static int SocketCallback(CURL* easy, curl_socket_t fd, int what, void* userp,
                            void* socketp);
  static int TimerCallback(CURLM* multi, long timeout_ms, void* userp);
  static size_t HeaderCallback(char* data, size_t size, size_t n, void* userp);
  static size_t WriteCallback(char* data, size_t size, size_t n, void* userp);
  static int ProgressCallback(void* userp, curl_off_t dltotal, curl_off_t dlnow,
                              curl_off_t ultotal, curl_off_t ulnow);
  static int PrereqCallback(void* userp, char* remote_ip, char* local_ip,
                            int remote_port, int local_port);

  const CurlHttpClientOptions options_;
  // The deadlines here are real network time run by curl and Asio timers, so
  // a FakeClock would mean nothing; the real one is used directly.
  Clock& clock_ = RealClock::Get();

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer curl_timer_;

  // Loop-thread state.
  CURLM* multi_ = nullptr;
  bool shut_down_ = false;
  bool timeout_posted_ = false;  // a zero-timeout action is queued
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  std::unordered_map<curl_socket_t, std::shared_ptr<Socket>> sockets_;
  // Easy handles of finished transfers, reset and ready for the next ones:
  // curl_easy_init and curl_easy_cleanup allocate and free the handle and
  // its receive buffer, about 5% of a busy worker's CPU (perf, bench/run
  // e2e). At most kMaxIdleEasyHandles are kept.
  std::vector<CURL*> idle_easy_;

  absl::Mutex mu_;
  // Set by the destructor; Send() then answers CANCELLED itself.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;  // last: starts once everything above exists
};

CurlHttpClient::Impl::Impl(CurlHttpClientOptions options)
    : options_(std::move(options)),
      work_(asio::make_work_guard(io_)),
      curl_timer_(io_) {
  EnsureCurlGlobalInit();
  multi_ = curl_multi_init();
  if (multi_ != nullptr) {
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::SocketCallback);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::TimerCallback);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING,
                      options_.enable_http2 ? long{CURLPIPE_MULTIPLEX}
                                            : long{CURLPIPE_NOTHING});
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      long{options_.max_connections});
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      long{options_.max_connections_per_host});
    curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS,
                      long{options_.max_concurrent_streams});
    if (options_.max_connections > 0) {
      // Keep as many idle connections as we may open, for reuse.
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                        long{options_.max_connections});
    }
  }
  thread_ = std::thread([this] { io_.run(); });
  pthread_setname_np(thread_.native_handle(), "http-client");
}

CurlHttpClient::Impl::~Impl() {
  if (std::this_thread::get_id() == thread_.get_id()) {
    // Joining our own thread would deadlock; this is a caller bug.
    std::fprintf(stderr, "CurlHttpClient destroyed from its own callback\n");
    std::abort();
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // Posted under the lock, so it runs after every Start that Send posted.
    asio::post(io_, [this] { Shutdown(); });
  }
  thread_.join();
}

void CurlHttpClient::Impl::Send(HttpRequest request, Callback done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      asio::post(io_, [this, request = std::move(request),
                       done = std::move(done)]() mutable {
        Start(std::move(request), std::move(done));
      });
      return;
    }
  }
  done(absl::CancelledError("HTTP client is shutting down"));
}

void CurlHttpClient::Impl::Start(HttpRequest request, Callback done) {
  if (shut_down_) {
    done(absl::CancelledError("HTTP client is shutting down"));
    return;
  }
  if (multi_ == nullptr) {
    done(absl::InternalError("curl_multi_init failed"));
    return;
  }
  if (absl::Status valid = curl_request::ValidateRequest(request); !valid.ok()) {
    done(std::move(valid));
    return;
  }
  const uint64_t id = next_id_++;
  auto owned =
      std::make_unique<Transfer>(this, id, std::move(request), std::move(done));
  Transfer& t = *owned;
  t.start = clock_.Now();
  t.total_deadline = t.start + t.request.total_timeout;
  if (absl::Status configured = Configure(t); !configured.ok()) {
    Callback cb = std::move(t.done);
    owned.reset();
    cb(std::move(configured));
    return;
  }
  transfers_.emplace(id, std::move(owned));
  if (CURLMcode mc = curl_multi_add_handle(multi_, t.easy); mc != CURLM_OK) {
    Complete(id, absl::InternalError(absl::StrCat("curl_multi_add_handle: ",
                                                  curl_multi_strerror(mc))));
    return;
  }
  ArmDeadline(t);
}

absl::Status CurlHttpClient::Impl::Configure(Transfer& t) {
  if (!idle_easy_.empty()) {
    t.easy = idle_easy_.back();
    idle_easy_.pop_back();
  } else {
    t.easy = curl_easy_init();
  }
  if (t.easy == nullptr) return absl::InternalError("curl_easy_init failed");
  const HttpRequest& r = t.request;
  CURL* e = t.easy;

  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::HeaderCallback);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::WriteCallback);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &Impl::ProgressCallback);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &Impl::PrereqCallback);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);

  return curl_request::SetRequestOptions(e, r, options_, &t.headers);
}

void CurlHttpClient::Impl::RecycleEasy(CURL* easy) {
  if (shut_down_ || idle_easy_.size() >= kMaxIdleEasyHandles) {
    curl_easy_cleanup(easy);
    return;
  }
  // Forgets every option (and so every pointer into the finished Transfer)
  // but keeps the handle's allocations for the next request.
  curl_easy_reset(easy);
  idle_easy_.push_back(easy);
}

void CurlHttpClient::Impl::ArmDeadline(Transfer& t) {
  const TimePoint now = clock_.Now();
  // Before the request is on the wire the idle clock does not run, but the
  // timer still wakes one idle timeout from now (OnDeadline then re-arms):
  // that deadline is never later than the one the idle clock will set, so
  // PrereqCallback need not re-arm (a cancelled wait costs a handler run).
  const TimePoint idle_from = t.on_the_wire ? t.last_activity : now;
  const TimePoint deadline =
      std::min(t.total_deadline, idle_from + t.request.idle_timeout);
  t.armed_deadline = deadline;
  t.timer.expires_after(deadline - now);
  // By id, not pointer: a handler already queued may outlive the transfer.
  t.timer.async_wait([this, id = t.id](const error_code& ec) {
    if (!ec) OnDeadline(id);
  });
}

void CurlHttpClient::Impl::OnDeadline(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  Transfer& t = *it->second;
  const TimePoint now = clock_.Now();
  if (now >= t.total_deadline) {
    Complete(id, absl::DeadlineExceededError(absl::StrCat(
                     "total timeout (", Millis(t.request.total_timeout),
                     " ms) exceeded")));
  } else if (t.on_the_wire && now - t.last_activity >= t.request.idle_timeout) {
    Complete(id, absl::DeadlineExceededError(
                     absl::StrCat("idle timeout: nothing received for ",
                                  Millis(t.request.idle_timeout), " ms")));
  } else {
    ArmDeadline(t);  // activity since the timer was set, or still queued
  }
}

void CurlHttpClient::Impl::Complete(uint64_t id,
                                    absl::StatusOr<HttpResponse> result) {
  auto it = transfers_.find(id);
  std::unique_ptr<Transfer> t = std::move(it->second);
  transfers_.erase(it);
  // May call SocketCallback/TimerCallback; both are safe to re-enter here.
  curl_multi_remove_handle(multi_, t->easy);
  RecycleEasy(std::exchange(t->easy, nullptr));
  Callback done = std::move(t->done);
  t.reset();
  done(std::move(result));
}

absl::StatusOr<HttpResponse> CurlHttpClient::Impl::Result(Transfer& t,
                                                          CURLcode code) {
  if (!t.abort.ok()) return t.abort;
  if (code != CURLE_OK) return curl_request::StatusFromCurlCode(code, t.error, t.request);
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  t.response.status = static_cast<int>(status);
  t.response.elapsed = clock_.Now() - t.start;
  return std::move(t.response);
}

void CurlHttpClient::Impl::ProcessMessages() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    char* priv = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    auto* t = reinterpret_cast<Transfer*>(priv);
    // `msg` dies with the removal inside Complete; read it first.
    absl::StatusOr<HttpResponse> result = Result(*t, msg->data.result);
    Complete(t->id, std::move(result));
  }
}

void CurlHttpClient::Impl::Shutdown() {
  shut_down_ = true;
  // A callback that calls Send() now gets CANCELLED inline (stopping_).
  while (!transfers_.empty()) {
    Complete(transfers_.begin()->first,
             absl::CancelledError("HTTP client shut down"));
  }
  // Stop watching curl's remaining (idle, cached) connections before curl
  // closes them, so epoll never holds a closed fd.
  for (auto& [fd, socket] : sockets_) {
    socket->closed = true;
    socket->descriptor.release();
  }
  sockets_.clear();
  for (CURL* easy : idle_easy_) curl_easy_cleanup(easy);
  idle_easy_.clear();
  if (multi_ != nullptr) {
    curl_multi_cleanup(multi_);
    multi_ = nullptr;
  }
  curl_timer_.cancel();
  work_.reset();  // run() returns once the cancelled handlers have drained
}

void CurlHttpClient::Impl::SocketAction(curl_socket_t fd, int events) {
  if (multi_ == nullptr) return;
  int running = 0;
  curl_multi_socket_action(multi_, fd, events, &running);
  ProcessMessages();
}

void CurlHttpClient::Impl::OnSocket(curl_socket_t fd, int what) {
  if (what == CURL_POLL_REMOVE) {
    auto it = sockets_.find(fd);
    if (it == sockets_.end()) return;
    it->second->closed = true;
    // Deregisters and cancels pending waits without closing: curl owns fd.
    it->second->descriptor.release();
    sockets_.erase(it);
    return;
  }
  if (shut_down_) return;
  std::shared_ptr<Socket>& socket = sockets_[fd];
  if (socket == nullptr) {
    socket = std::make_shared<Socket>(io_, fd);
    error_code ec;
    socket->descriptor.assign(fd, ec);
    if (ec) {
      // Cannot happen for a socket; if it did, the transfer's own deadline
      // would end it.
      sockets_.erase(fd);
      return;
    }
  }
  socket->what = what;
  if (what & CURL_POLL_IN) Watch(socket, CURL_POLL_IN);
  if (what & CURL_POLL_OUT) Watch(socket, CURL_POLL_OUT);
}

void CurlHttpClient::Impl::Watch(const std::shared_ptr<Socket>& socket,
                                 int direction) {
  bool& pending =
      direction == CURL_POLL_IN ? socket->read_pending : socket->write_pending;
  // A wait left from an earlier interest is still good: it checks `what`.
  if (pending) return;
  pending = true;
  socket->descriptor.async_wait(
      direction == CURL_POLL_IN ? asio::posix::stream_descriptor::wait_read
                                : asio::posix::stream_descriptor::wait_write,
      [this, socket, direction](const error_code& ec) {
        OnSocketReady(socket, direction, ec);
      });
}

void CurlHttpClient::Impl::OnSocketReady(const std::shared_ptr<Socket>& socket,
                                         int direction, const error_code& ec) {
  (direction == CURL_POLL_IN ? socket->read_pending : socket->write_pending) =
      false;
  if (socket->closed || shut_down_ || ec == asio::error::operation_aborted) {
    return;
  }
  if ((socket->what & direction) == 0) return;  // curl lost interest
  if (ec) {
    // Let curl find the error on the socket; no re-arm, or a persistent
    // error would spin. curl re-registers the socket if it still wants it.
    SocketAction(socket->fd, CURL_CSELECT_ERR);
    return;
  }
  SocketAction(socket->fd,
               direction == CURL_POLL_IN ? CURL_CSELECT_IN : CURL_CSELECT_OUT);
  // curl re-registers only when its interest changes; a steady interest
  // needs the wait renewed here.
  if (!socket->closed && (socket->what & direction)) Watch(socket, direction);
}

void CurlHttpClient::Impl::OnCurlTimer(long timeout_ms) {
  if (timeout_ms < 0 || shut_down_) {
    curl_timer_.cancel();
    return;
  }
  // Never call socket_action from inside this callback (curl forbids
  // re-entry); a zero timeout just runs on the next loop turn.
  if (timeout_ms == 0) {
    // Posted rather than put on curl_timer_: curl asks for "now" on every
    // curl_multi_add_handle, and an Asio timer that becomes the earliest
    // costs a timerfd_settime syscall to arm it and another after it fires
    // (a fifth of the loop thread's CPU at 10k requests/s). One posted
    // action serves every "now" asked for before it runs. curl_timer_ may
    // stay armed for an older, later timeout; its firing then is a spurious
    // socket_action, which curl allows (it just finds nothing due).
    if (!timeout_posted_) {
      timeout_posted_ = true;
      asio::post(io_, [this] {
        timeout_posted_ = false;
        if (!shut_down_) SocketAction(CURL_SOCKET_TIMEOUT, 0);
      });
    }
    return;
  }
  curl_timer_.expires_after(std::chrono::milliseconds(timeout_ms));
  curl_timer_.async_wait([this](const error_code& ec) {
    if (!ec && !shut_down_) SocketAction(CURL_SOCKET_TIMEOUT, 0);
  });
}

int CurlHttpClient::Impl::SocketCallback(CURL*, curl_socket_t fd, int what,
                                         void* userp, void*) {
  static_cast<Impl*>(userp)->OnSocket(fd, what);
  return 0;
}

int CurlHttpClient::Impl::TimerCallback(CURLM*, long timeout_ms, void* userp) {
  static_cast<Impl*>(userp)->OnCurlTimer(timeout_ms);
  return 0;
}

size_t CurlHttpClient::Impl::HeaderCallback(char* data, size_t size, size_t n,
                                            void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t len = size * n;
  t->last_activity = t->impl->clock_.Now();
  curl_request::AddHeaderLine(std::string_view(data, len),
                              &t->response.headers);
  return len;
}

size_t CurlHttpClient::Impl::WriteCallback(char* data, size_t size, size_t n,
                                           void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t len = size * n;
  t->last_activity = t->impl->clock_.Now();
  // MAXFILESIZE only checks a declared Content-Length; this catches chunked
  // and close-delimited bodies.
  if (t->response.body.size() + len > t->request.max_response_bytes) {
    t->abort = absl::ResourceExhaustedError(
        absl::StrCat("response body over max_response_bytes (",
                     t->request.max_response_bytes, ")"));
    return CURL_WRITEFUNC_ERROR;
  }
  t->response.body.append(data, len);
  return len;
}

int CurlHttpClient::Impl::ProgressCallback(void* userp, curl_off_t, curl_off_t,
                                           curl_off_t, curl_off_t ulnow) {
  // Downloads are seen by the header and write callbacks; this catches a
  // long upload, during which the server rightly says nothing.
  auto* t = static_cast<Transfer*>(userp);
  if (ulnow > t->uploaded) {
    t->uploaded = ulnow;
    t->last_activity = t->impl->clock_.Now();
  }
  return 0;
}

int CurlHttpClient::Impl::PrereqCallback(void* userp, char*, char*, int, int) {
  // Connected (or reusing a connection): the idle clock starts now.
  auto* t = static_cast<Transfer*>(userp);
  t->on_the_wire = true;
  t->last_activity = t->impl->clock_.Now();
  // The armed deadline is at most an idle timeout from an earlier moment,
  // so it fires no later than the idle clock requires (see ArmDeadline).
  if (t->armed_deadline > t->last_activity + t->request.idle_timeout) {
    t->impl->ArmDeadline(*t);
  }
  return CURL_PREREQFUNC_OK;
}

CurlHttpClient::CurlHttpClient(CurlHttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

CurlHttpClient::~CurlHttpClient() = default;

void CurlHttpClient::Send(HttpRequest request, Callback done) {
  impl_->Send(std::move(request), std::move(done));
}

}  // namespace distillery
