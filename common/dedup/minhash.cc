#include "common/dedup/minhash.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include <xxhash.h>

namespace distillery {
namespace {

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c >= 0x80;
}

// SplitMix64: fixed multipliers and offsets for the 128 hash functions,
// the same in every process and version (signatures are stored).
uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Permutations {
  std::array<uint64_t, kMinHashSize> a;  // odd: x -> a x + b is a bijection
  std::array<uint64_t, kMinHashSize> b;
  Permutations() {
    uint64_t state = 0x64697374696c6c31ULL;  // "distill1"
    for (int i = 0; i < kMinHashSize; ++i) {
      a[i] = SplitMix(state) | 1;
      b[i] = SplitMix(state);
    }
  }
};

const Permutations& GetPermutations() {
  static const Permutations* p = new Permutations();
  return *p;
}

uint32_t Row(std::string_view sig, int i) {
  uint32_t v = 0;
  for (int k = 3; k >= 0; --k) {
    v = (v << 8) | static_cast<unsigned char>(sig[4 * i + k]);
  }
  return v;
}

}  // namespace

std::vector<std::string> MinHashWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (IsWordByte(c)) {
      word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : ch);
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

std::string MinHashSignature(std::string_view text) {
  // The text's words, lower-cased, each followed by one space, in one
  // buffer: a shingle of k words ("w1 w2 ... wk ") is then one contiguous
  // slice, hashed without building it. Same shingles as joining
  // MinHashWords, so signatures match those stored by earlier versions.
  std::string words;
  words.reserve(text.size() + 1);
  std::vector<size_t> starts;  // where each word begins in `words`
  bool in_word = false;
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (IsWordByte(c)) {
      if (!in_word) starts.push_back(words.size());
      words.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : ch);
      in_word = true;
    } else if (in_word) {
      words.push_back(' ');
      in_word = false;
    }
  }
  if (in_word) words.push_back(' ');
  if (starts.empty()) return "";
  starts.push_back(words.size());  // the end of the last word's slice
  const size_t n = starts.size() - 1;
  const size_t k = std::min<size_t>(kShingleWords, n);
  std::array<uint64_t, kMinHashSize> mins;
  mins.fill(std::numeric_limits<uint64_t>::max());
  const Permutations& p = GetPermutations();
  for (size_t first = 0; first + k <= n; ++first) {
    const uint64_t h = XXH3_64bits(words.data() + starts[first],
                                   starts[first + k] - starts[first]);
    for (int i = 0; i < kMinHashSize; ++i) {
      mins[i] = std::min(mins[i], p.a[i] * h + p.b[i]);
    }
  }
  std::string sig(4 * kMinHashSize, '\0');
  for (int i = 0; i < kMinHashSize; ++i) {
    // The high half: the low bits of a*x+b mod 2^64 are poorly mixed.
    const uint32_t v = static_cast<uint32_t>(mins[i] >> 32);
    for (int b = 0; b < 4; ++b) sig[4 * i + b] = static_cast<char>(v >> (8 * b));
  }
  return sig;
}

double EstimateJaccard(std::string_view a, std::string_view b) {
  constexpr size_t kBytes = 4 * kMinHashSize;
  if (a.size() != kBytes || b.size() != kBytes) return 0;
  int equal = 0;
  for (int i = 0; i < kMinHashSize; ++i) equal += Row(a, i) == Row(b, i);
  return static_cast<double>(equal) / kMinHashSize;
}

std::vector<std::string> LshBandKeys(std::string_view signature) {
  std::vector<std::string> keys;
  if (signature.size() != 4 * kMinHashSize) return keys;
  keys.reserve(kMinHashBands);
  for (int band = 0; band < kMinHashBands; ++band) {
    const std::string_view rows =
        signature.substr(4 * kMinHashRows * band, 4 * kMinHashRows);
    const uint64_t h = XXH3_64bits(rows.data(), rows.size());
    std::string key(1, static_cast<char>(band));
    for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(h >> (8 * i)));
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace distillery
