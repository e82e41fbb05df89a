#include "services/cli/export_writer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace distillery::cli {
namespace {

absl::Status IoError(const std::string& what, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat(what, " '", path, "': ", std::strerror(errno)));
}

std::string DirectoryOf(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// The lock file's descriptor, holding an exclusive flock. The lock file is
// unlinked by the holder when it is done, so a lock taken on a file that
// was unlinked (or replaced) meanwhile is no lock: check the path still
// names the locked file, and try again if not.
absl::StatusOr<int> Lock(const std::string& path) {
  const std::string lock_path = path + ".lock";
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot create the lock file", lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      close(fd);
      if (error == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(
            "another export to ", path, " is running (it holds ", lock_path,
            "); wait for it or choose another --out"));
      }
      errno = error;
      return IoError("cannot lock", lock_path);
    }
    struct stat held, named;
    if (fstat(fd, &held) == 0 && stat(lock_path.c_str(), &named) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev) {
      return fd;
    }
    close(fd);  // unlinked by an export that just finished: take the new one
  }
  return absl::UnavailableError(
      absl::StrCat("cannot lock ", lock_path, ": it keeps changing"));
}

absl::Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open directory", dir);
  const int rc = fsync(fd);
  const int error = errno;
  close(fd);
  errno = error;
  return rc == 0 ? absl::OkStatus() : IoError("cannot fsync directory", dir);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExportFile>> ExportFile::Open(
    const std::string& path) {
  const std::string dir = DirectoryOf(path);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  absl::StatusOr<int> lock_fd = Lock(path);
  if (!lock_fd.ok()) return lock_fd.status();
  // Unique even if something ignores the lock (an older distillery).
  std::string temp = path + ".partial.XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    absl::Status s = IoError("cannot write", temp);
    const std::string lock_path = path + ".lock";
    unlink(lock_path.c_str());
    close(*lock_fd);
    return s;
  }
  // mkstemp makes the file 0600; an export is an ordinary file.
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  return std::unique_ptr<ExportFile>(
      new ExportFile(path, std::string(name.data()), fd, *lock_fd));
}

ExportFile::~ExportFile() { Abort(); }

absl::Status ExportFile::Write(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("export file closed");
  while (!data.empty()) {
    const ssize_t n = write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", temp_path_);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status ExportFile::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError("export file closed");
  // The data must be on disk before the rename makes it the destination,
  // or a power loss could leave a destination of zeros or a short file.
  if (fsync(fd_) != 0) {
    absl::Status s = IoError("cannot fsync", temp_path_);
    Abort();
    return s;
  }
  if (close(fd_) != 0) {
    fd_ = -1;
    absl::Status s = IoError("cannot write", temp_path_);
    Abort();
    return s;
  }
  fd_ = -1;
  if (rename(temp_path_.c_str(), path_.c_str()) != 0) {
    absl::Status s = IoError("cannot rename the export to", path_);
    Abort();
    return s;
  }
  // The rename is durable only once the directory is.
  absl::Status s = SyncDirectory(DirectoryOf(path_));
  Unlock();
  return s;
}

void ExportFile::Abort() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
    unlink(temp_path_.c_str());
  } else if (lock_fd_ >= 0) {
    unlink(temp_path_.c_str());  // closed by a failed Commit; no-op after one
  }
  Unlock();
}

void ExportFile::Unlock() {
  if (lock_fd_ < 0) return;
  // Unlinked before the lock is released, so that nobody is left holding a
  // lock on a file the next export would not see (see Lock()).
  const std::string lock_path = path_ + ".lock";
  unlink(lock_path.c_str());
  close(lock_fd_);
  lock_fd_ = -1;
}

}  // namespace distillery::cli
