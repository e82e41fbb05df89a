// Test support: temporary directories and whole-file reads and writes, for
// unit and integration tests alike. Not thread-safe per object; the free
// functions are safe to call from any thread.
#ifndef DISTILLERY_TESTS_TESTING_TEMP_DIR_H_
#define DISTILLERY_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace distillery::testing {

// A fresh directory under the test's temp dir (gtest's TempDir()), removed
// with everything in it when destroyed.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "distillery");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `contents` to `name` in the directory; returns the file's path.
  std::string File(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

// A fresh directory /tmp/distillery-TAG-XXXXXX that outlives the call: the
// caller removes it (integration tests keep it, logs and all, when they
// fail). Throws std::runtime_error when it cannot be made.
std::string MakeTempDir(const std::string& tag);

// The whole file, "" when it cannot be read.
std::string ReadFile(const std::string& path);
// Replaces the file's contents with `text`.
void WriteFile(const std::string& path, const std::string& text);

}  // namespace distillery::testing

#endif  // DISTILLERY_TESTS_TESTING_TEMP_DIR_H_
