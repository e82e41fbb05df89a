// Coordinator export on a real RocksDB store in a temp directory, with
// answers committed through the worker API: near-duplicate counting at
// commit, export-time near-duplicate removal, filters, dead letters, order.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "google/protobuf/util/message_differencer.h"
#include "common/store/store.h"
#include "common/store/store_wrapper.h"
#include "services/coordinator/coordinator.h"
#include "tests/unit/coordinator/coordinator_steps.h"

namespace distillery {
namespace {

const char kBase[] =
    "Photosynthesis is the process by which green plants, algae and some "
    "bacteria turn light energy into chemical energy. Inside the chloroplast, "
    "chlorophyll absorbs sunlight, which drives the splitting of water into "
    "oxygen, protons and electrons. The electrons pass along a transport "
    "chain that produces ATP and NADPH. In the Calvin cycle these molecules "
    "power the fixation of carbon dioxide into sugars such as glucose, which "
    "the plant uses for growth and stores as starch. Oxygen is released as a "
    "by-product, which is why plants are essential to life on Earth.";

// One word changed: 10 of ~94 distinct 5-word shingles differ, J ~ 0.89.
std::string Reworded() {
  std::string s = kBase;
  s.replace(s.find("stores as"), 6, "keeps");
  return s;
}

const char kUnrelated[] =
    "A binary search tree keeps its keys in order: every key in the left "
    "subtree of a node is smaller than the node's key and every key in the "
    "right subtree is larger. Lookups walk down from the root, comparing at "
    "each step, so a balanced tree answers in logarithmic time.";

struct Reply {
  std::string content;
  std::string finish = "stop";
  bool fail = false;
};

// Counts the answers read by request key; with `copies` off it is a store
// written before answers were also kept under their tasks' keys.
class CountingStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  absl::StatusOr<std::vector<std::optional<v1::Answer>>> GetAnswers(
      const std::vector<std::string>& request_keys) override {
    read_by_key += static_cast<int>(request_keys.size());
    return StoreWrapper::GetAnswers(request_keys);
  }
  absl::Status ScanTaskRecords(
      const std::string& job_id,
      const std::function<bool(const StoredTask&)>& fn) override {
    return StoreWrapper::ScanTaskRecords(job_id, [&](const StoredTask& t) {
      if (t.task.prompt_seq() == corrupt_answer_of) {
        return fn(StoredTask{t.task, t.task_bytes, t.prompt, "\x0a\x7f"});
      }
      if (copies) return fn(t);
      return fn(StoredTask{t.task, t.task_bytes, t.prompt, std::nullopt});
    });
  }
  int read_by_key = 0;
  bool copies = true;
  // The prompt whose answer copy reads as bytes that are not a message.
  int64_t corrupt_answer_of = -1;
};

class CoordinatorExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("coord_export_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    Open();
  }
  void TearDown() override {
    coordinator_.reset();
    counting_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Open(CoordinatorOptions options = {}) {
    coordinator_.reset();
    counting_.reset();
    store_.reset();
    store_ = std::move(*OpenRocksDbStore(dir_));
    counting_ = std::make_unique<CountingStore>(*store_);
    TeacherProfile sim;
    sim.name = "sim";
    coordinator_ = std::make_unique<Coordinator>(
        *counting_, std::vector<TeacherProfile>{sim}, clock_, options);
    ASSERT_TRUE(coordinator_->Recover().ok());
  }

  // Submits `lines` and answers task (seq, 0) with replies[seq].
  std::string Harvest(const std::vector<std::string>& lines,
                      const std::vector<Reply>& replies,
                      const std::string& model = "m") {
    v1::JobSpec spec;
    spec.set_teacher("sim");
    spec.set_model(model);
    spec.set_samples(1);
    auto submission = coordinator_->BeginSubmission(spec);
    EXPECT_TRUE(submission.ok());
    google::protobuf::RepeatedPtrField<std::string> field(lines.begin(),
                                                          lines.end());
    EXPECT_TRUE((*submission)->AddLines(field).ok());
    absl::StatusOr<v1::Job> job = (*submission)->Commit();
    EXPECT_TRUE(job.ok()) << job.status();
    const std::string worker = testing::RegisterWorker(*coordinator_);
    absl::StatusOr<v1::LeaseResponse> leased =
        testing::LeaseTasks(*coordinator_, worker, 1000);
    EXPECT_TRUE(leased.ok());
    v1::ReportRequest report;
    report.set_worker_id(worker);
    for (const v1::LeasedTask& t : leased->tasks()) {
      const Reply& r = replies.at(t.prompt_seq());
      v1::TaskResult* result = report.add_results();
      *result = testing::ResultFor(t, r.fail ? 3 : 1);
      if (r.fail) {
        result->set_failure(v1::FAILURE_CLASS_RETRYABLE);
        result->set_error("HTTP 500: boom");
      } else {
        result->mutable_answer()->set_content(r.content);
        result->mutable_answer()->set_finish_reason(r.finish);
        result->mutable_answer()->mutable_usage()->set_completion_tokens(
            static_cast<int64_t>(r.content.size() / 4));
      }
    }
    EXPECT_TRUE(coordinator_->Report(report).ok());
    return job->id();
  }

  std::vector<v1::ExportRecord> Export(const v1::ExportRequest& request) {
    std::vector<v1::ExportRecord> out;
    absl::Status s = coordinator_->Export(request, [&](v1::ExportRecord&& r) {
      out.push_back(std::move(r));
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  static std::vector<std::string> Ids(const std::vector<v1::ExportRecord>& r) {
    std::vector<std::string> ids;
    for (const auto& x : r) ids.push_back(x.prompt().id());
    return ids;
  }

  static std::vector<std::string> Prompts(int n, const std::string& tag) {
    std::vector<std::string> lines;
    for (int i = 0; i < n; ++i) {
      lines.push_back("{\"id\":\"" + tag + std::to_string(i) +
                      "\",\"prompt\":\"question " + tag + std::to_string(i) +
                      "\",\"metadata\":{\"parity\":\"" +
                      (i % 2 ? "odd" : "even") + "\"}}");
    }
    return lines;
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CountingStore> counting_;
  std::unique_ptr<Coordinator> coordinator_;
};

// An export reads each answer from the copy kept under its task's key (in
// task order); by request key only for a task with no copy of its own: a
// cache hit, a task answered again from the cache, or a store written
// before the copies.
TEST_F(CoordinatorExportTest, ReadsAnswersInTaskOrderAndByKeyWithoutACopy) {
  std::vector<Reply> replies;
  for (int i = 0; i < 7; ++i) replies.push_back({"answer " + std::to_string(i)});
  std::vector<std::string> first_lines = Prompts(5, "p");
  const std::string first = Harvest(first_lines, replies);
  std::vector<std::string> second_lines = Prompts(7, "p");  // 5 cache hits
  const std::string second = Harvest(second_lines, replies);
  ASSERT_EQ(coordinator_->GetJob(second)->counters().cache_hits(), 5);
  auto contents = [](const std::vector<v1::ExportRecord>& records) {
    std::vector<std::string> out;
    for (const v1::ExportRecord& r : records) {
      EXPECT_TRUE(r.answer().raw_body().empty());
      EXPECT_TRUE(r.answer().minhash().empty());
      out.push_back(r.answer().content());
    }
    return out;
  };
  const std::vector<std::string> all = {"answer 0", "answer 1", "answer 2",
                                        "answer 3", "answer 4", "answer 5",
                                        "answer 6"};
  v1::ExportRequest request;
  request.add_job_ids(first);
  EXPECT_EQ(contents(Export(request)),
            std::vector<std::string>(all.begin(), all.begin() + 5));
  EXPECT_EQ(counting_->read_by_key, 0) << "every answer from its task's copy";

  v1::ExportRequest both;
  both.add_job_ids(second);
  both.set_include_duplicates(true);
  EXPECT_EQ(contents(Export(both)), all);
  EXPECT_EQ(counting_->read_by_key, 5) << "the cache hits, by key";

  // A copy of an earlier answer (its task was asked again and answered from
  // the cache under another key) is not taken for the task's answer.
  StoreBatch stale;
  v1::Answer other;
  other.set_request_key("another request");
  other.set_content("an earlier answer");
  stale.answers.push_back(other);
  stale.task_answers.push_back({first, 3, 0, 0});
  ASSERT_TRUE(store_->Apply(stale).ok());
  counting_->read_by_key = 0;
  EXPECT_EQ(contents(Export(request)),
            std::vector<std::string>(all.begin(), all.begin() + 5));
  EXPECT_EQ(counting_->read_by_key, 1);

  // A store without copies exports the same.
  counting_->copies = false;
  counting_->read_by_key = 0;
  EXPECT_EQ(contents(Export(both)), all);
  EXPECT_EQ(counting_->read_by_key, 7);
}

// A record goes out as the store's bytes, which are the same record as the
// parsed one; bytes that do not parse end the export, naming the task.
TEST_F(CoordinatorExportTest, RecordBytesAreTheRecordAndACorruptOneEndsIt) {
  const std::string job = Harvest(
      Prompts(3, "q"), {{kBase}, {"", "stop", true}, {"short one"}});
  v1::ExportRequest request;
  request.add_job_ids(job);
  request.set_include_failed(true);
  const std::vector<v1::ExportRecord> parsed = Export(request);
  ASSERT_EQ(parsed.size(), 3u);
  std::vector<std::string> wire;
  ASSERT_TRUE(coordinator_
                  ->ExportBytes(request,
                                [&](const ExportRecordBytes& bytes) {
                                  std::string& s = wire.emplace_back("x");
                                  bytes.AppendTo(&s);
                                  EXPECT_EQ(s.size(), 1 + bytes.ByteSize());
                                  s.erase(0, 1);
                                  return true;
                                })
                  .ok());
  ASSERT_EQ(wire.size(), 3u);
  for (size_t i = 0; i < wire.size(); ++i) {
    v1::ExportRecord record;
    ASSERT_TRUE(record.ParseFromString(wire[i])) << i;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(record,
                                                                   parsed[i]))
        << i << ": " << record.ShortDebugString() << " vs "
        << parsed[i].ShortDebugString();
  }
  EXPECT_EQ(parsed[0].answer().content(), kBase);
  EXPECT_EQ(parsed[1].task().state(), v1::TASK_STATE_FAILED);
  EXPECT_FALSE(parsed[1].has_answer()) << "a failed task has no answer";
  EXPECT_TRUE(parsed[0].answer().raw_body().empty());
  EXPECT_TRUE(parsed[0].answer().minhash().empty());

  counting_->corrupt_answer_of = 2;
  std::vector<v1::ExportRecord> got;
  absl::Status s = coordinator_->Export(request, [&](v1::ExportRecord&& r) {
    got.push_back(std::move(r));
    return true;
  });
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("the answer of task 2/0 does not parse"));
  EXPECT_LE(got.size(), 2u) << "nothing after it went out";
}

TEST_F(CoordinatorExportTest, NearDuplicatesAreCountedAtCommitAndClustered) {
  const std::string job = Harvest(
      Prompts(4, "q"),
      {{kBase}, {Reworded()}, {kUnrelated}, {std::string(kBase) + "  "}});
  absl::StatusOr<v1::Job> status = coordinator_->GetJob(job);
  ASSERT_TRUE(status.ok());
  // q3 is an exact duplicate (whitespace only), q1 a near duplicate.
  EXPECT_EQ(status->counters().duplicate_answers(), 1);
  EXPECT_EQ(status->counters().near_duplicate_answers(), 1);

  v1::ExportRequest request;
  request.add_job_ids(job);
  request.set_include_duplicates(true);
  EXPECT_EQ(Ids(Export(request)),
            (std::vector<std::string>{"q0", "q1", "q2", "q3"}));
  std::vector<v1::ExportRecord> all = Export(request);
  EXPECT_EQ(all[1].answer().near_duplicate_of(), all[0].task().request_key());
  EXPECT_TRUE(all[2].answer().near_duplicate_of().empty());
  EXPECT_TRUE(all[0].answer().minhash().empty()) << "kept off the wire";

  // Identical and reworded cluster with the first; unrelated stays.
  request.set_near_dup_threshold(0.8);
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q2"}));
  // A threshold above the reworded pair's similarity keeps it.
  request.set_near_dup_threshold(0.99);
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q1", "q2"}));
  // The export's scratch index is gone afterwards: a second export agrees.
  request.set_near_dup_threshold(0.8);
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q2"}));
}

TEST_F(CoordinatorExportTest, NearDuplicatesOnlyAtExportWhenCommitSkipsThem) {
  CoordinatorOptions options;
  options.near_duplicates_at_commit = false;
  Open(options);
  const std::string job = Harvest(
      Prompts(4, "q"),
      {{kBase}, {Reworded()}, {kUnrelated}, {std::string(kBase) + "  "}});
  absl::StatusOr<v1::Job> status = coordinator_->GetJob(job);
  ASSERT_TRUE(status.ok());
  // Exact duplicates are still found at commit; near ones are not.
  EXPECT_EQ(status->counters().duplicate_answers(), 1);
  EXPECT_EQ(status->counters().near_duplicate_answers(), 0);
  v1::ExportRequest request;
  request.add_job_ids(job);
  std::vector<v1::ExportRecord> all = Export(request);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(all[1].answer().near_duplicate_of().empty());
  // Export signs the answers itself and clusters as before.
  request.set_near_dup_threshold(0.8);
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q2"}));
}

TEST_F(CoordinatorExportTest, NearDuplicatesAcrossJobsKeepTheFirstJobs) {
  const std::string a = Harvest(Prompts(2, "a"), {{kUnrelated}, {kBase}});
  const std::string b = Harvest(Prompts(2, "b"), {{Reworded()}, {"Short."}});
  EXPECT_EQ(coordinator_->GetJob(b)->counters().near_duplicate_answers(), 1);
  v1::ExportRequest request;
  request.add_job_ids(b);
  request.add_job_ids(a);
  request.set_near_dup_threshold(0.8);
  // Jobs in the order asked: b's reworded answer comes first and is kept.
  EXPECT_EQ(Ids(Export(request)),
            (std::vector<std::string>{"b0", "b1", "a0"}));
}

TEST_F(CoordinatorExportTest, FiltersAndDeadLetters) {
  const std::string job =
      Harvest(Prompts(5, "q"), {{"alpha beta"},
                                {"cut off mid", "length"},
                                {"", "stop", true},
                                {"a much longer answer with many words in it"},
                                {"gamma delta", "end_turn"}});
  v1::ExportRequest request;
  request.add_job_ids(job);
  EXPECT_EQ(Ids(Export(request)),
            (std::vector<std::string>{"q0", "q1", "q3", "q4"}));
  request.add_finish_reasons("stop");
  request.add_finish_reasons("end_turn");
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q3", "q4"}));
  request.set_max_chars(15);
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q4"}));
  *request.add_metadata() = [] {
    v1::MetadataMatch m;
    m.set_key("parity");
    m.set_value("even");
    return m;
  }();
  EXPECT_EQ(Ids(Export(request)), (std::vector<std::string>{"q0", "q4"}));
  request.add_models("other");
  EXPECT_TRUE(Export(request).empty());

  v1::ExportRequest tokens;
  tokens.add_job_ids(job);
  tokens.set_min_tokens(5);
  EXPECT_EQ(Ids(Export(tokens)), (std::vector<std::string>{"q3"}));

  v1::ExportRequest errors;
  errors.add_job_ids(job);
  errors.set_failed_only(true);
  std::vector<v1::ExportRecord> dead = Export(errors);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].prompt().id(), "q2");
  EXPECT_EQ(dead[0].task().attempts(), 3);
  EXPECT_EQ(dead[0].task().last_error(), "HTTP 500: boom");
  EXPECT_FALSE(dead[0].has_answer());

  v1::ExportRequest bad;
  bad.add_job_ids(job);
  bad.set_min_chars(9);
  bad.set_max_chars(3);
  EXPECT_EQ(coordinator_
                ->Export(bad, [](v1::ExportRecord&&) { return true; })
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorExportTest, OrderIsStableAcrossExportsAndRestarts) {
  std::vector<Reply> replies;
  for (int i = 0; i < 50; ++i) {
    replies.push_back({"answer number " + std::to_string(i) + " " +
                       std::string(i % 7, 'x')});
  }
  const std::string job = Harvest(Prompts(50, "p"), replies);
  v1::ExportRequest request;
  request.add_job_ids(job);
  request.set_near_dup_threshold(0.85);
  const std::vector<std::string> first = Ids(Export(request));
  ASSERT_EQ(first.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(first[i], "p" + std::to_string(i));
  EXPECT_EQ(Ids(Export(request)), first);
  Open();  // a coordinator restart on the same store
  EXPECT_EQ(Ids(Export(request)), first);
}

}  // namespace
}  // namespace distillery
