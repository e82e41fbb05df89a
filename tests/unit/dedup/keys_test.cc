// Dedup keys: a request key is stable under the documented normalisation and
// changes with everything that changes what the teacher is asked.
#include "common/dedup/keys.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace distillery {
namespace {

using Messages = google::protobuf::RepeatedPtrField<v1::ChatMessage>;

Messages Msgs(const std::vector<std::pair<std::string, std::string>>& turns) {
  Messages out;
  for (const auto& [role, content] : turns) {
    v1::ChatMessage* m = out.Add();
    m->set_role(role);
    m->set_content(content);
  }
  return out;
}

TeacherProfile Sim() {
  TeacherProfile p;
  p.name = "sim";
  p.base_url = "http://127.0.0.1:8080/v1";
  return p;
}

// A baseline request that each test varies in one respect.
struct Request {
  TeacherProfile teacher = Sim();
  std::string model = "gpt-test";
  Messages messages =
      Msgs({{"system", "Be brief."}, {"user", "What is 2 + 2?"}});
  v1::SamplingParams params;
  int sample = 0;

  std::string Key() const {
    return RequestKey(teacher, model, messages, params, sample);
  }
};

TEST(RequestKeyTest, SameInputsGiveTheSameSixteenByteKey) {
  Request a, b;
  EXPECT_EQ(a.Key().size(), 16u);
  EXPECT_EQ(a.Key(), b.Key());
  a.params.set_temperature(0.7);
  a.params.add_stop("END");
  b.params.set_temperature(0.7);
  b.params.add_stop("END");
  EXPECT_EQ(a.Key(), b.Key());
}

TEST(RequestKeyTest, RoleCaseDoesNotMatter) {
  Request lower, upper;
  upper.messages = Msgs({{"SYSTEM", "Be brief."}, {"User", "What is 2 + 2?"}});
  EXPECT_EQ(lower.Key(), upper.Key());
}

TEST(RequestKeyTest, SurroundingWhitespaceAndCrlfAreNormalised) {
  Request plain, messy;
  plain.messages = Msgs({{"user", "line one\nline two"}});
  messy.messages = Msgs({{"user", " \t\r\nline one\r\nline two \n\n"}});
  EXPECT_EQ(plain.Key(), messy.Key());
}

TEST(RequestKeyTest, InnerWhitespaceIsPartOfTheRequest) {
  Request a, b;
  a.messages = Msgs({{"user", "a b"}});
  b.messages = Msgs({{"user", "a  b"}});
  EXPECT_NE(a.Key(), b.Key());
}

TEST(RequestKeyTest, EveryRequestFieldChangesTheKey) {
  const std::string base = Request().Key();
  std::vector<std::pair<std::string, Request>> variants;
  auto vary = [&](const std::string& name, auto mutate) {
    Request r;
    mutate(r);
    variants.emplace_back(name, std::move(r));
  };
  vary("teacher", [](Request& r) { r.teacher.name = "openai"; });
  vary("model", [](Request& r) { r.model = "gpt-test-2"; });
  vary("content", [](Request& r) {
    r.messages = Msgs({{"system", "Be brief."}, {"user", "What is 2 + 3?"}});
  });
  vary("role", [](Request& r) {
    r.messages = Msgs({{"user", "Be brief."}, {"user", "What is 2 + 2?"}});
  });
  vary("extra message", [](Request& r) {
    r.messages = Msgs({{"system", "Be brief."},
                       {"user", "What is 2 + 2?"},
                       {"assistant", "4"},
                       {"user", "Sure?"}});
  });
  vary("no system", [](Request& r) {
    r.messages = Msgs({{"user", "What is 2 + 2?"}});
  });
  vary("sample", [](Request& r) { r.sample = 1; });
  vary("temperature 0", [](Request& r) { r.params.set_temperature(0); });
  vary("temperature 0.5", [](Request& r) { r.params.set_temperature(0.5); });
  vary("top_p", [](Request& r) { r.params.set_top_p(1.0); });
  vary("seed 0", [](Request& r) { r.params.set_seed(0); });
  vary("seed 1", [](Request& r) { r.params.set_seed(1); });
  vary("max_tokens", [](Request& r) { r.params.set_max_tokens(256); });
  vary("stop", [](Request& r) { r.params.add_stop("\n\n"); });
  vary("stop empty string", [](Request& r) { r.params.add_stop(""); });
  vary("stop pair", [](Request& r) {
    r.params.add_stop("a");
    r.params.add_stop("b");
  });
  vary("stop pair swapped", [](Request& r) {
    r.params.add_stop("b");
    r.params.add_stop("a");
  });

  for (size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(variants[i].second.Key(), base) << variants[i].first;
    for (size_t j = i + 1; j < variants.size(); ++j) {
      EXPECT_NE(variants[i].second.Key(), variants[j].second.Key())
          << variants[i].first << " vs " << variants[j].first;
    }
  }
}

TEST(RequestKeyTest, FieldBoundariesAreUnambiguous) {
  Request a, b;
  a.teacher.name = "ab";
  a.model = "c";
  b.teacher.name = "a";
  b.model = "bc";
  EXPECT_NE(a.Key(), b.Key());

  Request c, d;
  c.messages = Msgs({{"user", "ab"}, {"user", "c"}});
  d.messages = Msgs({{"user", "a"}, {"user", "bc"}});
  EXPECT_NE(c.Key(), d.Key());

  Request e, f;
  e.params.add_stop("ab");
  f.params.add_stop("a");
  f.params.add_stop("b");
  EXPECT_NE(e.Key(), f.Key());
}

TEST(AnswerContentHashTest, FoldsWhitespaceRunsAndTrims) {
  const std::string h = AnswerContentHash("The answer is 4.");
  EXPECT_EQ(h.size(), 16u);
  EXPECT_EQ(AnswerContentHash("  The answer\tis\n\n4.  \n"), h);
  EXPECT_EQ(AnswerContentHash("The   answer is\r\n4."), h);
  EXPECT_EQ(AnswerContentHash(""), AnswerContentHash(" \n\t "));
}

TEST(AnswerContentHashTest, DifferentTextDiffers) {
  const std::string h = AnswerContentHash("The answer is 4.");
  EXPECT_NE(AnswerContentHash("The answer is 5."), h);
  EXPECT_NE(AnswerContentHash("the answer is 4."), h);
  EXPECT_NE(AnswerContentHash("Theansweris4."), h);
  EXPECT_NE(AnswerContentHash(""), h);
}

TEST(HexKeyTest, LowerCaseHexOfEveryByte) {
  EXPECT_EQ(HexKey(""), "");
  EXPECT_EQ(HexKey(std::string("\x00\x01\x7f\x80\xab\xff", 6)), "00017f80abff");
  EXPECT_EQ(HexKey("AZ"), "415a");
  const std::string hex = HexKey(Request().Key());
  EXPECT_EQ(hex.size(), 32u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
}

// Every profile setting that changes the request sent, or where it goes, is
// part of the key: each one changed alone gives a key of its own.
TEST(RequestKeyTest, EveryRequestSettingOfTheProfileChangesTheKey) {
  TeacherProfile anthropic = Sim();
  anthropic.api = "anthropic";
  anthropic.base_url = "https://api.anthropic.com";
  anthropic.default_max_tokens = 4096;
  std::vector<std::pair<std::string, TeacherProfile>> variants = {
      {"openai", Sim()}, {"anthropic", anthropic}};
  auto vary = [&](const std::string& name, const TeacherProfile& base,
                  auto mutate) {
    TeacherProfile p = base;
    mutate(p);
    variants.emplace_back(name, std::move(p));
  };
  const TeacherProfile openai = Sim();
  vary("base_url", openai,
       [](TeacherProfile& p) { p.base_url = "http://10.0.0.2:8080/v1"; });
  vary("default_max_tokens", openai,
       [](TeacherProfile& p) { p.default_max_tokens = 512; });
  vary("variant", openai, [](TeacherProfile& p) { p.variant = "vllm"; });
  vary("max_tokens_field", openai,
       [](TeacherProfile& p) { p.max_tokens_field = "max_tokens"; });
  vary("response_format", openai, [](TeacherProfile& p) {
    p.response_format_json = R"({"type":"json_object"})";
  });
  vary("another response_format", openai, [](TeacherProfile& p) {
    p.response_format_json = R"({"type":"text"})";
  });
  vary("anthropic base_url", anthropic,
       [](TeacherProfile& p) { p.base_url = "https://proxy.example"; });
  vary("anthropic default_max_tokens", anthropic,
       [](TeacherProfile& p) { p.default_max_tokens = 8192; });
  vary("anthropic_version", anthropic,
       [](TeacherProfile& p) { p.anthropic_version = "2024-01-01"; });
  vary("thinking_budget_tokens", anthropic,
       [](TeacherProfile& p) { p.thinking_budget_tokens = 1024; });

  for (size_t i = 0; i < variants.size(); ++i) {
    Request a;
    a.teacher = variants[i].second;
    for (size_t j = i + 1; j < variants.size(); ++j) {
      Request b;
      b.teacher = variants[j].second;
      EXPECT_NE(a.Key(), b.Key())
          << variants[i].first << " vs " << variants[j].first;
    }
  }
}

// What does not change the answer does not change the key: the same request
// streamed or not, from another key or account, under other limits.
TEST(RequestKeyTest, SettingsThatDoNotChangeTheRequestLeaveTheKey) {
  Request base;
  const std::string key = base.Key();
  Request other;
  other.teacher.stream = true;
  other.teacher.api_key_env = "OTHER_KEY";
  other.teacher.api_key_file = "/run/secrets/key";
  other.teacher.rpm = 10;
  other.teacher.tpm = 1000;
  other.teacher.max_concurrency = 3;
  other.teacher.max_attempts = 9;
  other.teacher.total_timeout_ms = 1;
  other.teacher.max_response_bytes = 1;
  other.teacher.pricing["*"] = ModelPrice{1, 1, 1};
  // A trailing '/' sends to the same URL.
  other.teacher.base_url += "/";
  EXPECT_EQ(other.Key(), key);
  // Settings of the other API, which this one never sends.
  other.teacher.anthropic_version = "2099-01-01";
  other.teacher.thinking_budget_tokens = 2048;
  EXPECT_EQ(other.Key(), key);
}

TEST(RequestIdentityTest, FieldsAreLengthPrefixed) {
  TeacherProfile a = Sim(), b = Sim();
  a.response_format_json = "x;y";
  b.response_format_json = "x";
  b.max_tokens_field = "max_completion_tokens;y";
  EXPECT_NE(RequestIdentity(a), RequestIdentity(b));
  EXPECT_EQ(RequestIdentity(Sim()),
            "name=3:sim;api=6:openai;base_url=24:http://127.0.0.1:8080/v1;"
            "default_max_tokens=1:0;variant=6:openai;"
            "max_tokens_field=21:max_completion_tokens;response_format=0:;");
}

}  // namespace
}  // namespace distillery
