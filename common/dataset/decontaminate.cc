#include "common/dataset/decontaminate.h"

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

constexpr uint64_t kRollingBase = 0x100000001b3ULL;  // odd: invertible mod 2^64

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c >= 0x80;
}

// The words of `text`, lower-cased, as views into `storage`.
std::vector<std::string_view> Words(std::string_view text,
                                    std::string* storage) {
  storage->assign(text.begin(), text.end());
  for (char& c : *storage) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  std::vector<std::string_view> words;
  const std::string_view s = *storage;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && !IsWordByte(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && IsWordByte(s[i])) ++i;
    if (i > start) words.push_back(s.substr(start, i - start));
  }
  return words;
}

uint64_t WordHash(std::string_view w) { return XXH3_64bits(w.data(), w.size()); }

// A final avalanche, so that the rolling sum's low bits spread, with the
// gram's length mixed in (a short question's whole sequence is a gram of
// its own length).
uint64_t Finalize(uint64_t h, int length) {
  h ^= static_cast<uint64_t>(length) * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// Calls fn(hash, first word index) for every run of `k` consecutive words.
template <typename Fn>
void ForEachGram(const std::vector<uint64_t>& word_hashes, int k, Fn fn) {
  if (k <= 0 || word_hashes.size() < static_cast<size_t>(k)) return;
  uint64_t top = 1;  // base^(k-1)
  for (int i = 1; i < k; ++i) top *= kRollingBase;
  uint64_t h = 0;
  for (int i = 0; i < k; ++i) h = h * kRollingBase + word_hashes[i];
  for (size_t start = 0;; ++start) {
    if (!fn(Finalize(h, k), start)) return;
    const size_t next = start + k;
    if (next >= word_hashes.size()) return;
    h = (h - word_hashes[start] * top) * kRollingBase + word_hashes[next];
  }
}

absl::Status LineError(const std::string& path, int64_t line,
                       std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "--decontaminate ", path, ": line ", line, ": ", std::string(what)));
}

}  // namespace

void Decontaminator::AddQuestion(std::string_view text, uint32_t line) {
  std::string storage;
  const std::vector<std::string_view> words = Words(text, &storage);
  if (words.size() < static_cast<size_t>(kMinQuestionWords)) return;
  ++questions_;
  std::vector<uint64_t> word_hashes;
  word_hashes.reserve(words.size());
  for (std::string_view w : words) word_hashes.push_back(WordHash(w));
  const int k = std::min<int>(n_, static_cast<int>(words.size()));
  if (k < n_ &&
      std::find(short_lengths_.begin(), short_lengths_.end(), k) ==
          short_lengths_.end()) {
    short_lengths_.push_back(k);
  }
  ForEachGram(word_hashes, k, [&](uint64_t h, size_t) {
    hashes_.push_back(h);
    lines_.push_back(line);
    return true;
  });
}

void Decontaminator::Finish() {
  std::vector<uint32_t> order(hashes_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return hashes_[a] != hashes_[b] ? hashes_[a] < hashes_[b]
                                    : lines_[a] < lines_[b];
  });
  std::vector<uint64_t> hashes;
  std::vector<uint32_t> lines;
  hashes.reserve(order.size());
  lines.reserve(order.size());
  for (uint32_t i : order) {
    if (!hashes.empty() && hashes.back() == hashes_[i]) continue;
    hashes.push_back(hashes_[i]);
    lines.push_back(lines_[i]);
  }
  hashes.shrink_to_fit();
  lines.shrink_to_fit();
  hashes_ = std::move(hashes);
  lines_ = std::move(lines);
}

absl::StatusOr<Decontaminator> Decontaminator::Load(const std::string& path,
                                                    int ngram_words) {
  if (ngram_words < 1) {
    return absl::InvalidArgumentError(
        "--decontaminate-ngram must be at least 1");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("--decontaminate ", path,
                                            ": cannot open: ",
                                            std::strerror(errno)));
  }
  Decontaminator d(ngram_words);
  std::optional<bool> jsonl;  // decided by the first non-blank line
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!jsonl) {
      const size_t first = line.find_first_not_of(" \t");
      jsonl = line[first] == '{' &&
              nlohmann::json::parse(line, nullptr, false).is_object();
    }
    if (!*jsonl) {
      d.AddQuestion(line, static_cast<uint32_t>(number));
      continue;
    }
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_object()) return LineError(path, number, "not a JSON object");
    const nlohmann::json* text = nullptr;
    for (const char* field : {"question", "problem", "prompt", "text"}) {
      if (auto it = row.find(field); it != row.end()) {
        text = &*it;
        break;
      }
    }
    if (text == nullptr || !text->is_string()) {
      return LineError(path, number,
                       "no \"question\", \"problem\", \"prompt\" or \"text\" "
                       "string field");
    }
    d.AddQuestion(text->get_ref<const std::string&>(),
                  static_cast<uint32_t>(number));
  }
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrCat("--decontaminate ", path, ": read failed"));
  }
  if (d.questions_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--decontaminate ", path, ": no questions (of at least ",
        kMinQuestionWords, " words)"));
  }
  d.Finish();
  return d;
}

std::optional<ContaminationMatch> Decontaminator::Find(
    std::string_view text) const {
  std::string storage;
  const std::vector<std::string_view> words = Words(text, &storage);
  std::vector<uint64_t> word_hashes;
  word_hashes.reserve(words.size());
  for (std::string_view w : words) word_hashes.push_back(WordHash(w));
  std::optional<ContaminationMatch> match;
  auto probe = [&](int k) {
    ForEachGram(word_hashes, k, [&](uint64_t h, size_t start) {
      auto it = std::lower_bound(hashes_.begin(), hashes_.end(), h);
      if (it == hashes_.end() || *it != h) return true;
      ContaminationMatch m;
      m.benchmark_line = lines_[it - hashes_.begin()];
      for (int i = 0; i < k; ++i) {
        if (i > 0) m.ngram.push_back(' ');
        m.ngram.append(words[start + i]);
      }
      match = std::move(m);
      return false;
    });
  };
  probe(n_);
  for (size_t i = 0; !match && i < short_lengths_.size(); ++i) {
    probe(short_lengths_[i]);
  }
  return match;
}

}  // namespace distillery
