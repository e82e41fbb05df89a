// ExportFile: one destination of `distillery export --out`, written so that
// the file is whole or absent, even across a power loss, and so that two
// exports to the same file cannot interleave. The data goes to a uniquely
// named temporary file beside the destination; Commit fsyncs it, renames it
// over the destination and fsyncs the directory (the rename itself must
// reach the disk). An advisory lock (flock) on DEST.lock, held from Open to
// Commit or Abort, makes a second export to the same file fail at once
// instead of racing the first. Not thread-safe: one per export file.
#ifndef DISTILLERY_SERVICES_CLI_EXPORT_WRITER_H_
#define DISTILLERY_SERVICES_CLI_EXPORT_WRITER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distillery::cli {

class ExportFile {
 public:
  // Creates the destination's directory if needed, takes the lock and opens
  // the temporary file. FAILED_PRECONDITION "another export to PATH is
  // running" when another process holds the lock; UNAVAILABLE naming the
  // file for other I/O errors.
  static absl::StatusOr<std::unique_ptr<ExportFile>> Open(
      const std::string& path);
  ~ExportFile();  // Abort() unless committed
  ExportFile(const ExportFile&) = delete;
  ExportFile& operator=(const ExportFile&) = delete;

  absl::Status Write(std::string_view data);
  // Makes the file durable under its destination name (see above) and
  // releases the lock. On error the destination is unchanged.
  absl::Status Commit();
  // Removes the temporary file and releases the lock; the destination is
  // unchanged.
  void Abort();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  ExportFile(std::string path, std::string temp_path, int fd, int lock_fd)
      : path_(std::move(path)),
        temp_path_(std::move(temp_path)),
        fd_(fd),
        lock_fd_(lock_fd) {}
  void Unlock();

  const std::string path_;
  const std::string temp_path_;
  int fd_;
  int lock_fd_;
};

}  // namespace distillery::cli

#endif  // DISTILLERY_SERVICES_CLI_EXPORT_WRITER_H_
