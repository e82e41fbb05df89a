// Wire fields: the edits and reads on serialised messages agree with
// protobuf's own parsing, and bytes that are not a message are refused.
#include "common/store/wire_fields.h"

#include <string>
#include <string_view>

#include "distillery/v1/types.pb.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

v1::Answer FullAnswer() {
  v1::Answer a;
  a.set_content(std::string(300, 'c'));  // a length past one varint byte
  a.set_reasoning("because");
  a.set_finish_reason("stop");
  a.mutable_usage()->set_completion_tokens(12);
  a.mutable_usage()->set_reasoning_tokens(5);
  a.set_raw_body("{\"raw\": 1}");
  a.set_received_ms(1234567890123);
  a.set_request_key(std::string("\x00\x01\xff key", 8));
  a.set_duplicate_of("first");
  a.set_minhash(std::string(64, '\x7f'));
  a.set_cost_usd(0.25);  // a fixed64
  a.set_choice_index(3);
  return a;
}

TEST(WireFieldsTest, SelectFieldsKeepsOnlyThoseFields) {
  const v1::Answer full = FullAnswer();
  const std::string bytes = full.SerializeAsString();
  std::string out;
  ASSERT_TRUE(SelectFields(bytes,
                           {v1::Answer::kFinishReasonFieldNumber,
                            v1::Answer::kUsageFieldNumber,
                            v1::Answer::kCostUsdFieldNumber},
                           &out));
  v1::Answer selected;
  ASSERT_TRUE(selected.ParseFromString(out));
  v1::Answer expected;
  expected.set_finish_reason("stop");
  *expected.mutable_usage() = full.usage();
  expected.set_cost_usd(0.25);
  EXPECT_EQ(selected.SerializeAsString(), expected.SerializeAsString());
  // Appends: what was there stays.
  std::string more = "x";
  ASSERT_TRUE(SelectFields(bytes, {v1::Answer::kContentFieldNumber}, &more));
  EXPECT_EQ(more.substr(0, 1), "x");
  ASSERT_TRUE(selected.ParseFromString(more.substr(1)));
  EXPECT_EQ(selected.content(), full.content());
  EXPECT_TRUE(selected.finish_reason().empty());
}

TEST(WireFieldsTest, WithoutFieldLeavesTheRestAsItWas) {
  const v1::Answer full = FullAnswer();
  const std::string bytes = full.SerializeAsString();
  std::string_view view = bytes;
  std::string scratch;
  ASSERT_TRUE(WithoutField(view, v1::Answer::kRawBodyFieldNumber, &scratch));
  EXPECT_EQ(view.data(), scratch.data()) << "cut into the scratch";
  v1::Answer cut;
  ASSERT_TRUE(cut.ParseFromArray(view.data(), static_cast<int>(view.size())));
  v1::Answer expected = full;
  expected.clear_raw_body();
  EXPECT_EQ(cut.SerializeAsString(), expected.SerializeAsString());
  // Nothing to leave out: the bytes are not copied.
  std::string_view same = bytes;
  ASSERT_TRUE(WithoutField(same, v1::Answer::kLogprobsFieldNumber, &scratch));
  EXPECT_EQ(same.data(), bytes.data());
}

TEST(WireFieldsTest, AFieldGivenTwiceIsKeptTwiceAndTheLastCounts) {
  std::string twice = FullAnswer().SerializeAsString();
  AppendLengthDelimited(v1::Answer::kRequestKeyFieldNumber, "later", &twice);
  std::string out;
  ASSERT_TRUE(SelectFields(twice, {v1::Answer::kRequestKeyFieldNumber}, &out));
  v1::Answer parsed;
  ASSERT_TRUE(parsed.ParseFromString(out));
  EXPECT_EQ(parsed.request_key(), "later") << "as for a parser of the whole";
}

TEST(WireFieldsTest, AppendLengthDelimitedNestsAMessage) {
  const v1::Answer answer = FullAnswer();
  v1::Task task;
  task.set_job_id("job-1");
  task.set_prompt_seq(7);
  // A v1::Prompt whose field 1 is a string: nest the answer's bytes as a
  // field of an outer message the way an export record nests its parts.
  std::string outer;
  AppendLengthDelimited(v1::Answer::kUsageFieldNumber,
                        answer.usage().SerializeAsString(), &outer);
  EXPECT_EQ(outer.size(),
            LengthDelimitedSize(v1::Answer::kUsageFieldNumber,
                                answer.usage().ByteSizeLong()));
  v1::Answer parsed;
  ASSERT_TRUE(parsed.ParseFromString(outer));
  EXPECT_EQ(parsed.usage().completion_tokens(), 12);
  // Long values: the length takes more than one varint byte.
  const std::string big(20000, 'z');
  std::string long_field;
  AppendLengthDelimited(v1::Answer::kContentFieldNumber, big, &long_field);
  EXPECT_EQ(long_field.size(),
            LengthDelimitedSize(v1::Answer::kContentFieldNumber, big.size()));
  ASSERT_TRUE(parsed.ParseFromString(long_field));
  EXPECT_EQ(parsed.content(), big);
}

TEST(WireFieldsTest, BytesThatAreNotAMessageAreRefused) {
  const std::string bytes = FullAnswer().SerializeAsString();
  std::string out;
  for (const std::string& bad :
       {bytes.substr(0, bytes.size() - 1),   // cut short inside a field
        std::string("\x0a\x7f", 2),          // a length past the end
        std::string("\x0b", 1),              // a group
        std::string("\x00\x01", 2),          // field 0
        std::string("\x80\x80", 2),          // a varint that never ends
        std::string("\x09\x01\x02", 3)}) {   // a fixed64 cut short
    std::string_view view = bad;
    EXPECT_FALSE(SelectFields(bad, {1}, &out)) << bad.size();
    EXPECT_FALSE(WithoutField(view, 1, &out)) << bad.size();
  }
  // The empty message is a message.
  EXPECT_TRUE(SelectFields("", {1}, &out));
}

}  // namespace
}  // namespace distillery
