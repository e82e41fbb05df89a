#include "tests/testing/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

extern char** environ;

namespace distillery::testing {

std::string BinDir() {
  const char* dir = std::getenv("DISTILLERY_BIN_DIR");
  return dir ? dir : "build/bin";
}

namespace {
std::atomic<int> g_counter{0};
}

Process::Process(const std::string& binary, std::vector<std::string> args,
                 const std::string& log_dir) {
  const int n = g_counter++;
  const bool absolute = binary.find('/') != std::string::npos;
  const std::string name =
      absolute ? binary.substr(binary.rfind('/') + 1) : binary;
  stdout_path_ = log_dir + "/" + name + "." + std::to_string(n) + ".out";
  stderr_path_ = log_dir + "/" + name + "." + std::to_string(n) + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const std::string path = absolute ? binary : BinDir() + "/" + binary;
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(),
                  environ) != 0) {
    pid_ = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
}

Process::~Process() {
  if (Running()) {
    kill(pid_, SIGKILL);
    Wait();
  }
}

bool Process::Running() {
  if (pid_ <= 0 || status_ != -1) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

std::string Process::WaitForAddress() {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string out = Stdout();
    const size_t at = out.find("listening on ");
    if (at != std::string::npos) {
      const size_t end = out.find('\n', at);
      if (end != std::string::npos) {
        return out.substr(at + 13, end - at - 13);
      }
    }
    if (!Running()) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

void Process::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

int Process::Wait() {
  if (pid_ <= 0) return -1;
  if (status_ == -1) {
    int status = 0;
    waitpid(pid_, &status, 0);
    status_ = status;
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

CommandResult RunCommand(const std::string& binary,
                         const std::vector<std::string>& args,
                         const std::string& log_dir, int timeout_seconds) {
  Process p(binary, args, log_dir);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (p.Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CommandResult result;
  if (p.Running()) p.Signal(SIGKILL);
  result.exit_code = p.Wait();
  result.out = p.Stdout();
  result.err = p.Stderr();
  return result;
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  const std::string host = address.substr(0, colon);
  const int port = std::stoi(address.substr(colon + 1));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(),
            &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address +
                              "\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) < 0) {
    close(fd);
    return "";
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

bool WaitUntil(const std::function<bool()>& condition, int timeout_seconds,
               int poll_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  return condition();
}

}  // namespace distillery::testing
