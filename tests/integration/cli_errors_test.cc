// What a newcomer's mistakes meet, through the real binaries: a second
// coordinator on a port in use, inputs that used to crash a command,
// coordinator addresses that gRPC misread or explained in its own words, and
// mistakes that were accepted silently (a finish-reason typo, exporting a
// running job, duplicate prompt ids, a model teacher-sim does not serve).
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

size_t AppendBody(char* data, size_t size, size_t n, void* body) {
  static_cast<std::string*>(body)->append(data, size * n);
  return size * n;
}

// POSTs a JSON `body` to http://ADDRESS/PATH; returns the status (0 when
// the request failed) and the body in `*response`.
long PostJson(const std::string& address, const std::string& path,
              const std::string& body, std::string* response,
              const std::vector<std::string>& headers = {}) {
  CURL* curl = curl_easy_init();
  curl_slist* list = curl_slist_append(nullptr, "content-type: application/json");
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  const std::string url = "http://" + address + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  long code = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return code;
}

std::string ChatBody(const std::string& model) {
  return json({{"model", model},
               {"messages", {{{"role", "user"}, {"content", "hello"}}}}})
      .dump();
}

// Ends with "crashed" when the process died of a signal (abort: 134).
void ExpectNoCrash(const CommandResult& r) {
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
}

class CliErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("cli_errors");
    sim_ = SpawnTeacherSim(dir_, {}, &sim_address_);
    ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
    teachers_ = dir_ + "/teachers.yaml";
    // "offline" has a key no worker holds: its jobs stay running.
    WriteFile(teachers_,
              "teachers:\n" + SimTeacherProfile(sim_address_) +
                  "  - name: offline\n    api: openai\n"
                  "    base_url: http://127.0.0.1:9/v1\n"
                  "    api_key_env: DISTILLERY_CLI_ERRORS_TEST_UNSET_KEY\n");
    unsetenv("DISTILLERY_CLI_ERRORS_TEST_UNSET_KEY");
    coordinator_ = StartCoordinator("127.0.0.1:0", dir_ + "/data");
    address_ = coordinator_->WaitForAddress();
    ASSERT_FALSE(address_.empty()) << coordinator_->Stderr();
    worker_ = SpawnWorker(dir_, address_, teachers_);
  }

  void TearDown() override {
    worker_.reset();
    coordinator_.reset();
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Process> StartCoordinator(const std::string& listen,
                                            const std::string& data_dir) {
    return SpawnCoordinator(dir_, listen, data_dir, teachers_);
  }

  CommandResult Cli(std::vector<std::string> args,
                    const std::string& coordinator = "") {
    args.insert(args.begin(),
                {"--coordinator", coordinator.empty() ? address_ : coordinator});
    return RunCommand("distillery", args, dir_, 60);
  }

  // Submits `text` for `teacher`; returns the job id ("" on failure).
  std::string Submit(const std::string& text,
                     const std::string& teacher = "sim") {
    const std::string file = dir_ + "/p" + std::to_string(files_++) + ".jsonl";
    WriteFile(file, text);
    CommandResult r = Cli(
        {"submit", file, "--teacher", teacher, "--model", "sim-chat"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  std::string dir_, teachers_, sim_address_, address_;
  int files_ = 0;
  std::unique_ptr<Process> sim_, coordinator_, worker_;
};

TEST_F(CliErrorsTest, SecondCoordinatorOnAPortInUseFailsAddressInUse) {
  CommandResult r = RunCommand("distillery-coordinator",
                               {"--listen", address_, "--data-dir",
                                dir_ + "/data2", "--teachers", teachers_},
                               dir_, 60);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("cannot listen on " + address_ +
                       ": address already in use"),
            std::string::npos)
      << r.err;
  // Every call still reaches the one coordinator.
  const std::string job = Submit("{\"prompt\": \"a\"}\n");
  for (int i = 0; i < 10; ++i) {
    EXPECT_NE(Cli({"jobs"}).out.find(job), std::string::npos);
  }
}

TEST_F(CliErrorsTest, SubmittingADirectoryIsAnErrorNotACrash) {
  CommandResult r =
      Cli({"submit", dir_, "--teacher", "sim", "--model", "sim-chat"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: '" + dir_ + "' is a directory; give a JSONL prompt "
                   "file\n");
}

TEST_F(CliErrorsTest, ExportToAPathThatCannotBeAFileIsAnErrorNotACrash) {
  const std::string job = Submit("{\"prompt\": \"a\"}\n");
  ASSERT_EQ(Cli({"watch", job}).exit_code, 0);
  const std::string file = dir_ + "/file.jsonl";
  WriteFile(file, "not a directory\n");
  CommandResult r = Cli({"export", job, "--out", file + "/x.jsonl"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: cannot create the lock file '" + file +
                       "/x.jsonl.lock': Not a directory"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFile(file), "not a directory\n");
  // --out naming a directory: the rename fails, with the reason.
  std::filesystem::create_directories(dir_ + "/outdir/sub");
  r = Cli({"export", job, "--out", dir_ + "/outdir"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot rename the export to '" + dir_ +
                       "/outdir': Is a directory"),
            std::string::npos)
      << r.err;
  // No temporary file or lock is left beside it.
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    EXPECT_NE(name.rfind("outdir", 0) == 0 && name != "outdir", true)
        << "left behind: " << name;
  }
}

TEST_F(CliErrorsTest, UnreachableCoordinatorIsSaidInOurWords) {
  const std::string nowhere = "127.0.0.1:" + std::to_string(PickFreePort());
  const std::string expected =
      "error: cannot reach the coordinator at " + nowhere +
      " (is it running? set --coordinator or DISTILLERY_COORDINATOR)\n";
  CommandResult r = Cli({"jobs"}, nowhere);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, expected);
  // Not blamed on the prompt file.
  const std::string file = dir_ + "/fine.jsonl";
  WriteFile(file, "{\"prompt\": \"a\"}\n");
  r = Cli({"submit", file, "--teacher", "sim", "--model", "sim-chat"}, nowhere);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, expected);
  // watch does not wait forever for a coordinator that never answered.
  r = Cli({"watch", "job-000001"}, nowhere);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, expected);
  // An unknown host: the same words, not a resolver's.
  r = Cli({"jobs"}, "no-such-host.invalid:7070");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: cannot reach the coordinator at "
                        "no-such-host.invalid:7070 (",
                        0),
            0u)
      << r.err;
}

TEST_F(CliErrorsTest, CoordinatorUrlsAreAcceptedOrRefusedClearly) {
  CommandResult r = Cli({"jobs"}, "http://" + address_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"jobs"}, "http://" + address_ + "/");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"jobs"}, "https://" + address_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("https:// is not how TLS is chosen here"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--tls-ca"), std::string::npos) << r.err;
  // The worker reads addresses the same way.
  r = RunCommand("distillery-worker",
                 {"--coordinator", "https://" + address_, "--teachers",
                  teachers_},
                 dir_, 30);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("https:// is not how TLS is chosen here"),
            std::string::npos)
      << r.err;
}

// A host without a port means the coordinator's port, 7070, not gRPC's
// silent 443. Needs 7070 free on this machine.
TEST_F(CliErrorsTest, HostWithoutPortMeansPort7070) {
  auto on_7070 = StartCoordinator("127.0.0.1:7070", dir_ + "/data7070");
  if (on_7070->WaitForAddress().empty()) {
    GTEST_SKIP() << "port 7070 is in use here: " << on_7070->Stderr();
  }
  CommandResult r = Cli({"jobs"}, "127.0.0.1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunCommand("distillery", {"jobs"}, dir_, 60);  // the default address
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CliErrorsTest, FinishReasonTyposAreRefusedListingTheKnownOnes) {
  const std::string job = Submit("{\"prompt\": \"a\"}\n");
  ASSERT_EQ(Cli({"watch", job}).exit_code, 0);
  CommandResult r = Cli({"export", job, "--finish-reason", "stopp"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("--finish-reason: no teacher reports 'stopp'; known: "
                       "stop, length,"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("end_turn"), std::string::npos) << r.err;
  // Known reasons (and 'any') still work.
  r = Cli({"export", job, "--finish-reason", "stop,length"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("exported 1 records"), std::string::npos) << r.err;
  EXPECT_EQ(Cli({"export", job, "--finish-reason", "any"}).exit_code, 0);
}

TEST_F(CliErrorsTest, ExportingAnUnfinishedJobWarnsWithTheCounts) {
  const std::string running = Submit(
      "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\"}\n",
      "offline");
  CommandResult r = Cli({"export", running});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: job " + running +
                       " is running (0 of 3 tasks settled: 0 answered, 0 "
                       "failed); the export holds only what is there so far"),
            std::string::npos)
      << r.err;
  // A finished job exports without a warning.
  const std::string done = Submit("{\"prompt\": \"a\"}\n");
  ASSERT_EQ(Cli({"watch", done}).exit_code, 0);
  r = Cli({"export", done});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

TEST_F(CliErrorsTest, DuplicatePromptIdsAreRefusedNamingBothLines) {
  const std::string file = dir_ + "/dup.jsonl";
  WriteFile(file,
            "{\"id\": \"q1\", \"prompt\": \"a\"}\n"
            "{\"id\": \"q2\", \"prompt\": \"b\"}\n"
            "{\"id\": \"q1\", \"prompt\": \"c\"}\n");
  CommandResult r =
      Cli({"submit", file, "--teacher", "sim", "--model", "sim-chat"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(file + ": line 3: duplicate id \"q1\", first on line 1"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Cli({"jobs"}).out.find("job-"), std::string::npos)
      << "something was stored";
}

TEST_F(CliErrorsTest, TeacherSimServesItsModelListAndAnyModelOnRequest) {
  std::string body;
  EXPECT_EQ(PostJson(sim_address_, "/v1/chat/completions",
                     ChatBody("sim-reasonr"), &body),
            404);
  EXPECT_EQ(json::parse(body).at("error").at("code"), "model_not_found");
  for (const std::string model :
       {"sim-reasoner", "sim-chat", "sim-small", "claude-sim"}) {
    body.clear();
    EXPECT_EQ(PostJson(sim_address_, "/v1/chat/completions", ChatBody(model),
                       &body),
              200)
        << model << ": " << body;
  }
  body.clear();
  const std::string messages =
      json({{"model", "claude-typo"},
            {"max_tokens", 50},
            {"messages", {{{"role", "user"}, {"content", "hi"}}}}})
          .dump();
  EXPECT_EQ(PostJson(sim_address_, "/v1/messages", messages, &body,
                     {"anthropic-version: 2023-06-01"}),
            404);
  EXPECT_EQ(json::parse(body).at("error").at("type"), "not_found_error");

  Process listed("teacher-sim",
                 {"--listen", "127.0.0.1:0", "--models", "a-model,b-model"},
                 dir_);
  const std::string listed_address = listed.WaitForAddress();
  ASSERT_FALSE(listed_address.empty()) << listed.Stderr();
  body.clear();
  EXPECT_EQ(PostJson(listed_address, "/v1/chat/completions",
                     ChatBody("b-model"), &body),
            200);
  body.clear();
  EXPECT_EQ(PostJson(listed_address, "/v1/chat/completions",
                     ChatBody("sim-chat"), &body),
            404);

  Process any("teacher-sim", {"--listen", "127.0.0.1:0", "--any-model"}, dir_);
  const std::string any_address = any.WaitForAddress();
  ASSERT_FALSE(any_address.empty()) << any.Stderr();
  body.clear();
  EXPECT_EQ(PostJson(any_address, "/v1/chat/completions",
                     ChatBody("whatever-7b"), &body),
            200);
}

}  // namespace
}  // namespace distillery::testing
