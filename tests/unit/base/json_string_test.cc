// AppendJsonEscaped against nlohmann::json itself: for every string tried,
// the escaped text in quotes must equal what dump(-1, ' ', false,
// error_handler_t::replace) writes for that string, byte for byte. RepairUtf8
// against the same reference: repaired text is valid UTF-8 (nlohmann's
// strict dump takes it) and carries the same replacements.
#include "common/base/json_string.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace distillery {
namespace {

std::string Nlohmann(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false,
                                   nlohmann::json::error_handler_t::replace);
}

std::string Ours(const std::string& text) {
  std::string out = "prefix";  // appends, never overwrites
  AppendJsonString(text, &out);
  return out.substr(6);
}

// Bytes at the edges of every class the escaper and the UTF-8 decoder tell
// apart.
const std::vector<unsigned char> kEdgeBytes = {
    0x00, 0x01, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1f, 0x20,
    0x22, 0x2f, 0x41, 0x5c, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
    0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
    0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};

TEST(AppendJsonEscapedTest, KnownEscapes) {
  EXPECT_EQ(Ours(""), "\"\"");
  EXPECT_EQ(Ours("a\"b\\c/d\x7f"), "\"a\\\"b\\\\c/d\x7f\"");
  EXPECT_EQ(Ours("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
  EXPECT_EQ(Ours(std::string("\0\x01\x1f", 3)), "\"\\u0000\\u0001\\u001f\"");
  EXPECT_EQ(Ours("\xC3\xA9\xF0\x9F\x98\x80"), "\"\xC3\xA9\xF0\x9F\x98\x80\"");
  EXPECT_EQ(Ours("\xE2\x82(x"), "\"\xEF\xBF\xBD(x\"");  // one U+FFFD, ( kept
}

TEST(AppendJsonEscapedTest, EveryStringOfUpToTwoBytesMatchesNlohmann) {
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    ASSERT_EQ(Ours(one), Nlohmann(one)) << "byte " << a;
    for (int b = 0; b < 256; ++b) {
      const std::string two = one + static_cast<char>(b);
      ASSERT_EQ(Ours(two), Nlohmann(two)) << "bytes " << a << " " << b;
    }
  }
}

TEST(AppendJsonEscapedTest, ThreeAndFourByteEdgeCombinationsMatchNlohmann) {
  for (int a = 0x80; a < 256; ++a) {
    for (unsigned char b : kEdgeBytes) {
      for (unsigned char c : kEdgeBytes) {
        std::string s = {static_cast<char>(a), static_cast<char>(b),
                         static_cast<char>(c)};
        ASSERT_EQ(Ours(s), Nlohmann(s));
      }
    }
  }
  for (unsigned char a : kEdgeBytes) {
    for (unsigned char b : kEdgeBytes) {
      for (unsigned char c : kEdgeBytes) {
        for (unsigned char d : kEdgeBytes) {
          std::string s = {static_cast<char>(a), static_cast<char>(b),
                           static_cast<char>(c), static_cast<char>(d)};
          ASSERT_EQ(Ours(s), Nlohmann(s));
        }
      }
    }
  }
}

// Long strings, so the eight-bytes-at-a-time scan meets special bytes at
// every offset, mixed with valid multi-byte characters.
TEST(AppendJsonEscapedTest, RandomStringsMatchNlohmann) {
  const std::vector<std::string> pieces = {"plain ascii text ",
                                           "\xC3\xA9",
                                           "\xE2\x82\xAC",
                                           "\xF0\x9F\x98\x80",
                                           "\xE4\xB8\xAD\xE6\x96\x87",
                                           "\"",
                                           "\\",
                                           "\n",
                                           "/"};
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const int parts = static_cast<int>(rng() % 24);
    for (int p = 0; p < parts; ++p) {
      if (rng() % 3 == 0) {
        s += static_cast<char>(kEdgeBytes[rng() % kEdgeBytes.size()]);
      } else {
        s += pieces[rng() % pieces.size()];
      }
    }
    ASSERT_EQ(Ours(s), Nlohmann(s)) << "round " << round;
  }
}

TEST(Utf8PrefixTest, NeverEndsInsideASequence) {
  const std::string text = "a\xC3\xA9\xE4\xB8\x96";  // a, e-acute, a CJK char
  EXPECT_EQ(Utf8Prefix(text, 100), text);
  EXPECT_EQ(Utf8Prefix(text, 6), text);
  EXPECT_EQ(Utf8Prefix(text, 5), "a\xC3\xA9");
  EXPECT_EQ(Utf8Prefix(text, 4), "a\xC3\xA9");
  EXPECT_EQ(Utf8Prefix(text, 2), "a");
  EXPECT_EQ(Utf8Prefix(text, 0), "");
}

TEST(RepairUtf8Test, ReplacesLatin1BytesAndKeepsValidText) {
  // A Latin-1 error page: each accented byte is one invalid subpart.
  EXPECT_EQ(RepairUtf8("caract\xE8re non autoris\xE9"),
            "caract\xEF\xBF\xBDre non autoris\xEF\xBF\xBD");
  EXPECT_EQ(RepairUtf8(""), "");
  EXPECT_EQ(RepairUtf8("h\xC3\xA9 \xF0\x9F\x98\x80"), "h\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(RepairUtf8(std::string("nul\0in", 6)), std::string("nul\0in", 6));
  // A sequence cut short is one replacement; the byte that broke it starts
  // the next one.
  EXPECT_EQ(RepairUtf8("\xE2\x82(x"), "\xEF\xBF\xBD(x");
  EXPECT_EQ(RepairUtf8("\xC3"), "\xEF\xBF\xBD");
  EXPECT_EQ(RepairUtf8("\xED\xA0\x80"),  // a surrogate: three subparts
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_FALSE(IsValidUtf8("caf\xE9"));
}

TEST(RepairUtf8Test, InPlaceRepairsOnlyWhatIsInvalid) {
  std::string valid = "d\xC3\xA9j\xC3\xA0 vu";
  const char* before = valid.data();
  RepairUtf8(&valid);
  EXPECT_EQ(valid, "d\xC3\xA9j\xC3\xA0 vu");
  EXPECT_EQ(valid.data(), before) << "valid text was copied";
  std::string page = "<p>Requ\xEAte invalide</p>";
  RepairUtf8(&page);
  EXPECT_EQ(page, "<p>Requ\xEF\xBF\xBDte invalide</p>");
}

// Every string of up to two bytes, the three- and four-byte edge
// combinations and random mixes: the repair is valid UTF-8 and replaces
// exactly what the JSON escaper (and nlohmann) replace.
TEST(RepairUtf8Test, MatchesNlohmannReplacementEverywhere) {
  const auto check = [](const std::string& s) {
    const std::string repaired = RepairUtf8(s);
    if (!IsValidUtf8(repaired)) return false;
    std::string dumped;
    try {
      dumped = nlohmann::json(repaired).dump();  // strict: throws on bad UTF-8
    } catch (const nlohmann::json::exception&) {
      return false;
    }
    return dumped == Nlohmann(s) && IsValidUtf8(s) == (repaired == s);
  };
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    ASSERT_TRUE(check(one)) << "byte " << a;
    for (int b = 0; b < 256; ++b) {
      ASSERT_TRUE(check(one + static_cast<char>(b))) << a << " " << b;
    }
  }
  for (unsigned char a : kEdgeBytes) {
    for (unsigned char b : kEdgeBytes) {
      for (unsigned char c : kEdgeBytes) {
        for (unsigned char d : kEdgeBytes) {
          std::string s = {static_cast<char>(a), static_cast<char>(b),
                           static_cast<char>(c), static_cast<char>(d)};
          ASSERT_TRUE(check(s));
        }
      }
    }
  }
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const int parts = static_cast<int>(rng() % 40);
    for (int p = 0; p < parts; ++p) {
      if (rng() % 3 == 0) {
        s += static_cast<char>(kEdgeBytes[rng() % kEdgeBytes.size()]);
      } else {
        s += rng() % 2 ? "ascii words here " : "\xE4\xB8\xAD\xC3\xA9";
      }
    }
    ASSERT_TRUE(check(s)) << "round " << round;
  }
}

}  // namespace
}  // namespace distillery
