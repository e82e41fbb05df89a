// SecretRedactor: the key is found and replaced in every form a teacher, a
// proxy or a transport error may echo it in (raw, JSON-escaped, URL-encoded,
// HTML references, base64 at each alignment in both alphabets, and these
// mixed), and text without it is left alone. The encodings below were made
// with Python's json, urllib.parse and base64 modules, not with the code
// under test.
#include "common/teacher/redact.h"

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A key with the characters that escaping changes: '/' and '+', and bytes
// whose base64 holds '+' and '/' (or '-' and '_').
constexpr char kKey[] = "sk-proj-AbC/dEf+GhI9~~?>xYz0w";

std::string Redact(const std::string& text) {
  return SecretRedactor(kKey).Redact(text);
}

void ExpectRedacted(const std::string& form) {
  SCOPED_TRACE(form);
  const std::string text = "before " + form + " after";
  EXPECT_TRUE(SecretRedactor(kKey).Mentions(text));
  EXPECT_EQ(Redact(text), "before [redacted] after");
}

TEST(SecretRedactorTest, Raw) {
  ExpectRedacted(kKey);
  EXPECT_EQ(Redact(std::string("a ") + kKey + kKey + " b"),
            "a [redacted][redacted] b");
}

TEST(SecretRedactorTest, JsonEscaped) {
  ExpectRedacted(R"(sk-proj-AbC\/dEf+GhI9~~?>xYz0w)");
  ExpectRedacted(R"(sk-proj-AbC\u002fdEf\u002BGhI9~~?>xYz0w)");
  ExpectRedacted(R"(sk-proj-AbC\u002FdEf+GhI9\u007e~?\u003exYz0w)");
  // Every character escaped.
  std::string all;
  for (const char c : std::string(kKey)) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
    all += buf;
  }
  ExpectRedacted(all);
  // JSON inside a JSON string: escaped twice, and three times.
  ExpectRedacted(R"(sk-proj-AbC\\\/dEf+GhI9~~?>xYz0w)");
  ExpectRedacted(R"(sk-proj-AbC\\u002fdEf+GhI9~~?>xYz0w)");
  ExpectRedacted(R"(sk-proj-AbC\\\\\\\/dEf+GhI9~~?>xYz0w)");
}

TEST(SecretRedactorTest, UrlEncoded) {
  ExpectRedacted("sk-proj-AbC%2FdEf%2BGhI9~~%3F%3ExYz0w");  // quote(safe='')
  ExpectRedacted("sk-proj-AbC%2fdEf%2bGhI9%7E%7E%3f%3exYz0w");
  // A form decoder that read '+' as a space.
  ExpectRedacted("sk-proj-AbC/dEf GhI9~~?>xYz0w");
  // Encoded twice (a URL inside a query string).
  ExpectRedacted("sk-proj-AbC%252FdEf%252BGhI9~~%253F%253ExYz0w");
  // Every character encoded.
  std::string all;
  for (const char c : std::string(kKey)) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%%%02X", c);
    all += buf;
  }
  ExpectRedacted(all);
}

TEST(SecretRedactorTest, HtmlCharacterReferences) {
  ExpectRedacted("sk-proj-AbC&#x2F;dEf&#43;GhI9~~?&#62;xYz0w");
  ExpectRedacted("sk-proj-AbC&#47;dEf+GhI9~~?&#X3e;xYz0w");
}

TEST(SecretRedactorTest, Base64AtEachAlignment) {
  // base64(key), base64("x" + key), base64("u:" + key), base64("Bearer " +
  // key): the key at offsets 0, 1, 2 and 1 of a group of three.
  for (const std::string encoded :
       {"c2stcHJvai1BYkMvZEVmK0doSTl+fj8+eFl6MHc=",
        "eHNrLXByb2otQWJDL2RFZitHaEk5fn4/PnhZejB3",
        "dTpzay1wcm9qLUFiQy9kRWYrR2hJOX5+Pz54WXowdw==",
        "QmVhcmVyIHNrLXByb2otQWJDL2RFZitHaEk5fn4/PnhZejB3"}) {
    SCOPED_TRACE(encoded);
    EXPECT_TRUE(SecretRedactor(kKey).Mentions("Basic " + encoded));
    const std::string redacted = Redact("Basic " + encoded);
    EXPECT_THAT(redacted, HasSubstr("[redacted]"));
    // What is left is at most the characters that mix in other bytes.
    EXPECT_LE(redacted.size(), std::string("Basic [redacted]").size() + 12)
        << redacted;
  }
}

TEST(SecretRedactorTest, Base64UrlSafe) {
  for (const std::string encoded :
       {"c2stcHJvai1BYkMvZEVmK0doSTl-fj8-eFl6MHc",
        "eHNrLXByb2otQWJDL2RFZitHaEk5fn4_PnhZejB3",
        "dTpzay1wcm9qLUFiQy9kRWYrR2hJOX5-Pz54WXowdw"}) {
    SCOPED_TRACE(encoded);
    EXPECT_THAT(Redact("token=" + encoded), HasSubstr("[redacted]"));
    EXPECT_THAT(Redact("token=" + encoded), Not(HasSubstr("ZEVmK0doSTl")));
  }
}

TEST(SecretRedactorTest, Base64ThatIsThenJsonOrUrlEscaped) {
  EXPECT_THAT(Redact(R"({"auth":"eHNrLXByb2otQWJDL2RFZitHaEk5fn4\/PnhZejB3"})"),
              HasSubstr("[redacted]"));
  EXPECT_THAT(Redact("auth=c2stcHJvai1BYkMvZEVmK0doSTl%2Bfj8%2BeFl6MHc%3D"),
              HasSubstr("[redacted]"));
}

TEST(SecretRedactorTest, FormsFromTheEncodersThemselves) {
  // nlohmann writes '/' as is; an encoder that escapes it (PHP, some Java
  // libraries) writes "\/". Both decode to the key.
  const std::string key = kKey;
  const std::string json_body =
      nlohmann::json({{"message", "Incorrect API key: " + key}}).dump();
  EXPECT_EQ(Redact(json_body), R"({"message":"Incorrect API key: [redacted]"})");
  std::string escaped_slash = json_body;
  escaped_slash.replace(escaped_slash.find('/'), 1, "\\/");
  ASSERT_EQ(nlohmann::json::parse(escaped_slash)["message"],
            "Incorrect API key: " + key);
  EXPECT_EQ(Redact(escaped_slash),
            R"({"message":"Incorrect API key: [redacted]"})");
  // The mark keeps a JSON body valid.
  EXPECT_FALSE(nlohmann::json::parse(Redact(escaped_slash), nullptr, false)
                   .is_discarded());
}

TEST(SecretRedactorTest, LeavesOtherTextAlone) {
  const SecretRedactor redactor(kKey);
  for (const std::string text :
       {"", "nothing here", "sk-proj-AbC/dEf+GhI9~~?>xYz0", "sk-proj-AbC",
        R"(\u0073k-proj \\\\ %25%25 &#;&#x; &amp; + /)", "c2stcHJvai1BYk"}) {
    EXPECT_FALSE(redactor.Mentions(text)) << text;
    EXPECT_EQ(redactor.Redact(text), text);
  }
}

TEST(SecretRedactorTest, EmptySecretAndShortSecrets) {
  EXPECT_EQ(RedactSecret("empty secret", ""), "empty secret");
  EXPECT_FALSE(SecretRedactor("").Mentions("anything"));
  EXPECT_EQ(RedactSecret("key sk-1 and sk-1 again", "sk-1"),
            "key [redacted] and [redacted] again");
  // A secret that occurs inside the mark does not loop forever.
  EXPECT_EQ(RedactSecret("red", "red"), "[redacted]");
  EXPECT_EQ(RedactSecret("redred", "red"), "[redacted][redacted]");
}

}  // namespace
}  // namespace distillery
