// Bad input at every edge, through the real binaries: prompt files the
// coordinator or the CLI must refuse (naming the line and the reason, storing
// nothing), requests naming jobs that do not exist or parameters out of
// range, and teacher files that cannot work.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("bad_input");
    teachers_ = dir_ + "/teachers.yaml";
    // Nothing listens there: no request is ever made in these tests.
    WriteFile(
        teachers_,
        "teachers:\n  - name: sim\n    base_url: http://127.0.0.1:9/v1\n");
    coordinator_ =
        SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data", teachers_);
    address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(address_.empty()) << coordinator_->Stderr();
  }

  void TearDown() override {
    coordinator_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(address_, std::move(args), dir_);
  }

  // Submits `text` as a prompt file; expects exit code 2 and returns stderr.
  std::string SubmitRejected(const std::string& text,
                             std::vector<std::string> extra = {}) {
    const std::string file = dir_ + "/prompts.jsonl";
    WriteFile(file, text);
    std::vector<std::string> args = {"submit", file,      "--teacher",
                                     "sim",    "--model", "m"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    ExpectNoJobs();
    return r.err;
  }

  void ExpectNoJobs() {
    CommandResult jobs = Cli({"jobs"});
    EXPECT_EQ(jobs.exit_code, 0) << jobs.err;
    EXPECT_EQ(jobs.out.find("job-"), std::string::npos)
        << "something was stored: " << jobs.out;
  }

  std::string dir_, teachers_, address_;
  std::unique_ptr<Process> coordinator_;
};

TEST_F(BadInputTest, MalformedPromptLinesNameTheLineAndStoreNothing) {
  const std::string good = "{\"prompt\": \"fine\"}\n";
  EXPECT_NE(SubmitRejected(good + good + "{\"prompt\": \"oops\"\n")
                .find("line 3: not valid JSON"),
            std::string::npos);
  EXPECT_NE(SubmitRejected(good + "{\"prompt\": 5}\n")
                .find("line 2: \"prompt\" must be a string"),
            std::string::npos);
  EXPECT_NE(SubmitRejected("{\"messages\": {}}\n")
                .find("line 1: \"messages\" must be a non-empty array"),
            std::string::npos);
  EXPECT_NE(
      SubmitRejected("{\"prompt\": \"   \"}\n").find("line 1: empty prompt"),
      std::string::npos);
  EXPECT_NE(SubmitRejected("[1, 2]\n").find("line 1: expected a JSON object"),
            std::string::npos);
  EXPECT_NE(SubmitRejected(good + "{\"prompt\": \"caf\xC3\x28\"}\n")
                .find("line 2: invalid UTF-8"),
            std::string::npos);
  EXPECT_NE(SubmitRejected("\n\n").find("no prompts"), std::string::npos);
}

// One line nesting 200,000 deep (400 KB, under the size limit) crashed the
// coordinator on submit. It is refused naming the line, nothing is stored,
// and the coordinator goes on serving; 64 levels, the limit, are accepted.
TEST_F(BadInputTest, DeeplyNestedLineIsRefusedAndTheCoordinatorLives) {
  // The whole line counts: its object, "metadata", "a", then the arrays.
  const auto line = [](int arrays) {
    return "{\"prompt\": \"nested\", \"metadata\": {\"a\": " +
           std::string(arrays, '[') + "0" + std::string(arrays, ']') + "}}\n";
  };
  const std::string good = "{\"prompt\": \"fine\"}\n";
  std::string err = SubmitRejected(good + good + line(200'000));
  EXPECT_NE(err.find("line 3: JSON nests deeper than 64 levels"),
            std::string::npos)
      << err;
  ASSERT_TRUE(coordinator_->Running()) << coordinator_->Stderr();
  // A key written with an escape made the parser re-serialise the metadata,
  // recursively: this line killed the coordinator.
  std::string escaped = line(200'000);
  escaped.replace(escaped.find("metadata"), 8, "meta\\u0064ata");
  err = SubmitRejected(good + escaped);
  EXPECT_NE(err.find("line 2: JSON nests deeper than 64 levels"),
            std::string::npos)
      << err;
  ASSERT_TRUE(coordinator_->Running()) << coordinator_->Stderr();
  // 2 + 63 levels: one past the limit; 2 + 62 is the deepest taken.
  err = SubmitRejected(good + line(63));
  EXPECT_NE(err.find("line 2: JSON nests deeper than 64 levels"),
            std::string::npos)
      << err;

  const std::string file = dir_ + "/limit.jsonl";
  WriteFile(file, good + line(62));
  CommandResult r = Cli({"submit", file, "--teacher", "sim", "--model", "m"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(coordinator_->Running());
}

TEST_F(BadInputTest, OversizedPromptIsRefusedByTheCliAndTheCoordinator) {
  const std::string big = "{\"prompt\": \"" + std::string(2 << 20, 'x') + "\"}";
  std::string err = SubmitRejected("{\"prompt\": \"fine\"}\n" + big + "\n");
  EXPECT_NE(err.find("line 2: prompt is " + std::to_string(big.size()) +
                     " bytes, over the limit of 1048576"),
            std::string::npos)
      << err;
  // A CLI told to allow more still meets the coordinator's own limit.
  err = SubmitRejected(big + "\n", {"--max-prompt-bytes", "4000000"});
  EXPECT_NE(err.find("line 1: prompt is " + std::to_string(big.size()) +
                     " bytes, over the limit of 1048576"),
            std::string::npos)
      << err;
}

TEST_F(BadInputTest, GigabyteLineIsRefusedWithoutBeingHeldInMemory) {
  const std::string file = dir_ + "/huge.jsonl";
  const std::string first = "{\"prompt\": \"fine\"}\n{\"prompt\": \"";
  WriteFile(file, first);
  constexpr off_t kLine = off_t{1} << 30;
  // Sparse: a 1 GiB line of NUL bytes costs no disk.
  ASSERT_EQ(truncate(file.c_str(), static_cast<off_t>(first.size()) + kLine),
            0);
  CommandResult r = Cli({"submit", file, "--teacher", "sim", "--model", "m"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("line 2: prompt is " +
                       std::to_string(kLine + first.size() - 19) +
                       " bytes, over the limit of 1048576"),
            std::string::npos)
      << r.err;
  // The largest child waited for so far (the CLIs of this test) stayed small.
  rusage usage{};
  ASSERT_EQ(getrusage(RUSAGE_CHILDREN, &usage), 0);
  EXPECT_LT(usage.ru_maxrss, 256 * 1024) << "KiB";
  ExpectNoJobs();
}

// The coordinator's own checks of every spec field are unit-tested
// (coordinator_test); here, what a user meets through the CLI.
TEST_F(BadInputTest, BadSpecsAreRefusedBeforeAnythingIsStored) {
  const std::string file = dir_ + "/one.jsonl";
  WriteFile(file, "{\"prompt\": \"a\"}\n");
  CommandResult r = Cli({"submit", file, "--teacher", "nope", "--model", "m"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("spec: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'nope'"), std::string::npos) << r.err;
  // {flag, value, what the error says}: the CLI checks some ranges itself,
  // the coordinator the rest.
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--temperature", "5", "--temperature"},
        {"--top-p", "0", "spec: top_p must be in (0, 1]"},
        {"--samples", "100000", "--samples"},
        {"--max-tokens", "-1", "--max-tokens"}}) {
    SCOPED_TRACE(bad[0]);
    r = Cli(
        {"submit", file, "--teacher", "sim", "--model", "m", bad[0], bad[1]});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(bad[2]), std::string::npos) << r.err;
  }
  ExpectNoJobs();
}

TEST_F(BadInputTest, UnknownJobIdsAreNotFoundEverywhere) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"status", "job-424242"},
        {"watch", "job-424242"},
        {"cancel", "job-424242"},
        {"retry", "job-424242"},
        {"export", "job-424242"}}) {
    SCOPED_TRACE(args[0]);
    CommandResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("job-424242"), std::string::npos) << r.err;
  }
}

TEST_F(BadInputTest, TeacherFilesThatCannotWorkAreRefusedAtStart) {
  const std::string bad = dir_ + "/bad.yaml";
  WriteFile(bad,
            "teachers:\n  - name: x\n    api: smoke-signals\n"
            "    base_url: http://127.0.0.1:9/v1\n");
  CommandResult r = RunCommand("distillery-coordinator",
                               {"--listen", "127.0.0.1:0", "--data-dir",
                                dir_ + "/data2", "--teachers", bad},
                               dir_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("smoke-signals"), std::string::npos) << r.err;

  WriteFile(bad, "teachers:\n  - api: openai\n");
  r = RunCommand("distillery-coordinator",
                 {"--listen", "127.0.0.1:0", "--data-dir", dir_ + "/data2",
                  "--teachers", bad},
                 dir_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("name"), std::string::npos) << r.err;

  // A key variable that is not set: the worker has nothing it can use.
  WriteFile(bad,
            "teachers:\n  - name: x\n    base_url: http://127.0.0.1:9/v1\n"
            "    api_key_env: DISTILLERY_TEST_KEY_THAT_IS_NOT_SET\n");
  unsetenv("DISTILLERY_TEST_KEY_THAT_IS_NOT_SET");
  r = RunCommand("distillery-worker",
                 {"--coordinator", address_, "--teachers", bad}, dir_, 30);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("DISTILLERY_TEST_KEY_THAT_IS_NOT_SET"),
            std::string::npos)
      << r.out << r.err;
}

}  // namespace
}  // namespace distillery::testing
