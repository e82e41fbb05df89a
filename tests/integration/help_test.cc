// Every binary's and every CLI subcommand's --help shows each option's
// default and one example (issue 18). The subcommands are read from the
// CLI's own help, so a new one is checked without editing this test.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include "tests/testing/process.h"

namespace distillery::testing {
namespace {

// Options that take a value but have no default: unset means "off" (no
// TLS, no token, no metrics endpoint, no fault). Their help says so.
const std::set<std::string>& Unset() {
  static const auto* names = new std::set<std::string>{
      "--tls-cert",         "--tls-key",          "--tls-ca",
      "--tls-client-ca",    "--tls-server-name",  "--token-file",
      "--auth-token-file",  "--worker-token-file", "--metrics-listen",
      "--require-api-key",  "--fault-rates"};
  return *names;
}

// The option lines of a CLI11 help text whose option takes a value (a type
// such as TEXT or INT follows its names) and shows neither a default (CLI11
// writes TYPE=DEFAULT) nor REQUIRED, less those in Unset().
std::vector<std::string> OptionsWithoutDefault(const std::string& help) {
  static const std::regex kValueOption(
      R"(^\s+((?:-[-\w]+,)*(--[-\w]+))\s+(TEXT|INT|UINT|FLOAT|NUMBER|BOOLEAN)\b.*$)");
  std::vector<std::string> out;
  std::istringstream lines(help);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, kValueOption)) continue;
    if (line.find('=') != std::string::npos) continue;
    if (line.find("REQUIRED") != std::string::npos) continue;
    if (Unset().count(m[2].str())) continue;
    out.push_back(line);
  }
  return out;
}

void ExpectDefaultsAndExample(const std::string& what,
                              const std::vector<std::string>& args) {
  const std::string dir = MakeTempDir("help");
  std::vector<std::string> rest(args.begin() + 1, args.end());
  rest.push_back("--help");
  CommandResult r = RunCommand(args[0], rest, dir, 30);
  ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err;
  for (const std::string& line : OptionsWithoutDefault(r.out)) {
    ADD_FAILURE() << what << ": no default shown: " << line;
  }
  EXPECT_NE(r.out.find("Example:"), std::string::npos)
      << what << ": no example\n" << r.out;
}

TEST(HelpTest, EveryBinaryShowsDefaultsAndAnExample) {
  for (const char* binary : {"distillery", "distillery-coordinator",
                             "distillery-worker", "teacher-sim"}) {
    ExpectDefaultsAndExample(binary, {binary});
  }
}

TEST(HelpTest, EverySubcommandShowsDefaultsAndAnExample) {
  const std::string dir = MakeTempDir("help");
  CommandResult top = RunCommand("distillery", {"--help"}, dir, 30);
  ASSERT_EQ(top.exit_code, 0) << top.err;
  const size_t at = top.out.find("Subcommands:");
  ASSERT_NE(at, std::string::npos) << top.out;
  std::istringstream lines(top.out.substr(at));
  std::string line;
  std::getline(lines, line);
  std::vector<std::string> commands;
  static const std::regex kCommand(R"(^  ([a-z][-a-z]*)\s.*$)");
  while (std::getline(lines, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kCommand)) commands.push_back(m[1].str());
  }
  // The commands the README lists, at least.
  for (const char* expected :
       {"submit", "status", "jobs", "watch", "cancel", "resume",
        "resume-teacher", "retry", "export", "run", "health"}) {
    EXPECT_NE(std::find(commands.begin(), commands.end(), expected),
              commands.end())
        << expected;
  }
  for (const std::string& command : commands) {
    ExpectDefaultsAndExample("distillery " + command, {"distillery", command});
  }
}

TEST(HelpTest, ExportSaysWhereOutputGoesAndRunTakesSplit) {
  const std::string dir = MakeTempDir("help");
  CommandResult exported = RunCommand("distillery", {"export", "--help"}, dir);
  EXPECT_NE(exported.out.find("=standard output"), std::string::npos)
      << exported.out;
  CommandResult run = RunCommand("distillery", {"run", "--help"}, dir);
  EXPECT_NE(run.out.find("--split"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("--workers"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace distillery::testing
