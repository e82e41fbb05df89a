#include "common/teacher/multipart.h"

#include <string_view>
#include <utility>

namespace distillery {
namespace {

constexpr std::string_view kBoundaryBase = "distillery-form-boundary";

// `in` fit for a quoted header parameter or a header value: characters
// that would end or break it become '_'.
std::string HeaderSafe(std::string_view in, bool quoted) {
  std::string out(in);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F || (quoted && (c == '"' || c == '\\'))) c = '_';
  }
  return out;
}

bool AnyPartHolds(const std::vector<MultipartPart>& parts,
                  std::string_view needle) {
  for (const MultipartPart& part : parts) {
    if (part.data.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

MultipartBody BuildMultipartFormData(std::vector<MultipartPart> parts) {
  std::string boundary(kBoundaryBase);
  for (int n = 1; AnyPartHolds(parts, boundary); ++n) {
    boundary = std::string(kBoundaryBase) + "-" + std::to_string(n);
  }
  size_t size = boundary.size() + 8;
  for (const MultipartPart& part : parts) {
    size += part.data.size() + part.name.size() + part.filename.size() +
            part.content_type.size() + boundary.size() + 96;
  }
  MultipartBody out;
  out.content_type = "multipart/form-data; boundary=" + boundary;
  std::string& body = out.body;
  body.reserve(size);
  for (MultipartPart& part : parts) {
    body += "--";
    body += boundary;
    body += "\r\nContent-Disposition: form-data; name=\"";
    body += HeaderSafe(part.name, /*quoted=*/true);
    body += '"';
    if (!part.filename.empty()) {
      body += "; filename=\"";
      body += HeaderSafe(part.filename, /*quoted=*/true);
      body += '"';
    }
    body += "\r\n";
    if (!part.content_type.empty()) {
      body += "Content-Type: ";
      body += HeaderSafe(part.content_type, /*quoted=*/false);
      body += "\r\n";
    }
    body += "\r\n";
    body += part.data;
    std::string().swap(part.data);  // a file can be large: free it as we go
    body += "\r\n";
  }
  body += "--";
  body += boundary;
  body += "--\r\n";
  return out;
}

}  // namespace distillery
