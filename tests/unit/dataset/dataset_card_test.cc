// Dataset cards and the dataset builder (common/dataset/dataset_card,
// dataset_builder): records go to their split's buffer as lines of the
// chosen format, and the card's front matter is YAML the Hub reads, with
// configs/data_files naming the files, and a body with the provenance.
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "common/dataset/dataset_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace distillery {
namespace {

using ::testing::HasSubstr;

v1::ExportRecord Record(const std::string& id, int64_t seq, int sample,
                        const std::string& teacher = "sim") {
  v1::ExportRecord r;
  r.set_job_id("job-000001");
  r.mutable_prompt()->set_id(id);
  v1::ChatMessage* m = r.mutable_prompt()->add_messages();
  m->set_role("user");
  m->set_content("What is " + id + "?");
  r.mutable_prompt()->set_metadata_json(R"({"answer":"4"})");
  r.mutable_task()->set_prompt_seq(seq);
  r.mutable_task()->set_sample(sample);
  r.mutable_task()->set_state(v1::TASK_STATE_DONE);
  v1::Answer* a = r.mutable_answer();
  a->set_content("4");
  a->set_reasoning("2 + 2 = 4");
  a->set_teacher(teacher);
  a->set_model("sim-reasoner");
  a->mutable_usage()->set_prompt_tokens(10);
  a->mutable_usage()->set_completion_tokens(20);
  a->mutable_usage()->set_reasoning_tokens(5);
  a->set_cost_usd(0.25);
  a->set_received_ms(1'780'000'000'000 + seq * 1000);
  return r;
}

v1::Job Job() {
  v1::Job job;
  job.set_id("job-000001");
  job.mutable_spec()->set_teacher("sim");
  job.mutable_spec()->set_model("sim-reasoner");
  job.mutable_spec()->set_samples(2);
  job.mutable_spec()->set_source("rows.jsonl");
  job.mutable_spec()->mutable_params()->set_temperature(0.7);
  job.mutable_counters()->set_prompts(50);
  job.set_created_ms(1'779'999'000'000);
  job.set_finished_ms(1'780'000'100'000);
  return job;
}

// The YAML between the first two "---" lines.
YAML::Node FrontMatter(const std::string& card) {
  EXPECT_EQ(card.rfind("---\n", 0), 0u) << card;
  const size_t end = card.find("\n---\n", 4);
  EXPECT_NE(end, std::string::npos) << card;
  return YAML::Load(card.substr(4, end - 4));
}

TEST(DatasetBuilderTest, SplitsRecordsByPromptIntoTheirPartsAsLines) {
  v1::ExportLayout layout;
  layout.set_format("chat");
  layout.set_split("train=0.8,test=0.2");
  layout.set_split_seed(3);
  absl::StatusOr<DatasetBuilder> b = DatasetBuilder::Create(layout);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->part_names(), (std::vector<std::string>{"train", "test"}));
  std::vector<std::string> parts(2);
  std::vector<int> part_of(50, -1);
  for (int p = 0; p < 50; ++p) {
    for (int s = 0; s < 2; ++s) {
      const int i = b->Add(Record("q" + std::to_string(p), p, s), &parts);
      if (s == 1) EXPECT_EQ(i, part_of[p]) << "samples of a prompt split up";
      part_of[p] = i;
    }
  }
  EXPECT_EQ(b->records(), 100);
  EXPECT_EQ(b->part_records()[0] + b->part_records()[1], 100);
  EXPECT_GT(b->part_records()[1], 0);
  int lines = 0;
  for (const std::string& part : parts) {
    size_t start = 0;
    for (size_t nl; (nl = part.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      const nlohmann::json line =
          nlohmann::json::parse(part.substr(start, nl - start));
      EXPECT_EQ(line.at("messages").back().at("reasoning_content"),
                "2 + 2 = 4");
      ++lines;
    }
    EXPECT_EQ(start, part.size()) << "a line without its newline";
  }
  EXPECT_EQ(lines, 100);
}

TEST(DatasetBuilderTest, BadLayoutsAreRefusedNamingWhatIsWrong) {
  const auto error = [](v1::ExportLayout layout) {
    absl::StatusOr<DatasetBuilder> b = DatasetBuilder::Create(layout);
    EXPECT_FALSE(b.ok());
    return std::string(b.status().message());
  };
  v1::ExportLayout layout;
  layout.set_format("openai");
  layout.set_reasoning("field");
  EXPECT_THAT(error(layout), HasSubstr("--format chat"));
  layout.Clear();
  layout.set_split("train=0.5");
  EXPECT_THAT(error(layout), HasSubstr("sum"));
  layout.Clear();
  layout.set_split("train-a=0.5,test=0.5");
  layout.mutable_card()->add_data_files("d.train-a.jsonl");
  layout.mutable_card()->add_data_files("d.test.jsonl");
  EXPECT_THAT(error(layout), HasSubstr("split name 'train-a'"));
  layout.Clear();
  layout.mutable_card()->set_license("Apache 2.0");
  layout.mutable_card()->add_data_files("d.jsonl");
  EXPECT_THAT(error(layout), HasSubstr("--license 'Apache 2.0'"));
  layout.Clear();
  layout.mutable_card()->add_languages("en us");
  layout.mutable_card()->add_data_files("d.jsonl");
  EXPECT_THAT(error(layout), HasSubstr("--language 'en us'"));
}

TEST(DatasetCardTest, FrontMatterNamesTheFilesAndSplitsForTheHub) {
  v1::ExportLayout layout;
  layout.set_format("openai");
  layout.set_split("train=0.9,test=0.1");
  v1::DatasetCardOptions* card = layout.mutable_card();
  card->add_data_files("data.train.jsonl");
  card->add_data_files("data.test.jsonl");
  card->set_license("apache-2.0");
  card->add_languages("en");
  card->add_languages("no");  // Norwegian, not YAML 1.1's false
  card->set_pretty_name("Maths: \"hard\" | set \\");
  absl::StatusOr<DatasetBuilder> b = DatasetBuilder::Create(layout);
  ASSERT_TRUE(b.ok()) << b.status();
  b->card().AddJob(Job());
  std::vector<std::string> parts(2);
  for (int p = 0; p < 50; ++p) {
    b->Add(Record("q" + std::to_string(p), p, 0, p < 40 ? "sim" : "other"),
           &parts);
  }
  v1::ExportRequest request;
  request.add_job_ids("job-000001");
  request.add_finish_reasons("stop");
  request.set_near_dup_threshold(0.85);
  v1::ExportSummary summary;
  summary.set_duplicates_left_out(7);
  summary.set_near_duplicates_left_out(3);
  const std::string text = b->RenderCard(request, summary);

  const YAML::Node front = FrontMatter(text);
  EXPECT_EQ(front["license"].as<std::string>(), "apache-2.0");
  EXPECT_EQ(front["pretty_name"].as<std::string>(),
            "Maths: \"hard\" | set \\");
  EXPECT_EQ(front["language"][0].as<std::string>(), "en");
  EXPECT_EQ(front["language"][1].as<std::string>(), "no");
  EXPECT_THAT(text, HasSubstr("- \"no\"\n"));
  EXPECT_EQ(front["task_categories"][0].as<std::string>(), "text-generation");
  EXPECT_EQ(front["size_categories"][0].as<std::string>(), "n<1K");
  std::vector<std::string> tags;
  for (const YAML::Node& t : front["tags"]) tags.push_back(t.as<std::string>());
  EXPECT_EQ(tags, (std::vector<std::string>{"distillation", "synthetic"}));
  const YAML::Node config = front["configs"][0];
  EXPECT_EQ(config["config_name"].as<std::string>(), "default");
  ASSERT_EQ(config["data_files"].size(), 2u);
  EXPECT_EQ(config["data_files"][0]["split"].as<std::string>(), "train");
  EXPECT_EQ(config["data_files"][0]["path"].as<std::string>(),
            "data.train.jsonl");
  EXPECT_EQ(config["data_files"][1]["split"].as<std::string>(), "test");
  EXPECT_EQ(config["data_files"][1]["path"].as<std::string>(),
            "data.test.jsonl");

  // The body: teachers with their answers, dates, parameters, counts,
  // tokens, cost, filters and the terms note.
  EXPECT_THAT(text, HasSubstr("| sim | sim-reasoner | 40 |"));
  EXPECT_THAT(text, HasSubstr("| other | sim-reasoner | 10 |"));
  EXPECT_THAT(text, HasSubstr("2026-05-28"));  // 1,780,000,000 s
  EXPECT_THAT(text, HasSubstr("samples 2"));
  EXPECT_THAT(text, HasSubstr("temperature 0.7"));
  EXPECT_THAT(text, HasSubstr("from rows.jsonl"));
  EXPECT_THAT(text, HasSubstr("| Prompts | 50 |"));
  EXPECT_THAT(text, HasSubstr("| Records | 50 |"));
  EXPECT_THAT(text, HasSubstr("| Exact duplicates left out | 7 |"));
  EXPECT_THAT(text, HasSubstr("| Near-duplicates left out | 3 |"));
  EXPECT_THAT(text, HasSubstr("| Verified answers | not checked |"));
  EXPECT_THAT(text, HasSubstr("| Prompt tokens | 500 |"));
  EXPECT_THAT(text, HasSubstr("| Completion tokens | 1000 |"));
  EXPECT_THAT(text, HasSubstr("| of which reasoning | 250 |"));
  EXPECT_THAT(text, HasSubstr("12.5000"));
  EXPECT_THAT(text, HasSubstr("finish reasons: stop"));
  EXPECT_THAT(text, HasSubstr("near-duplicates left out at Jaccard >= 0.85"));
  EXPECT_THAT(text, HasSubstr("terms of use apply"));
  EXPECT_THAT(text, HasSubstr("(reasoning traces: left out)"));
  // The title's '|' cannot break a table or the heading.
  EXPECT_THAT(text, HasSubstr("# Maths: \"hard\" \\| set \\\\\n"));
}

TEST(DatasetCardTest, OneFileIsTheTrainSplitAndDefaultsAreOther) {
  v1::ExportLayout layout;
  layout.set_format("chat");
  layout.mutable_card()->add_data_files("my data.jsonl");
  absl::StatusOr<DatasetBuilder> b = DatasetBuilder::Create(layout);
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<std::string> parts(1);
  for (int p = 0; p < 1500; ++p) b->Add(Record("q", p, 0), &parts);
  const std::string text = b->RenderCard(v1::ExportRequest(), {});
  const YAML::Node front = FrontMatter(text);
  EXPECT_EQ(front["license"].as<std::string>(), "other");
  EXPECT_FALSE(front["language"]);
  EXPECT_EQ(front["size_categories"][0].as<std::string>(), "1K<n<10K");
  const YAML::Node files = front["configs"][0]["data_files"];
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0]["split"].as<std::string>(), "train");
  EXPECT_EQ(files[0]["path"].as<std::string>(), "my data.jsonl");
  EXPECT_THAT(text, HasSubstr("\"reasoning_content\""));
}

TEST(DatasetCardTest, VerifiedJobsCountTheirChecks) {
  v1::ExportLayout layout;
  layout.set_format("chat");
  layout.mutable_card()->add_data_files("d.jsonl");
  absl::StatusOr<DatasetBuilder> b = DatasetBuilder::Create(layout);
  ASSERT_TRUE(b.ok()) << b.status();
  v1::Job job = Job();
  job.mutable_spec()->set_verify("math");
  job.mutable_spec()->set_until_correct(1);
  job.mutable_spec()->set_max_samples(4);
  job.mutable_spec()->set_samples(1);
  b->card().AddJob(job);
  std::vector<std::string> parts(1);
  for (int p = 0; p < 10; ++p) {
    v1::ExportRecord r = Record("q" + std::to_string(p), p, 0);
    r.mutable_task()->set_verify_state(p < 6   ? v1::VERIFY_STATE_VERIFIED
                                       : p < 9 ? v1::VERIFY_STATE_REJECTED
                                               : v1::VERIFY_STATE_NO_REFERENCE);
    b->Add(r, &parts);
  }
  v1::ExportRequest request;
  request.set_verified_only(true);
  request.set_max_pass_rate(0.5);
  const std::string text = b->RenderCard(request, {});
  EXPECT_THAT(text, HasSubstr("| Verified answers | 6 |"));
  EXPECT_THAT(text, HasSubstr("| Answers found wrong | 3 |"));
  EXPECT_THAT(text, HasSubstr("| Answers without a reference | 1 |"));
  EXPECT_THAT(text, HasSubstr("answers checked by --verify math"));
  EXPECT_THAT(text, HasSubstr("sampled until 1 verified, at most 4 samples"));
  EXPECT_THAT(text, HasSubstr("verified answers only"));
  EXPECT_THAT(text, HasSubstr("max pass rate 0.5"));
}

}  // namespace
}  // namespace distillery
