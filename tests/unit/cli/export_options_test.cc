// The export flags' checks before anything is asked of the coordinator.
#include <gtest/gtest.h>

#include "services/cli/export_command.h"

namespace distillery::cli {
namespace {

ExportOptions WithReasons(std::vector<std::string> reasons) {
  ExportOptions options;
  options.job_ids = {"job-000001"};
  options.finish_reasons = std::move(reasons);
  return options;
}

TEST(BuildExportRequestTest, UnknownFinishReasonIsRefusedListingTheKnownOnes) {
  absl::StatusOr<v1::ExportRequest> request =
      BuildExportRequest(WithReasons({"stop", "stopp"}));
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(request.status().message());
  EXPECT_NE(message.find("no teacher reports 'stopp'"), std::string::npos)
      << message;
  for (const std::string& known : KnownFinishReasons()) {
    EXPECT_NE(message.find(known), std::string::npos) << known;
  }
}

TEST(BuildExportRequestTest, KnownReasonsAndAnyAreSentAsGiven) {
  absl::StatusOr<v1::ExportRequest> request =
      BuildExportRequest(WithReasons({"length", "end_turn"}));
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->finish_reasons_size(), 2);
  EXPECT_EQ(request->finish_reasons(0), "length");
  request = BuildExportRequest(WithReasons({"any", "whatever"}));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->finish_reasons_size(), 0);
  // The errors format has no answers to filter.
  ExportOptions errors = WithReasons({"stopp"});
  errors.format = "errors";
  EXPECT_TRUE(BuildExportRequest(errors).ok());
}

}  // namespace
}  // namespace distillery::cli
