#include "common/config/teachers.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace distillery {
namespace {

const std::set<std::string> kKnownKeys = {
    "name",           "api",           "variant",
    "base_url",       "api_key_env",   "api_key_file",
    "max_tokens_field", "stream",      "default_max_tokens",
    "thinking_budget_tokens", "anthropic_version", "response_format",
    "rpm",            "tpm",           "max_concurrency",
    "max_attempts",   "connect_timeout_ms", "idle_timeout_ms",
    "total_timeout_ms", "max_response_bytes", "pricing", "limit_window_s",
    "batch_max_requests", "batch_max_bytes", "batch_poll_interval_ms",
    "use_n"};

const std::set<std::string> kVariants = {"openai", "deepseek", "vllm",
                                         "ollama", "llamacpp", "sim"};

// A YAML scalar as JSON: booleans, integers and floats as such (YAML 1.2
// core schema), quoted or other scalars as strings.
nlohmann::json ScalarToJson(const YAML::Node& node) {
  const std::string text = node.Scalar();
  if (node.Tag() != "!") {  // "!" marks a quoted scalar
    if (text == "true" || text == "True") return true;
    if (text == "false" || text == "False") return false;
    if (text == "null" || text == "~") return nullptr;
    try {
      size_t used = 0;
      const long long i = std::stoll(text, &used);
      if (used == text.size()) return i;
      const double d = std::stod(text, &used);
      if (used == text.size()) return d;
    } catch (const std::exception&) {
    }
  }
  return text;
}

nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        out[kv.first.as<std::string>()] = YamlToJson(kv.second);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    default:
      return nullptr;
  }
}

absl::Status ReadBool(const YAML::Node& node, const std::string& field,
                      const std::string& origin, const std::string& profile,
                      bool* out) {
  const YAML::Node value = node[field];
  if (!value) return absl::OkStatus();
  try {
    *out = value.as<bool>();
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": teacher '", profile, "': field '", field,
                     "' must be true or false"));
  }
  return absl::OkStatus();
}

absl::Status FieldError(const std::string& origin, const std::string& profile,
                        const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      origin, ": teacher '", profile, "': field '", field, "' ", why));
}

template <typename T>
absl::Status ReadNumber(const YAML::Node& node, const std::string& field,
                        const std::string& origin, const std::string& profile,
                        T min_value, T* out) {
  const YAML::Node value = node[field];
  if (!value) return absl::OkStatus();
  try {
    T v = value.as<T>();
    if (v < min_value) {
      return FieldError(origin, profile, field,
                        absl::StrCat("must be at least ", min_value));
    }
    *out = v;
  } catch (const YAML::Exception&) {
    return FieldError(origin, profile, field, "must be a whole number");
  }
  return absl::OkStatus();
}

absl::Status ReadString(const YAML::Node& node, const std::string& field,
                        const std::string& origin, const std::string& profile,
                        std::string* out) {
  const YAML::Node value = node[field];
  if (!value || value.IsNull()) return absl::OkStatus();
  if (!value.IsScalar()) {
    return FieldError(origin, profile, field, "must be a string");
  }
  *out = value.as<std::string>();
  return absl::OkStatus();
}

// pricing: {MODEL: {input: USD, cached_input: USD, output: USD,
// batch_input: USD, batch_output: USD}}, per million tokens; cached_input
// defaults to input, the batch prices to half of input and output.
absl::Status ReadPricing(const YAML::Node& node, const std::string& origin,
                         const std::string& profile,
                         std::map<std::string, ModelPrice>* out) {
  const YAML::Node pricing = node["pricing"];
  if (!pricing || pricing.IsNull()) return absl::OkStatus();
  if (!pricing.IsMap()) {
    return FieldError(origin, profile, "pricing",
                      "must map model names to prices");
  }
  for (const auto& kv : pricing) {
    const std::string model = kv.first.as<std::string>();
    const std::string field = absl::StrCat("pricing.", model);
    if (!kv.second.IsMap()) {
      return FieldError(origin, profile, field,
                        "must have input, cached_input and output prices");
    }
    ModelPrice price;
    bool has_cached = false;
    bool has_batch_input = false;
    bool has_batch_output = false;
    for (const auto& entry : kv.second) {
      const std::string key = entry.first.as<std::string>();
      double* target = key == "input"          ? &price.input
                       : key == "cached_input" ? &price.cached_input
                       : key == "output"       ? &price.output
                       : key == "batch_input"  ? &price.batch_input
                       : key == "batch_output" ? &price.batch_output
                                               : nullptr;
      if (target == nullptr) {
        return FieldError(origin, profile, absl::StrCat(field, ".", key),
                          "is not a known field (input, cached_input, output, "
                          "batch_input, batch_output)");
      }
      try {
        *target = entry.second.as<double>();
      } catch (const YAML::Exception&) {
        return FieldError(origin, profile, absl::StrCat(field, ".", key),
                          "must be a number (USD per million tokens)");
      }
      if (*target < 0) {
        return FieldError(origin, profile, absl::StrCat(field, ".", key),
                          "must not be negative");
      }
      has_cached |= key == "cached_input";
      has_batch_input |= key == "batch_input";
      has_batch_output |= key == "batch_output";
    }
    if (!has_cached) price.cached_input = price.input;
    if (!has_batch_input) price.batch_input = price.input / 2;
    if (!has_batch_output) price.batch_output = price.output / 2;
    (*out)[model] = price;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TeacherProfile>> ParseTeachersYaml(
    const std::string& yaml_text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": not valid YAML: ", e.what()));
  }
  const YAML::Node list = root.IsMap() ? root["teachers"] : YAML::Node();
  if (!list || !list.IsSequence() || list.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": expected a top-level 'teachers:' list of profiles"));
  }
  std::vector<TeacherProfile> profiles;
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node node = list[i];
    const std::string label = absl::StrCat("#", i + 1);
    if (!node.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": teacher ", label, " is not a mapping"));
    }
    TeacherProfile p;
    if (absl::Status s = ReadString(node, "name", origin, label, &p.name);
        !s.ok()) {
      return s;
    }
    if (p.name.empty()) return FieldError(origin, label, "name", "is required");
    if (!names.insert(p.name).second) {
      return FieldError(origin, p.name, "name", "is used twice");
    }
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      if (!kKnownKeys.count(key)) {
        return FieldError(origin, p.name, key, "is not a known field");
      }
    }
    std::string max_tokens_field;
    for (auto [field, out] :
         {std::pair{"api", &p.api}, std::pair{"variant", &p.variant},
          std::pair{"base_url", &p.base_url},
          std::pair{"api_key_env", &p.api_key_env},
          std::pair{"api_key_file", &p.api_key_file},
          std::pair{"max_tokens_field", &max_tokens_field},
          std::pair{"anthropic_version", &p.anthropic_version}}) {
      if (absl::Status s = ReadString(node, field, origin, p.name, out);
          !s.ok()) {
        return s;
      }
    }
    const bool anthropic = p.api == "anthropic";
    if (p.api != "openai" && !anthropic) {
      return FieldError(origin, p.name, "api",
                        absl::StrCat("is '", p.api,
                                     "'; supported: openai, anthropic"));
    }
    if (p.base_url.rfind("http://", 0) != 0 &&
        p.base_url.rfind("https://", 0) != 0) {
      return FieldError(origin, p.name, "base_url",
                        "must start with http:// or https://");
    }
    if (node["variant"] && anthropic) {
      return FieldError(origin, p.name, "variant",
                        "applies to api: openai only");
    }
    if (!kVariants.count(p.variant)) {
      return FieldError(
          origin, p.name, "variant",
          absl::StrCat("is '", p.variant,
                       "'; supported: openai, deepseek, vllm, ollama, "
                       "llamacpp, sim"));
    }
    if (!max_tokens_field.empty() && anthropic) {
      return FieldError(origin, p.name, "max_tokens_field",
                        "applies to api: openai only (Anthropic's field is "
                        "max_tokens)");
    }
    p.max_tokens_field =
        !max_tokens_field.empty() ? max_tokens_field
        : p.variant == "openai"   ? "max_completion_tokens"
                                  : "max_tokens";
    if (p.max_tokens_field != "max_completion_tokens" &&
        p.max_tokens_field != "max_tokens") {
      return FieldError(origin, p.name, "max_tokens_field",
                        "must be max_completion_tokens or max_tokens");
    }
    if (node["anthropic_version"] && !anthropic) {
      return FieldError(origin, p.name, "anthropic_version",
                        "applies to api: anthropic only");
    }
    if (p.anthropic_version.empty()) {
      return FieldError(origin, p.name, "anthropic_version",
                        "must not be empty");
    }
    if (node["thinking_budget_tokens"] && !anthropic) {
      return FieldError(origin, p.name, "thinking_budget_tokens",
                        "applies to api: anthropic only (OpenAI-style "
                        "reasoning models think without being asked)");
    }
    if (const YAML::Node format = node["response_format"]; format) {
      if (anthropic) {
        return FieldError(origin, p.name, "response_format",
                          "applies to api: openai only");
      }
      if (!format.IsMap()) {
        return FieldError(origin, p.name, "response_format",
                          "must be a mapping, e.g. {type: json_object}");
      }
      p.response_format_json = YamlToJson(format).dump();
    }
    if (absl::Status s = ReadBool(node, "stream", origin, p.name, &p.stream);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ReadBool(node, "use_n", origin, p.name, &p.use_n);
        !s.ok()) {
      return s;
    }
    if (anthropic && p.use_n) {
      return FieldError(origin, p.name, "use_n",
                        "applies to api: openai only (Anthropic has no n)");
    }
    if (anthropic) p.default_max_tokens = 4096;
    if (!p.api_key_env.empty() && !p.api_key_file.empty()) {
      return FieldError(origin, p.name, "api_key_file",
                        "cannot be set together with api_key_env");
    }
    absl::Status s;
    if (s = ReadNumber<int64_t>(node, "default_max_tokens", origin, p.name,
                                anthropic ? 1 : 0, &p.default_max_tokens);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "thinking_budget_tokens", origin,
                                p.name, 0, &p.thinking_budget_tokens);
        !s.ok())
      return s;
    if (p.thinking_budget_tokens != 0 && p.thinking_budget_tokens < 1024) {
      return FieldError(origin, p.name, "thinking_budget_tokens",
                        "must be 0 (off) or at least 1024");
    }
    if (p.thinking_budget_tokens > 0 &&
        p.thinking_budget_tokens >= p.default_max_tokens) {
      return FieldError(origin, p.name, "thinking_budget_tokens",
                        absl::StrCat("must be below default_max_tokens (",
                                     p.default_max_tokens, ")"));
    }
    if (s = ReadNumber<int64_t>(node, "rpm", origin, p.name, 0, &p.rpm);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "tpm", origin, p.name, 0, &p.tpm);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "limit_window_s", origin, p.name, 1,
                                &p.limit_window_s);
        !s.ok())
      return s;
    if (s = ReadNumber<int>(node, "max_concurrency", origin, p.name, 0,
                            &p.max_concurrency);
        !s.ok())
      return s;
    if (s = ReadNumber<int>(node, "max_attempts", origin, p.name, 1,
                            &p.max_attempts);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "connect_timeout_ms", origin, p.name, 1,
                                &p.connect_timeout_ms);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "idle_timeout_ms", origin, p.name, 1,
                                &p.idle_timeout_ms);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "total_timeout_ms", origin, p.name, 1,
                                &p.total_timeout_ms);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "max_response_bytes", origin, p.name,
                                1024, &p.max_response_bytes);
        !s.ok())
      return s;
    if (s = ReadPricing(node, origin, p.name, &p.pricing); !s.ok()) return s;
    if (s = ReadNumber<int64_t>(node, "batch_max_requests", origin, p.name, 0,
                                &p.batch_max_requests);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "batch_max_bytes", origin, p.name, 0,
                                &p.batch_max_bytes);
        !s.ok())
      return s;
    if (s = ReadNumber<int64_t>(node, "batch_poll_interval_ms", origin, p.name,
                                1, &p.batch_poll_interval_ms);
        !s.ok())
      return s;
    profiles.push_back(std::move(p));
  }
  return profiles;
}

absl::StatusOr<std::vector<TeacherProfile>> LoadTeachersFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open teachers file '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseTeachersYaml(text.str(), path);
}

absl::StatusOr<TeacherProfile> FindTeacher(
    const std::vector<TeacherProfile>& profiles, const std::string& name) {
  std::vector<std::string> names;
  for (const TeacherProfile& p : profiles) {
    if (p.name == name) return p;
    names.push_back(p.name);
  }
  return absl::NotFoundError(absl::StrCat("unknown teacher '", name,
                                          "'; known: ",
                                          absl::StrJoin(names, ", ")));
}

const TeacherProfile* FindTeacherOrNull(
    const std::vector<TeacherProfile>& profiles, std::string_view name) {
  for (const TeacherProfile& p : profiles) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string RequestIdentity(const TeacherProfile& profile) {
  std::string out;
  const auto field = [&out](std::string_view name, std::string_view value) {
    out.append(name).append("=").append(std::to_string(value.size()));
    out.append(":").append(value).append(";");
  };
  std::string_view base_url = profile.base_url;
  while (base_url.ends_with('/')) base_url.remove_suffix(1);
  field("name", profile.name);
  field("api", profile.api);
  field("base_url", base_url);
  field("default_max_tokens", std::to_string(profile.default_max_tokens));
  if (profile.api == "anthropic") {
    field("anthropic_version", profile.anthropic_version);
    field("thinking_budget_tokens",
          std::to_string(profile.thinking_budget_tokens));
  } else {
    field("variant", profile.variant);
    field("max_tokens_field", profile.max_tokens_field);
    field("response_format", profile.response_format_json);
  }
  return out;
}

std::optional<ModelPrice> PriceFor(const TeacherProfile& profile,
                                   const std::string& model) {
  auto it = profile.pricing.find(model);
  if (it == profile.pricing.end()) it = profile.pricing.find("*");
  if (it == profile.pricing.end()) return std::nullopt;
  return it->second;
}

bool HasBatchApi(const TeacherProfile& profile) {
  if (profile.api == "anthropic") return true;
  return profile.api == "openai" &&
         (profile.variant == "openai" || profile.variant == "sim");
}

double CostUsd(const TeacherProfile& profile, const std::string& model,
               int64_t prompt_tokens, int64_t cached_tokens,
               int64_t completion_tokens, bool batch) {
  const std::optional<ModelPrice> price = PriceFor(profile, model);
  if (!price) return 0;
  const int64_t cached = std::clamp<int64_t>(cached_tokens, 0, prompt_tokens);
  const double input = batch ? price->batch_input : price->input;
  const double cached_input =
      batch ? price->cached_input / 2 : price->cached_input;
  const double output = batch ? price->batch_output : price->output;
  return (static_cast<double>(prompt_tokens - cached) * input +
          static_cast<double>(cached) * cached_input +
          static_cast<double>(completion_tokens) * output) /
         1e6;
}

double MaxRequestCostUsd(const TeacherProfile& profile,
                         const std::string& model, int64_t prompt_bytes,
                         int messages, int64_t max_tokens, bool batch) {
  const int64_t prompt_tokens = (prompt_bytes + 3) / 4 + 4 * messages;
  int64_t completion = max_tokens;
  if (completion <= 0) completion = profile.default_max_tokens;
  if (completion <= 0) completion = 4096;  // no bound given: a cautious one
  return CostUsd(profile, model, prompt_tokens, 0, completion, batch);
}

absl::StatusOr<std::string> ResolveApiKey(const TeacherProfile& profile) {
  if (!profile.api_key_env.empty()) {
    const char* value = std::getenv(profile.api_key_env.c_str());
    if (value == nullptr || *value == '\0') {
      return absl::FailedPreconditionError(
          absl::StrCat("teacher '", profile.name, "': environment variable ",
                       profile.api_key_env, " is not set"));
    }
    return std::string(value);
  }
  if (!profile.api_key_file.empty()) {
    std::ifstream in(profile.api_key_file);
    if (!in) {
      return absl::FailedPreconditionError(
          absl::StrCat("teacher '", profile.name, "': cannot read key file ",
                       profile.api_key_file));
    }
    std::string key;
    std::getline(in, key);
    while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) {
      key.pop_back();
    }
    if (key.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("teacher '", profile.name, "': key file ",
                       profile.api_key_file, " is empty"));
    }
    return key;
  }
  return std::string();
}

}  // namespace distillery
