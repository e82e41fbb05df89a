// A multipart/form-data body (RFC 7578), for OpenAI's file upload
// (POST /v1/files with the fields `purpose` and `file`). Builds the whole
// body in memory: batch input files are at most a few hundred MB, and the
// HttpClient sends one string. Pure functions, thread-safe.
#ifndef DISTILLERY_COMMON_TEACHER_MULTIPART_H_
#define DISTILLERY_COMMON_TEACHER_MULTIPART_H_

#include <string>
#include <vector>

namespace distillery {

// One field of a form. A file field has a filename and (usually) a content
// type; a plain field has neither.
struct MultipartPart {
  std::string name;
  std::string filename;      // "" for a plain field
  std::string content_type;  // "" sends no Content-Type for the part
  std::string data;
};

struct MultipartBody {
  // "multipart/form-data; boundary=<boundary>", the request's Content-Type.
  std::string content_type;
  std::string body;
};

// The body holding `parts` in order, CRLF line ends:
//   --B\r\nContent-Disposition: form-data; name="N"[; filename="F"]\r\n
//   [Content-Type: T\r\n]\r\n<data>\r\n ... --B--\r\n
// The boundary is "distillery-form-boundary", with a counter appended while
// it occurs in any part's data, so the same parts give the same bytes.
// Quotes, backslashes and control characters in names and filenames are
// written as '_' (they cannot be escaped portably); control characters in a
// content type likewise.
MultipartBody BuildMultipartFormData(std::vector<MultipartPart> parts);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_TEACHER_MULTIPART_H_
