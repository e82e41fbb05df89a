#include "common/dataset/split.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include <xxhash.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace distillery {
namespace {

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status Bad(std::string_view text, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--split '", std::string(text), "': ", why));
}

}  // namespace

absl::StatusOr<SplitSpec> ParseSplitSpec(std::string_view text) {
  SplitSpec spec;
  std::set<std::string> names;
  double sum = 0;
  if (text.empty()) return Bad(text, "empty; expected NAME=FRACTION,...");
  for (absl::string_view item : absl::StrSplit(
           absl::string_view(text.data(), text.size()), ',')) {
    const std::string part(item);
    const size_t eq = part.find('=');
    if (eq == std::string::npos) {
      return Bad(text, absl::StrCat("'", part, "' is not NAME=FRACTION"));
    }
    const std::string name = part.substr(0, eq);
    const std::string number = part.substr(eq + 1);
    if (!ValidName(name)) {
      return Bad(text, absl::StrCat("split name '", name,
                                    "' must be non-empty letters, digits, "
                                    "'_' or '-'"));
    }
    if (!names.insert(name).second) {
      return Bad(text, absl::StrCat("split name '", name, "' repeats"));
    }
    char* end = nullptr;
    const double fraction = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() ||
        !(fraction > 0 && fraction <= 1)) {
      return Bad(text, absl::StrCat("fraction of '", name,
                                    "' must be a number in (0, 1], got '",
                                    number, "'"));
    }
    sum += fraction;
    spec.parts.push_back({name, fraction});
  }
  if (std::fabs(sum - 1.0) > 1e-6) {
    return Bad(text, absl::StrCat("fractions sum to ", sum, ", not 1"));
  }
  return spec;
}

int AssignSplit(const SplitSpec& spec, std::string_view prompt_id,
                uint64_t seed) {
  const uint64_t h =
      XXH3_64bits_withSeed(prompt_id.data(), prompt_id.size(), seed);
  const double u = static_cast<double>(h >> 11) / 9007199254740992.0;  // 2^53
  double cumulative = 0;
  for (size_t i = 0; i < spec.parts.size(); ++i) {
    cumulative += spec.parts[i].fraction;
    if (u < cumulative) return static_cast<int>(i);
  }
  return static_cast<int>(spec.parts.size()) - 1;  // rounding at the top
}

std::string SplitPath(const std::string& path, const std::string& name) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  if (dot == std::string::npos || dot <= base) {
    return absl::StrCat(path, ".", name);
  }
  return absl::StrCat(path.substr(0, dot), ".", name, path.substr(dot));
}

}  // namespace distillery
