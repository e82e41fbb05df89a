#include "common/verify/json_schema.h"

// Without exceptions valijson reports a bad schema by printing it and
// calling abort(); its CMake package defines this too.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif
#if !VALIJSON_USE_EXCEPTIONS
#error "json_schema.cc needs valijson's exceptions to refuse bad schemas"
#endif

#include <re2/re2.h>

#include <algorithm>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/constraint_builder.hpp>
#include <valijson/constraints/concrete_constraints.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/json_depth.h"
#include "common/base/json_string.h"

namespace distillery {
namespace {

// The keywords the schema's 'pattern' and regex-checked 'format' are renamed
// to before valijson sees them, so that our RE2 constraints check them and
// valijson's std::regex ones never run.
constexpr char kRe2PatternKeyword[] = "x-distillery-re2-pattern";
constexpr char kRe2FormatKeyword[] = "x-distillery-re2-format";

// Message budgets: a library message quoted, a path, one path segment.
constexpr size_t kMaxQuotedBytes = 200;
constexpr size_t kMaxPathBytes = 100;
constexpr size_t kMaxSegmentBytes = 32;

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}
std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

// `text` cut to `max_bytes` (with "..." when cut), control bytes replaced by
// '?' and invalid UTF-8 repaired: safe to log whatever `text` came from.
std::string Printable(std::string_view text, size_t max_bytes) {
  std::string out(Utf8Prefix(text, max_bytes));
  const bool cut = out.size() < text.size();
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  RepairUtf8(&out);
  if (cut) out += "...";
  return out;
}

// nlohmann's what() without its "[json.exception.parse_error.101] " tag.
std::string_view WithoutExceptionTag(std::string_view what) {
  if (!what.empty() && what.front() == '[') {
    size_t end = what.find("] ");
    if (end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  return what;
}

// The JSON text inside a single markdown fence ("```json\n...\n```" or
// "```\n...\n```"), else `answer` trimmed.
std::string_view StripFence(std::string_view answer) {
  std::string_view s = Trim(answer);
  constexpr std::string_view kFence = "```";
  if (s.size() < 2 * kFence.size() || s.substr(0, kFence.size()) != kFence ||
      s.substr(s.size() - kFence.size()) != kFence) {
    return s;
  }
  std::string_view inner =
      s.substr(kFence.size(), s.size() - 2 * kFence.size());
  // The info string runs to the end of the opening line.
  size_t newline = inner.find('\n');
  if (newline == std::string_view::npos) return s;
  std::string_view info = Trim(inner.substr(0, newline));
  if (!info.empty() && info != "json" && info != "JSON") return s;
  inner.remove_prefix(newline + 1);
  if (inner.find(kFence) != std::string_view::npos) return s;  // not single
  return Trim(inner);
}

// Parses `text` (a fence already stripped) after checking its depth.
// `what` names it in errors ("answer", "schema").
absl::StatusOr<nlohmann::json> ParseJson(std::string_view text,
                                         const char* what) {
  if (absl::Status depth = CheckJsonDepth(text); !depth.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " nests deeper than ", kMaxJsonDepth, " levels"));
  }
  if (Trim(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not JSON: empty"));
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not JSON: ",
                     Printable(WithoutExceptionTag(e.what()), kMaxQuotedBytes)));
  } catch (const std::exception& e) {  // std::bad_alloc on a huge input
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is not JSON: ", Printable(e.what(), kMaxQuotedBytes)));
  }
}

// valijson's error context ("<root>", "[age]", "[0]") as a JSON Pointer.
// Property names come from the answer, so each is cut and sanitised.
std::string PointerOf(const std::vector<std::string>& context) {
  std::string path;
  for (const std::string& element : context) {
    std::string_view segment = element;
    if (segment.size() < 2 || segment.front() != '[' ||
        segment.back() != ']') {
      continue;  // "<root>"
    }
    segment = segment.substr(1, segment.size() - 2);
    path += '/';
    for (char c : Printable(segment, kMaxSegmentBytes)) {
      if (c == '~') {
        path += "~0";
      } else if (c == '/') {
        path += "~1";
      } else {
        path += c;
      }
    }
    if (path.size() > kMaxPathBytes) {
      path = std::string(Utf8Prefix(path, kMaxPathBytes)) + "...";
      break;
    }
  }
  return path.empty() ? "(root)" : path;
}

// 'pattern' matched with RE2 (valijson's own uses std::regex, which recurses
// per character). Like valijson with strict types, it checks strings only.
class Re2PatternConstraint : public valijson::constraints::PolyConstraint {
 public:
  explicit Re2PatternConstraint(std::shared_ptr<const RE2> re)
      : re_(std::move(re)) {}

  bool validate(const valijson::adapters::Adapter& target,
                const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    if (!target.isString()) return true;
    if (RE2::PartialMatch(target.asString(), *re_)) return true;
    if (results != nullptr) {
      results->pushError(
          context, "Failed to match regex specified by 'pattern' constraint.");
    }
    return false;
  }

 private:
  Constraint* cloneInto(void* ptr) const override {
    return new (ptr) Re2PatternConstraint(*this);
  }
  size_t sizeOf() const override { return sizeof(Re2PatternConstraint); }

  std::shared_ptr<const RE2> re_;  // shared by clones; RE2 is thread-safe
};

class Re2PatternBuilder : public valijson::ConstraintBuilder {
 public:
  valijson::constraints::Constraint* make(
      const valijson::adapters::Adapter& value) const override {
    std::string pattern = value.asString();
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(pattern, options);
    if (!re->ok()) {
      valijson::throwRuntimeError(
          absl::StrCat("'pattern' ", Printable(pattern, 60),
                       " is not a regex RE2 accepts: ", re->error()));
    }
    return new Re2PatternConstraint(std::move(re));
  }
};

// The formats valijson checks with std::regex, checked with RE2 and the same
// rules (a date's day within its month, February up to 29). valijson checks
// no other format, so neither does this.
class Re2FormatConstraint : public valijson::constraints::PolyConstraint {
 public:
  enum class Kind { kDate, kTime, kDateTime };
  explicit Re2FormatConstraint(Kind kind) : kind_(kind) {}

  bool validate(const valijson::adapters::Adapter& target,
                const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    if (!target.isString()) return true;
    const std::string s = target.asString();
    bool ok = false;
    const char* error = "";
    switch (kind_) {
      case Kind::kDate:
        ok = ValidDate(s, DateRe());
        error = "String should be a valid date";
        break;
      case Kind::kTime:
        ok = RE2::FullMatch(s, TimeRe());
        error = "String should be a valid time";
        break;
      case Kind::kDateTime:
        ok = ValidDate(s, DateTimeRe());
        error = "String should be a valid date-time";
        break;
    }
    if (!ok && results != nullptr) results->pushError(context, error);
    return ok;
  }

 private:
  // Compiled once, on first use (thread-safe static init); never freed.
  static const RE2& DateRe() {
    static const RE2* re =
        new RE2("[0-9]+-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])");
    return *re;
  }
  static const RE2& TimeRe() {
    static const RE2* re = new RE2(
        "(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.[0-9]+)?"
        "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])");
    return *re;
  }
  static const RE2& DateTimeRe() {
    static const RE2* re = new RE2(
        "[0-9]+-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])[Tt]"
        "(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.[0-9]+)?"
        "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])");
    return *re;
  }
  // `re` captures the month and the day.
  static bool ValidDate(const std::string& s, const RE2& re) {
    int month = 0;
    int day = 0;
    if (!RE2::FullMatch(s, re, &month, &day)) return false;
    if (month == 2) return day <= 29;
    if (month == 4 || month == 6 || month == 9 || month == 11) return day <= 30;
    return true;
  }

  Constraint* cloneInto(void* ptr) const override {
    return new (ptr) Re2FormatConstraint(*this);
  }
  size_t sizeOf() const override { return sizeof(Re2FormatConstraint); }

  Kind kind_;
};

class Re2FormatBuilder : public valijson::ConstraintBuilder {
 public:
  valijson::constraints::Constraint* make(
      const valijson::adapters::Adapter& value) const override {
    std::string format = value.asString();
    using Kind = Re2FormatConstraint::Kind;
    Kind kind = format == "date"   ? Kind::kDate
                : format == "time" ? Kind::kTime
                                   : Kind::kDateTime;
    return new Re2FormatConstraint(kind);
  }
};

bool IsRegexFormat(const nlohmann::json& value) {
  return value.is_string() &&
         (value == "date" || value == "time" || value == "date-time");
}

// Calls `fn` on every object of `node` that sits where a schema goes. `node`
// is a schema, or (`names`) an object whose keys are names and whose values
// are schemas ('properties', 'definitions'). Values that are data ('enum',
// 'const', 'default', 'examples') are skipped. Recursion is bounded by the
// depth check before parsing.
template <typename Fn>
absl::Status ForEachSchemaObject(nlohmann::json& node, bool names,
                                 const Fn& fn) {
  if (node.is_array()) {
    for (nlohmann::json& item : node) {
      if (absl::Status s = ForEachSchemaObject(item, false, fn); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (!node.is_object()) return absl::OkStatus();
  if (!names) {
    if (absl::Status s = fn(node); !s.ok()) return s;
  }
  for (auto& [key, value] : node.items()) {
    bool data = !names && (key == "enum" || key == "const" ||
                           key == "default" || key == "examples");
    if (data) continue;
    bool child_names = !names && (key == "properties" || key == "definitions" ||
                                  key == "$defs" || key == "dependencies");
    if (absl::Status s = ForEachSchemaObject(value, child_names, fn); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Renames 'pattern' and the regex-checked formats of one schema object to
// our RE2 keywords, and refuses 'patternProperties'.
absl::Status RewriteRegexKeywords(nlohmann::json& node) {
  if (node.contains("patternProperties")) {
    return absl::InvalidArgumentError(
        "schema is not supported: 'patternProperties' (valijson matches it "
        "with std::regex, which is not safe on untrusted answers)");
  }
  if (auto it = node.find("pattern"); it != node.end() && it->is_string()) {
    nlohmann::json pattern = std::move(*it);
    node.erase(it);
    node[kRe2PatternKeyword] = std::move(pattern);
  }
  if (auto it = node.find("format"); it != node.end() && IsRegexFormat(*it)) {
    nlohmann::json format = std::move(*it);
    node.erase(it);
    node[kRe2FormatKeyword] = std::move(format);
  }
  return absl::OkStatus();
}

// The target of a $ref in `root`. Only local references ("#" or
// "#/json/pointer") are accepted: valijson has no fetch function here, and
// resolves a relative one ("other.json#/a") in this document, which would be
// a surprise.
absl::StatusOr<const nlohmann::json*> ResolveRef(const nlohmann::json& root,
                                                 const std::string& ref) {
  if (ref != "#" && ref.rfind("#/", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema $ref \"", Printable(ref, 60),
                     "\" is not local ('#' or '#/...'): references to other "
                     "documents are not fetched"));
  }
  std::string pointer = ref.substr(1);
  pointer.erase(pointer.find_last_not_of('/') + 1);  // as valijson does
  try {
    return &root.at(nlohmann::json::json_pointer(pointer));
  } catch (const nlohmann::json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schema $ref \"", Printable(ref, 60), "\" does not resolve"));
  }
}

// valijson recurses, both when it compiles a schema and when it validates,
// once per subschema it enters, and does not look for cycles (its source
// says "TODO: Need to detect degenerate circular references"):
// {"$ref": "#"} or {"allOf": [{"$ref": "#"}]} overflows the stack, and so
// does a long enough chain of references (about 5,000 on an 8 MiB stack).
// So the graph of subschemas (nested ones and $ref targets) is checked
// first: no cycle may apply a schema to the same value again without
// descending into it (recursion through 'properties' or 'items' is fine: it
// ends with the answer, which is at most kMaxJsonDepth deep), a path of
// same-value steps is at most kMaxSameValueSteps long, and any path is at
// most kMaxSchemaPathSteps long. Lengths are measured on the DFS tree (back
// edges dropped), which is what valijson's own compile, caching each $ref
// target once, recurses over.
constexpr int kMaxSameValueSteps = 16;
constexpr int kMaxSchemaPathSteps = 256;

struct SchemaEdge {
  const nlohmann::json* to;
  bool same_value;  // the child applies to the same value, not a part of it
};

// The subschemas `node` (a schema object) applies, as valijson reads draft 7.
absl::StatusOr<std::vector<SchemaEdge>> SchemaEdgesOf(
    const nlohmann::json& root, const nlohmann::json& node) {
  std::vector<SchemaEdge> edges;
  if (auto ref = node.find("$ref"); ref != node.end() && ref->is_string()) {
    // valijson ignores the siblings of a $ref.
    absl::StatusOr<const nlohmann::json*> to =
        ResolveRef(root, ref->get_ref<const std::string&>());
    if (!to.ok()) return to.status();
    if ((*to)->is_object()) edges.push_back({*to, true});
    return edges;
  }
  auto add = [&edges](const nlohmann::json& child, bool same_value) {
    if (child.is_object()) edges.push_back({&child, same_value});
  };
  auto add_each = [&add](const nlohmann::json& children, bool same_value) {
    if (!children.is_array() && !children.is_object()) return;
    for (const nlohmann::json& child : children) add(child, same_value);
  };
  for (const auto& [key, value] : node.items()) {
    if (key == "allOf" || key == "anyOf" || key == "oneOf" ||
        key == "dependencies") {
      add_each(value, true);
    } else if (key == "not" || key == "if" || key == "then" ||
               key == "else") {
      add(value, true);
    } else if (key == "properties" || key == "definitions" ||
               key == "$defs" || key == "items") {
      if (value.is_object() && key == "items") {
        add(value, false);
      } else {
        add_each(value, false);
      }
    } else if (key == "additionalProperties" || key == "additionalItems" ||
               key == "contains" || key == "propertyNames") {
      add(value, false);
    }
  }
  return edges;
}

class SchemaGraphCheck {
 public:
  // Checks paths of same-value edges only, or of all edges.
  SchemaGraphCheck(const nlohmann::json& root, bool same_value_only)
      : root_(root), same_value_only_(same_value_only) {}

  absl::Status Run() { return Visit(root_, 0); }

 private:
  // On success, height_[&node] is the longest path below `node`.
  absl::Status Visit(const nlohmann::json& node, int depth) {
    const int max_steps =
        same_value_only_ ? kMaxSameValueSteps : kMaxSchemaPathSteps;
    if (depth > max_steps) return TooLong();
    on_path_.insert(&node);
    absl::StatusOr<std::vector<SchemaEdge>> edges = SchemaEdgesOf(root_, node);
    if (!edges.ok()) return edges.status();
    int height = 0;
    for (const SchemaEdge& edge : *edges) {
      if (same_value_only_ && !edge.same_value) continue;
      if (on_path_.count(edge.to) > 0) {
        if (!same_value_only_) continue;  // recursion that descends
        return absl::InvalidArgumentError(
            "schema has a cycle that applies a subschema to the same value "
            "again (such as {\"allOf\": [{\"$ref\": \"#\"}]})");
      }
      auto known = height_.find(edge.to);
      if (known == height_.end()) {
        if (absl::Status s = Visit(*edge.to, depth + 1); !s.ok()) return s;
        known = height_.find(edge.to);
      }
      height = std::max(height, known->second + 1);
      if (depth + height > max_steps) return TooLong();
    }
    on_path_.erase(&node);
    height_[&node] = height;
    return absl::OkStatus();
  }

  absl::Status TooLong() const {
    return absl::InvalidArgumentError(
        same_value_only_
            ? absl::StrCat("schema chains more than ", kMaxSameValueSteps,
                           " subschemas ($ref, allOf, anyOf, oneOf, not, "
                           "if) on one value")
            : absl::StrCat("schema nests more than ", kMaxSchemaPathSteps,
                           " subschemas deep through its $refs"));
  }

  const nlohmann::json& root_;
  const bool same_value_only_;
  std::unordered_set<const nlohmann::json*> on_path_;
  std::unordered_map<const nlohmann::json*, int> height_;
};

}  // namespace

JsonSchemaValidator::JsonSchemaValidator(
    std::unique_ptr<const valijson::Schema> schema)
    : schema_(std::move(schema)) {}

JsonSchemaValidator::~JsonSchemaValidator() = default;

absl::StatusOr<std::unique_ptr<JsonSchemaValidator>>
JsonSchemaValidator::Create(std::string_view schema_json) {
  if (schema_json.size() > kMaxJsonSchemaBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema is larger than ", kMaxJsonSchemaBytes, " bytes"));
  }
  absl::StatusOr<nlohmann::json> document = ParseJson(schema_json, "schema");
  if (!document.ok()) return document.status();
  if (!document->is_object()) {
    return absl::InvalidArgumentError("schema is not a JSON object");
  }
  // The graph is checked before the rewrite, whose renames could move a
  // $ref's target.
  for (bool same_value_only : {true, false}) {
    if (absl::Status s = SchemaGraphCheck(*document, same_value_only).Run();
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s =
          ForEachSchemaObject(*document, false, RewriteRegexKeywords);
      !s.ok()) {
    return s;
  }
  try {
    auto schema = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    parser.addConstraintBuilder(kRe2PatternKeyword, new Re2PatternBuilder);
    parser.addConstraintBuilder(kRe2FormatKeyword, new Re2FormatBuilder);
    valijson::adapters::NlohmannJsonAdapter adapter(*document);
    // No fetch function: a remote $ref is refused, never fetched.
    parser.populateSchema(adapter, *schema);
    return std::unique_ptr<JsonSchemaValidator>(
        new JsonSchemaValidator(std::move(schema)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema is not one valijson can compile: ",
                     Printable(e.what(), kMaxQuotedBytes)));
  }
}

absl::Status JsonSchemaValidator::Validate(std::string_view answer) const {
  absl::StatusOr<nlohmann::json> value = ParseJson(StripFence(answer), "answer");
  if (!value.ok()) return value.status();
  try {
    // A Validator caches std::regex objects in a mutable map, so one per
    // call; the Schema is only read.
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter adapter(*value);
    if (validator.validate(*schema_, adapter, &results)) {
      return absl::OkStatus();
    }
    // Errors are pushed innermost first ("/age: Value type not permitted"
    // before the "Failed to validate against schema associated with property
    // name 'age'" of its parent), so the first is the most specific.
    valijson::ValidationResults::Error error;
    if (!results.popError(error)) {
      return absl::InvalidArgumentError("answer does not match the schema");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "answer does not match the schema: ", PointerOf(error.context), ": ",
        Printable(error.description, kMaxQuotedBytes - 50)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("answer could not be checked against the schema: ",
                     Printable(e.what(), kMaxQuotedBytes)));
  }
}

absl::StatusOr<std::string> JsonSchemaValidator::CanonicalJson(
    std::string_view answer) {
  absl::StatusOr<nlohmann::json> value = ParseJson(StripFence(answer), "answer");
  if (!value.ok()) return value.status();
  try {
    // nlohmann's parser refuses invalid UTF-8, so 'replace' never fires; it
    // keeps dump() from throwing should that change.
    return value->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "answer could not be re-serialised: ", Printable(e.what(), 100)));
  }
}

std::string SchemaNameOf(std::string_view file_path) {
  std::string_view base = file_path;
  if (size_t slash = base.find_last_of("/\\"); slash != std::string_view::npos) {
    base.remove_prefix(slash + 1);
  }
  // As std::filesystem::path::stem(): a leading dot does not start an
  // extension (".schema" stays ".schema").
  if (size_t dot = base.rfind('.'); dot != std::string_view::npos && dot > 0) {
    base = base.substr(0, dot);
  }
  constexpr size_t kMaxNameChars = 64;
  std::string name;
  for (char c : base.substr(0, kMaxNameChars)) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || c == '_' || c == '-';
    name += allowed ? c : '_';
  }
  return name.empty() ? "schema" : name;
}

}  // namespace distillery
