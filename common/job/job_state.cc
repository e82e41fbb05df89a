#include "common/job/job_state.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace distillery {
namespace {

struct StateTable {
  std::vector<v1::JobState> states;
  std::map<int, std::string> names;
};

const StateTable& Table() {
  static const StateTable* table = [] {
    auto* t = new StateTable();
    const google::protobuf::EnumDescriptor* d = v1::JobState_descriptor();
    constexpr absl::string_view kPrefix = "JOB_STATE_";
    for (int i = 0; i < d->value_count(); ++i) {
      const google::protobuf::EnumValueDescriptor* v = d->value(i);
      if (v->number() == v1::JOB_STATE_UNSPECIFIED) continue;
      absl::string_view name = v->name();
      if (absl::StartsWith(name, kPrefix)) name.remove_prefix(kPrefix.size());
      t->states.push_back(static_cast<v1::JobState>(v->number()));
      t->names[v->number()] = absl::AsciiStrToLower(name);
    }
    return t;
  }();
  return *table;
}

}  // namespace

const std::vector<v1::JobState>& AllJobStates() { return Table().states; }

const char* JobModeName(v1::JobMode mode) {
  switch (mode) {
    case v1::JOB_MODE_BATCH:
      return "batch";
    case v1::JOB_MODE_AUTO:
      return "auto";
    default:
      return "online";
  }
}

const std::string& JobStateName(v1::JobState state) {
  static const std::string* unknown = new std::string("unknown");
  const auto& names = Table().names;
  auto it = names.find(static_cast<int>(state));
  return it == names.end() ? *unknown : it->second;
}

bool IsTerminal(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_COMPLETED:
    case v1::JOB_STATE_CANCELLED:
    case v1::JOB_STATE_FAILED:
      return true;
    case v1::JOB_STATE_UNSPECIFIED:
    case v1::JOB_STATE_SUBMITTING:
    case v1::JOB_STATE_RUNNING:
    case v1::JOB_STATE_PAUSED:
      return false;
    case v1::JobState_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::JobState_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  return false;
}

bool IsSettledForNow(v1::JobState state) {
  return IsTerminal(state) || state == v1::JOB_STATE_PAUSED;
}

}  // namespace distillery
