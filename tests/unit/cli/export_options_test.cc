// The export flags' checks before anything is asked of the coordinator.
#include <gtest/gtest.h>

#include "services/cli/export_command.h"

#include "common/dataset/export_filter.h"

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

TEST(BuildExportRequestTest, LayoutChecksComeBeforeTheCoordinator) {
  ExportOptions options = WithReasons({"stop"});
  options.reasoning = "field";  // openai has no key for it
  absl::StatusOr<v1::ExportRequest> request = BuildExportRequest(options);
  ASSERT_FALSE(request.ok());
  EXPECT_NE(request.status().message().find("--format chat"),
            std::string::npos);
  options = WithReasons({"stop"});
  options.format = "chat";
  options.reasoning_key = "content";
  EXPECT_FALSE(BuildExportRequest(options).ok());
  options = WithReasons({"stop"});
  options.card = true;
  request = BuildExportRequest(options);
  ASSERT_FALSE(request.ok());
  EXPECT_NE(request.status().message().find("give --out"), std::string::npos);
  options.out = "out/data.jsonl";
  options.license = "not a license";
  request = BuildExportRequest(options);
  ASSERT_FALSE(request.ok());
  EXPECT_NE(request.status().message().find("--license"), std::string::npos);
  options.license = "mit";
  request = BuildExportRequest(options);
  ASSERT_TRUE(request.ok()) << request.status();
  // The CLI formats on its side: the coordinator is sent no layout.
  EXPECT_FALSE(request->has_layout());
}

TEST(BuildExportLayoutTest, TheCardNamesTheFilesBesideIt) {
  ExportOptions options = WithReasons({"stop"});
  options.out = "runs/r1/data.jsonl";
  options.card = true;
  options.languages = {"en", "fr"};
  v1::ExportLayout layout = BuildExportLayout(options);
  ASSERT_EQ(layout.card().data_files_size(), 1);
  EXPECT_EQ(layout.card().data_files(0), "data.jsonl");
  EXPECT_EQ(layout.card().languages_size(), 2);
  EXPECT_EQ(CardPath(options.out), "runs/r1/README.md");
  EXPECT_EQ(CardPath("data.jsonl"), "README.md");
  options.split = "train=0.9,validation=0.1";
  layout = BuildExportLayout(options);
  ASSERT_EQ(layout.card().data_files_size(), 2);
  EXPECT_EQ(layout.card().data_files(0), "data.train.jsonl");
  EXPECT_EQ(layout.card().data_files(1), "data.validation.jsonl");
  EXPECT_EQ(layout.split(), "train=0.9,validation=0.1");
  options.card = false;
  EXPECT_FALSE(BuildExportLayout(options).has_card());
}

}  // namespace
}  // namespace distillery::cli
