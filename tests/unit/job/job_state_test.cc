#include "common/job/job_state.h"

#include <gtest/gtest.h>

#include <set>

#include "absl/strings/ascii.h"

namespace distillery {
namespace {

// Every value of the proto enum, found from its descriptor: a state added
// to the proto is covered here without editing the test.
std::vector<v1::JobState> ProtoStates() {
  std::vector<v1::JobState> out;
  const google::protobuf::EnumDescriptor* d = v1::JobState_descriptor();
  for (int i = 0; i < d->value_count(); ++i) {
    if (d->value(i)->number() == v1::JOB_STATE_UNSPECIFIED) continue;
    out.push_back(static_cast<v1::JobState>(d->value(i)->number()));
  }
  return out;
}

TEST(JobStateTest, EveryProtoStateIsListedWithItsLowercaseName) {
  EXPECT_EQ(AllJobStates(), ProtoStates());
  std::set<std::string> names;
  for (v1::JobState s : ProtoStates()) {
    const std::string& name = JobStateName(s);
    EXPECT_EQ("job_state_" + name, absl::AsciiStrToLower(v1::JobState_Name(s)));
    names.insert(name);
  }
  EXPECT_EQ(names.size(), ProtoStates().size());
  EXPECT_EQ(JobStateName(v1::JOB_STATE_PAUSED), "paused");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_UNSPECIFIED), "unknown");
  EXPECT_EQ(JobStateName(static_cast<v1::JobState>(99)), "unknown");
}

TEST(JobStateTest, TerminalStatesAndWhereAWatchStops) {
  std::set<v1::JobState> terminal, settled;
  for (v1::JobState s : ProtoStates()) {
    if (IsTerminal(s)) terminal.insert(s);
    if (IsSettledForNow(s)) settled.insert(s);
  }
  EXPECT_EQ(terminal, (std::set<v1::JobState>{v1::JOB_STATE_COMPLETED,
                                              v1::JOB_STATE_CANCELLED,
                                              v1::JOB_STATE_FAILED}));
  EXPECT_EQ(settled, (std::set<v1::JobState>{
                         v1::JOB_STATE_COMPLETED, v1::JOB_STATE_CANCELLED,
                         v1::JOB_STATE_FAILED, v1::JOB_STATE_PAUSED}));
}

}  // namespace
}  // namespace distillery
