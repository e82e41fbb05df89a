// ExportFile on a real file system in a temp dir: whole or absent, unique
// temporary names, and a second export to the same file refused while the
// first runs.
#include "services/cli/export_writer.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace distillery::cli {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class ExportFileTest : public ::testing::Test {
 protected:
  static std::string Read(const std::string& path) {
    return distillery::testing::ReadFile(path);
  }
  // Names in the directory other than `except`.
  std::vector<std::string> Others(const std::string& except) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename() != except) {
        names.push_back(e.path().filename());
      }
    }
    return names;
  }

  const distillery::testing::TempDir tmp_{"export_writer_test"};
  const std::string dir_ = tmp_.path();
};

TEST_F(ExportFileTest, CommitReplacesTheDestinationWholeAndLeavesNothingElse) {
  const std::string out = dir_ + "/sub/dataset.jsonl";
  absl::StatusOr<std::unique_ptr<ExportFile>> file = ExportFile::Open(out);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE((*file)->Write("one\n").ok());
  EXPECT_FALSE(fs::exists(out)) << "visible before it is whole";
  ASSERT_TRUE((*file)->Write("two\n").ok());
  ASSERT_TRUE((*file)->Commit().ok());
  EXPECT_EQ(Read(out), "one\ntwo\n");
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_NE(st.st_mode & S_IRGRP, 0u) << "an export is an ordinary file";
  for (const auto& e : fs::directory_iterator(dir_ + "/sub")) {
    EXPECT_EQ(e.path().filename(), "dataset.jsonl") << "left behind";
  }
}

TEST_F(ExportFileTest, AbortLeavesTheOldFileAndNoTrace) {
  const std::string out = dir_ + "/dataset.jsonl";
  std::ofstream(out) << "old\n";
  {
    absl::StatusOr<std::unique_ptr<ExportFile>> file = ExportFile::Open(out);
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_TRUE((*file)->Write("half of the new").ok());
  }  // destroyed without Commit: a failed export
  EXPECT_EQ(Read(out), "old\n");
  EXPECT_TRUE(Others("dataset.jsonl").empty());
}

TEST_F(ExportFileTest, SecondExportToTheSameFileIsRefusedWhileTheFirstRuns) {
  const std::string out = dir_ + "/dataset.jsonl";
  absl::StatusOr<std::unique_ptr<ExportFile>> first = ExportFile::Open(out);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->Write("first\n").ok());

  absl::StatusOr<std::unique_ptr<ExportFile>> second = ExportFile::Open(out);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_THAT(second.status().message(),
              HasSubstr("another export to " + out + " is running"));
  // Another destination in the same directory is not held up.
  absl::StatusOr<std::unique_ptr<ExportFile>> elsewhere =
      ExportFile::Open(dir_ + "/other.jsonl");
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  ASSERT_TRUE((*elsewhere)->Commit().ok());

  ASSERT_TRUE((*first)->Commit().ok());
  EXPECT_EQ(Read(out), "first\n");
  // Once the first is done, the next export goes through.
  absl::StatusOr<std::unique_ptr<ExportFile>> third = ExportFile::Open(out);
  ASSERT_TRUE(third.ok()) << third.status();
  ASSERT_TRUE((*third)->Write("third\n").ok());
  ASSERT_TRUE((*third)->Commit().ok());
  EXPECT_EQ(Read(out), "third\n");
}

TEST_F(ExportFileTest, TemporaryNamesAreUnique) {
  absl::StatusOr<std::unique_ptr<ExportFile>> a =
      ExportFile::Open(dir_ + "/a.jsonl");
  absl::StatusOr<std::unique_ptr<ExportFile>> b =
      ExportFile::Open(dir_ + "/a.jsonl.partial");  // a name the old code used
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->temp_path(), (*b)->temp_path());
  EXPECT_NE((*a)->temp_path(), dir_ + "/a.jsonl.partial");
}

}  // namespace
}  // namespace distillery::cli
