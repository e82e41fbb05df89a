#include "common/store/wire_fields.h"

#include <algorithm>
#include <cstdint>

namespace distillery {
namespace {

bool ReadVarint(std::string_view bytes, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *pos < bytes.size(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(bytes[(*pos)++]);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Calls fn(field, wire type, start, end) for each field of `bytes`, where
// [start, end) are the field's bytes, tag included; false when the bytes
// are not a message.
template <typename Fn>
bool ForEachField(std::string_view bytes, Fn fn) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t start = pos;
    uint64_t tag = 0;
    if (!ReadVarint(bytes, &pos, &tag)) return false;
    uint64_t n = 0;
    switch (tag & 7) {
      case 0:
        if (!ReadVarint(bytes, &pos, &n)) return false;
        break;
      case 1:
        if (bytes.size() - pos < 8) return false;
        pos += 8;
        break;
      case 2:
        if (!ReadVarint(bytes, &pos, &n) || n > bytes.size() - pos) {
          return false;
        }
        pos += n;
        break;
      case 5:
        if (bytes.size() - pos < 4) return false;
        pos += 4;
        break;
      default:  // groups: not in Distillery's messages
        return false;
    }
    if ((tag >> 3) == 0) return false;  // field 0 is never valid
    fn(static_cast<int>(tag >> 3), static_cast<int>(tag & 7), start, pos);
  }
  return true;
}

}  // namespace

bool WithoutField(std::string_view& bytes, int field, std::string* scratch) {
  size_t kept_from = 0;  // start of the bytes not yet copied
  bool cut = false;
  const bool ok = ForEachField(
      bytes, [&](int number, int wire_type, size_t start, size_t end) {
        if (number != field || wire_type != 2) return;
        if (!cut) scratch->clear();
        scratch->append(bytes.data() + kept_from, start - kept_from);
        kept_from = end;
        cut = true;
      });
  if (!ok) return false;
  if (cut) {
    scratch->append(bytes.data() + kept_from, bytes.size() - kept_from);
    bytes = *scratch;
  }
  return true;
}

bool SelectFields(std::string_view bytes, std::initializer_list<int> fields,
                  std::string* out) {
  return ForEachField(bytes,
                      [&](int number, int, size_t start, size_t end) {
                        if (std::find(fields.begin(), fields.end(), number) !=
                            fields.end()) {
                          out->append(bytes.data() + start, end - start);
                        }
                      });
}

void AppendLengthDelimited(int field, std::string_view value,
                           std::string* out) {
  AppendVarint((static_cast<uint64_t>(field) << 3) | 2, out);
  AppendVarint(value.size(), out);
  out->append(value.data(), value.size());
}

size_t LengthDelimitedSize(int field, size_t size) {
  return VarintSize((static_cast<uint64_t>(field) << 3) | 2) +
         VarintSize(size) + size;
}

}  // namespace distillery
