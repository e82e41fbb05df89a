#include "common/teacher/logprobs_codec.h"

#include <cmath>
#include <cstdint>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace distillery {
namespace {

constexpr uint8_t kVersion = 1;
constexpr double kSteps = 1024.0;                // per nat
constexpr int64_t kMaxQuantum = 2'000'000'000;   // about -1.95 million nats

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

int64_t Quantise(double logprob) {
  if (!(logprob < 0)) return 0;  // NaN and positive values too
  const double q = std::round(-logprob * kSteps);
  return q >= kMaxQuantum ? kMaxQuantum : static_cast<int64_t>(q);
}

double Dequantise(int64_t q) { return -static_cast<double>(q) / kSteps; }

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return false;
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool Bytes(uint64_t n, std::string* out) {
    if (n > data_.size() - pos_) return false;
    out->assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  size_t left() const { return data_.size() - pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(
      absl::StrCat("stored logprobs are corrupt: ", std::string(what)));
}

}  // namespace

std::string EncodeLogprobs(const std::vector<TokenLogprob>& tokens) {
  if (tokens.empty()) return "";
  std::unordered_map<std::string_view, uint64_t> index;
  std::vector<std::string_view> dictionary;
  auto id = [&](const std::string& token) {
    auto [it, added] = index.emplace(token, dictionary.size());
    if (added) dictionary.push_back(token);
    return it->second;
  };
  std::string body;
  for (const TokenLogprob& t : tokens) {
    const int64_t chosen = Quantise(t.logprob);
    PutVarint(id(t.token), &body);
    PutVarint(static_cast<uint64_t>(chosen), &body);
    const bool first_is_chosen = !t.top.empty() && t.top[0].first == t.token &&
                                 Quantise(t.top[0].second) == chosen;
    PutVarint((static_cast<uint64_t>(t.top.size()) << 1) | first_is_chosen,
              &body);
    int64_t previous = chosen;
    for (size_t i = first_is_chosen ? 1 : 0; i < t.top.size(); ++i) {
      const int64_t q = Quantise(t.top[i].second);
      PutVarint(id(t.top[i].first), &body);
      PutVarint(ZigZag(q - previous), &body);
      previous = q;
    }
  }
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  PutVarint(tokens.size(), &out);
  PutVarint(dictionary.size(), &out);
  for (std::string_view entry : dictionary) {
    PutVarint(entry.size(), &out);
    out.append(entry);
  }
  out += body;
  return out;
}

absl::StatusOr<std::vector<TokenLogprob>> DecodeLogprobs(
    std::string_view data) {
  std::vector<TokenLogprob> tokens;
  if (data.empty()) return tokens;
  if (static_cast<uint8_t>(data[0]) != kVersion) {
    return Corrupt(absl::StrCat("unknown version ",
                                static_cast<int>(static_cast<uint8_t>(data[0]))));
  }
  Reader in(data.substr(1));
  uint64_t count = 0, entries = 0;
  // Every token takes three bytes at least and every entry one: counts
  // larger than the bytes left are corrupt, whatever they claim.
  if (!in.Varint(&count) || count > in.left() / 3) {
    return Corrupt("token count");
  }
  if (!in.Varint(&entries) || entries > in.left()) {
    return Corrupt("dictionary size");
  }
  std::vector<std::string> dictionary(entries);
  for (std::string& entry : dictionary) {
    uint64_t n = 0;
    if (!in.Varint(&n) || !in.Bytes(n, &entry)) return Corrupt("dictionary");
  }
  auto token = [&](std::string* out) {
    uint64_t i = 0;
    if (!in.Varint(&i) || i >= dictionary.size()) return false;
    *out = dictionary[i];
    return true;
  };
  tokens.resize(count);
  for (TokenLogprob& t : tokens) {
    uint64_t q = 0, tops = 0;
    if (!token(&t.token) || !in.Varint(&q) || !in.Varint(&tops)) {
      return Corrupt("token entry");
    }
    const bool first_is_chosen = tops & 1;
    tops >>= 1;
    if (tops > 20 + in.left()) return Corrupt("alternatives count");
    t.logprob = Dequantise(static_cast<int64_t>(q));
    int64_t previous = static_cast<int64_t>(q);
    t.top.reserve(tops);
    if (first_is_chosen && tops > 0) t.top.emplace_back(t.token, t.logprob);
    for (size_t i = t.top.size(); i < tops; ++i) {
      std::string alternative;
      uint64_t delta = 0;
      if (!token(&alternative) || !in.Varint(&delta)) {
        return Corrupt("alternative entry");
      }
      previous += UnZigZag(delta);
      t.top.emplace_back(std::move(alternative), Dequantise(previous));
    }
  }
  if (in.left() != 0) return Corrupt("bytes after the last token");
  return tokens;
}

}  // namespace distillery
