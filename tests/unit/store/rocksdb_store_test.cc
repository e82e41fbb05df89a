// The RocksDB store in a fresh temp dir per test: atomic batches, task order,
// job deletion by exact id, durable sequences and reopening.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace distillery {
namespace {

using ::testing::HasSubstr;

// Each test's store in a fresh directory of its own, removed afterwards.
class StoreDir : public distillery::testing::TempDir {
 public:
  StoreDir() : TempDir("store_test") {}
};

v1::Job MakeJob(const std::string& id,
                v1::JobState state = v1::JOB_STATE_RUNNING) {
  v1::Job job;
  job.set_id(id);
  job.set_state(state);
  job.mutable_spec()->set_teacher("sim");
  job.mutable_spec()->set_model("m");
  job.mutable_counters()->set_prompts(1);
  return job;
}

v1::Prompt MakePrompt(const std::string& id, const std::string& text) {
  v1::Prompt p;
  p.set_id(id);
  v1::ChatMessage* m = p.add_messages();
  m->set_role("user");
  m->set_content(text);
  return p;
}

v1::Task MakeTask(const std::string& job_id, int64_t seq, int sample) {
  v1::Task t;
  t.set_job_id(job_id);
  t.set_prompt_seq(seq);
  t.set_sample(sample);
  t.set_state(v1::TASK_STATE_PENDING);
  t.set_request_key(job_id + "/" + std::to_string(seq) + "/" +
                    std::to_string(sample));
  return t;
}

class RocksDbStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenRocksDbStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void Reopen() {
    store_.reset();
    Open();
  }

  // (seq, sample) of the job's tasks from (seq, sample) on, in scan order.
  std::vector<std::pair<int64_t, int>> Scan(const std::string& job_id,
                                            int64_t seq = 0, int sample = 0,
                                            size_t limit = SIZE_MAX) {
    std::vector<std::pair<int64_t, int>> out;
    absl::Status s =
        store_->ScanTasks(job_id, seq, sample, [&](const v1::Task& t) {
          EXPECT_EQ(t.job_id(), job_id);
          out.emplace_back(t.prompt_seq(), t.sample());
          return out.size() < limit;
        });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  // A task as ScanTaskRecords gives it, with its stored bytes parsed.
  struct Record {
    v1::Task task;
    v1::Task task_from_bytes;
    std::optional<v1::Prompt> prompt;
    std::optional<v1::Answer> answer;
  };
  std::vector<Record> Records(const std::string& job_id) {
    std::vector<Record> out;
    absl::Status s =
        store_->ScanTaskRecords(job_id, [&](const StoredTask& stored) {
          Record& r = out.emplace_back();
          r.task = stored.task;
          EXPECT_TRUE(r.task_from_bytes.ParseFromArray(
              stored.task_bytes.data(),
              static_cast<int>(stored.task_bytes.size())));
          if (stored.prompt) {
            EXPECT_TRUE(r.prompt.emplace().ParseFromArray(
                stored.prompt->data(), static_cast<int>(stored.prompt->size())));
          }
          if (stored.answer) {
            EXPECT_TRUE(r.answer.emplace().ParseFromArray(
                stored.answer->data(), static_cast<int>(stored.answer->size())));
          }
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  StoreDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(RocksDbStoreTest, EmptyStoreFindsNothing) {
  EXPECT_TRUE(store_->ListJobs()->empty());
  EXPECT_FALSE(store_->GetJob("job-1")->has_value());
  EXPECT_FALSE(store_->GetPrompt("job-1", 0)->has_value());
  EXPECT_FALSE(store_->GetTask("job-1", 0, 0)->has_value());
  EXPECT_FALSE(store_->GetAnswer("key")->has_value());
  EXPECT_FALSE(*store_->HasAnswer("key"));
  EXPECT_FALSE(store_->FindContent("hash")->has_value());
  EXPECT_TRUE(Scan("job-1").empty());
}

TEST_F(RocksDbStoreTest, BatchReadsAnswersInTheOrderAskedWithoutRawBodies) {
  StoreBatch batch;
  for (const char* key : {"rk-b", "rk-a", "rk-c"}) {
    v1::Answer answer;
    answer.set_request_key(key);
    answer.set_content(std::string("content of ") + key);
    answer.set_raw_body(std::string("{\"raw\": \"") + key + "\"}");
    answer.set_minhash(std::string("sig of ") + key);  // a field after it
    batch.answers.push_back(answer);
  }
  batch.AddPrompt("job-1", 0, MakePrompt("p0", "first"));
  batch.AddPrompt("job-1", 2, MakePrompt("p2", "third"));
  ASSERT_TRUE(store_->Apply(batch).ok());
  Reopen();  // from the table files too, not only the memtable

  absl::StatusOr<std::vector<std::optional<v1::Answer>>> answers =
      store_->GetAnswers({"rk-c", "missing", "rk-a", "rk-c"});
  ASSERT_TRUE(answers.ok()) << answers.status();
  ASSERT_EQ(answers->size(), 4u);
  EXPECT_EQ((*answers)[0]->content(), "content of rk-c");
  EXPECT_FALSE((*answers)[1].has_value());
  EXPECT_EQ((*answers)[2]->content(), "content of rk-a");
  EXPECT_EQ((*answers)[3]->content(), "content of rk-c");
  // Bulk reads (an export's) leave the raw response out, and only it.
  EXPECT_EQ((*answers)[0]->raw_body(), "");
  EXPECT_EQ((*answers)[0]->minhash(), "sig of rk-c");
  EXPECT_EQ((*answers)[0]->request_key(), "rk-c");
  EXPECT_EQ((*store_->GetAnswer("rk-c"))->raw_body(), "{\"raw\": \"rk-c\"}");
  EXPECT_TRUE(store_->GetAnswers({})->empty());

  absl::StatusOr<std::vector<std::optional<v1::Prompt>>> prompts =
      store_->GetPrompts("job-1", {2, 1, 0});
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  ASSERT_EQ(prompts->size(), 3u);
  EXPECT_EQ((*prompts)[0]->id(), "p2");
  EXPECT_FALSE((*prompts)[1].has_value());
  EXPECT_EQ((*prompts)[2]->id(), "p0");
  EXPECT_FALSE((*store_->GetPrompts("job-2", {0}))[0].has_value());
}

// An answer committed for a task is also kept under the task's key, as an
// export writes it: read in task order, without the raw body or signature.
TEST_F(RocksDbStoreTest, KeepsACopyOfEachAnswerUnderItsTask) {
  StoreBatch batch;
  for (int seq = 0; seq < 3; ++seq) {
    batch.AddPrompt("job-1", seq, MakePrompt("p" + std::to_string(seq), "q"));
    for (int sample = 2; sample < 4; ++sample) {
      batch.tasks.push_back(MakeTask("job-1", seq, sample));
    }
    v1::Answer answer;
    answer.set_request_key("rk-" + std::to_string(seq));
    answer.set_content("content " + std::to_string(seq));
    answer.set_reasoning("trace " + std::to_string(seq));
    answer.set_raw_body("{\"raw\": true}");
    answer.set_minhash("signature");
    answer.set_cost_usd(0.5);  // a field after both
    batch.answers.push_back(answer);
    // seq 1 has no copy: its task was a cache hit.
    if (seq != 1) batch.task_answers.push_back({"job-1", seq, 2, batch.answers.size() - 1});
  }
  batch.tasks.push_back(MakeTask("job-1", 3, 0));  // a task without a prompt
  batch.AddPrompt("job-1", 4, MakePrompt("p4", "a prompt without tasks"));
  batch.tasks.push_back(MakeTask("job-1", 5, 0));
  batch.AddPrompt("job-1", 5, MakePrompt("p5", "q"));
  batch.AddPrompt("job-2", 0, MakePrompt("other", "q"));
  batch.tasks.push_back(MakeTask("job-2", 0, 2));
  ASSERT_TRUE(store_->Apply(batch).ok());
  Reopen();

  // Every task in order, each with its prompt and its answer's copy.
  const std::vector<Record> records = Records("job-1");
  ASSERT_EQ(records.size(), 8u);
  const std::vector<std::pair<int64_t, int>> order = {
      {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 2}, {2, 3}, {3, 0}, {5, 0}};
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    EXPECT_EQ(std::make_pair(r.task.prompt_seq(), int{r.task.sample()}),
              order[i]);
    EXPECT_EQ(r.task_from_bytes.request_key(), r.task.request_key());
  }
  for (size_t i : {0, 1, 2, 3, 4, 5}) {
    ASSERT_TRUE(records[i].prompt.has_value()) << i;
    EXPECT_EQ(records[i].prompt->id(), "p" + std::to_string(i / 2));
  }
  EXPECT_FALSE(records[6].prompt.has_value()) << "no prompt stored for seq 3";
  EXPECT_EQ(records[7].prompt->id(), "p5") << "prompt 4 had no task";

  ASSERT_TRUE(records[0].answer.has_value());
  const v1::Answer& copy = *records[0].answer;
  EXPECT_EQ(copy.request_key(), "rk-0");
  EXPECT_EQ(copy.content(), "content 0");
  EXPECT_EQ(copy.reasoning(), "trace 0");
  EXPECT_EQ(copy.cost_usd(), 0.5);
  EXPECT_EQ(copy.raw_body(), "");
  EXPECT_EQ(copy.minhash(), "");
  EXPECT_FALSE(records[1].answer.has_value()) << "another sample";
  EXPECT_FALSE(records[2].answer.has_value()) << "a cache hit";
  EXPECT_EQ(records[4].answer->content(), "content 2");
  for (size_t i : {3, 5, 6, 7}) EXPECT_FALSE(records[i].answer.has_value());
  // The answer itself is whole.
  EXPECT_EQ((*store_->GetAnswer("rk-0"))->raw_body(), "{\"raw\": true}");
  // Another job's scan sees only its own.
  const std::vector<Record> other = Records("job-2");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].prompt->id(), "other");
  EXPECT_FALSE(other[0].answer.has_value());

  // The scan stops when asked to.
  int seen = 0;
  ASSERT_TRUE(store_
                  ->ScanTaskRecords("job-1",
                                    [&](const StoredTask&) { return ++seen < 3; })
                  .ok());
  EXPECT_EQ(seen, 3);

  // A reference to no answer of the batch is refused, and nothing written.
  StoreBatch bad;
  bad.tasks.push_back(MakeTask("job-3", 0, 0));
  bad.task_answers.push_back({"job-3", 0, 0, 0});
  absl::Status refused = store_->Apply(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_FALSE(store_->GetTask("job-3", 0, 0)->has_value());
}

TEST_F(RocksDbStoreTest, ApplyWritesEveryKindOfRecord) {
  StoreBatch batch;
  batch.jobs.push_back(MakeJob("job-1"));
  batch.AddPrompt("job-1", 0, MakePrompt("p0", "first"));
  batch.AddPrompt("job-1", 1, MakePrompt("p1", "second"));
  batch.tasks.push_back(MakeTask("job-1", 0, 0));
  batch.tasks.push_back(MakeTask("job-1", 1, 0));
  v1::Answer answer;
  answer.set_request_key("rk-1");
  answer.set_content("an answer");
  batch.answers.push_back(answer);
  batch.content.emplace_back("hash-1", "rk-1");
  EXPECT_FALSE(batch.empty());
  ASSERT_TRUE(store_->Apply(batch).ok());

  absl::StatusOr<std::optional<v1::Job>> job = store_->GetJob("job-1");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->spec().teacher(), "sim");
  EXPECT_EQ((*job)->state(), v1::JOB_STATE_RUNNING);

  absl::StatusOr<std::optional<v1::Prompt>> p1 = store_->GetPrompt("job-1", 1);
  ASSERT_TRUE(p1.ok() && p1->has_value());
  EXPECT_EQ((*p1)->id(), "p1");
  EXPECT_EQ((*p1)->messages(0).content(), "second");
  EXPECT_EQ((*store_->GetPrompt("job-1", 0))->id(), "p0");

  absl::StatusOr<std::optional<v1::Task>> t = store_->GetTask("job-1", 1, 0);
  ASSERT_TRUE(t.ok() && t->has_value());
  EXPECT_EQ((*t)->request_key(), "job-1/1/0");
  EXPECT_FALSE(store_->GetTask("job-1", 1, 1)->has_value());

  absl::StatusOr<std::optional<v1::Answer>> a = store_->GetAnswer("rk-1");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->content(), "an answer");
  EXPECT_TRUE(*store_->HasAnswer("rk-1"));
  EXPECT_FALSE(*store_->HasAnswer("rk-2"));

  absl::StatusOr<std::optional<std::string>> first =
      store_->FindContent("hash-1");
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ(**first, "rk-1");
}

TEST_F(RocksDbStoreTest, ApplyOverwritesWithTheLatestVersion) {
  StoreBatch first;
  first.jobs.push_back(MakeJob("job-1"));
  first.tasks.push_back(MakeTask("job-1", 0, 0));
  ASSERT_TRUE(store_->Apply(first).ok());

  StoreBatch second;
  v1::Job done = MakeJob("job-1", v1::JOB_STATE_COMPLETED);
  done.mutable_counters()->set_tasks_done(1);
  second.jobs.push_back(done);
  v1::Task task = MakeTask("job-1", 0, 0);
  task.set_state(v1::TASK_STATE_DONE);
  second.tasks.push_back(task);
  ASSERT_TRUE(store_->Apply(second).ok());

  EXPECT_EQ((*store_->GetJob("job-1"))->state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ((*store_->GetJob("job-1"))->counters().tasks_done(), 1);
  EXPECT_EQ((*store_->GetTask("job-1", 0, 0))->state(), v1::TASK_STATE_DONE);
  EXPECT_EQ(store_->ListJobs()->size(), 1u);
}

TEST_F(RocksDbStoreTest, EmptyBatchIsANoOp) {
  StoreBatch batch;
  EXPECT_TRUE(batch.empty());
  EXPECT_TRUE(store_->Apply(batch).ok());
  EXPECT_TRUE(store_->ListJobs()->empty());
}

TEST_F(RocksDbStoreTest, ListJobsInIdOrder) {
  StoreBatch batch;
  for (const char* id : {"job-000003", "job-000001", "job-000002"}) {
    batch.jobs.push_back(MakeJob(id));
  }
  ASSERT_TRUE(store_->Apply(batch).ok());
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->ListJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].id(), "job-000001");
  EXPECT_EQ((*jobs)[1].id(), "job-000002");
  EXPECT_EQ((*jobs)[2].id(), "job-000003");
}

// 300 prompts x 2 samples, written in a shuffled order over several batches:
// scans must come back in (seq, sample) order, which needs big-endian keys
// (seq 256 sorts after 255, not after 0).
TEST_F(RocksDbStoreTest, ScanTasksInSequenceOrderAcrossManySeqs) {
  constexpr int kSeqs = 300;
  std::vector<v1::Task> tasks;
  for (int seq = 0; seq < kSeqs; ++seq) {
    for (int sample = 0; sample < 2; ++sample) {
      tasks.push_back(MakeTask("job-1", seq, sample));
    }
  }
  std::mt19937 rng(42);
  std::shuffle(tasks.begin(), tasks.end(), rng);
  for (size_t i = 0; i < tasks.size(); i += 100) {
    StoreBatch batch;
    for (size_t k = i; k < std::min(tasks.size(), i + 100); ++k) {
      batch.tasks.push_back(tasks[k]);
    }
    ASSERT_TRUE(store_->Apply(batch).ok());
  }

  std::vector<std::pair<int64_t, int>> expected;
  for (int seq = 0; seq < kSeqs; ++seq) {
    expected.emplace_back(seq, 0);
    expected.emplace_back(seq, 1);
  }
  EXPECT_EQ(Scan("job-1"), expected);

  // Starting mid-way, at a sample and across the 255/256 boundary.
  std::vector<std::pair<int64_t, int>> from_mid(expected.begin() + 511,
                                                expected.end());
  std::vector<std::pair<int64_t, int>> mid = Scan("job-1", 255, 1);
  ASSERT_FALSE(mid.empty());
  EXPECT_EQ(mid.front(), std::make_pair(int64_t{255}, 1));
  EXPECT_EQ(mid[1], std::make_pair(int64_t{256}, 0));
  EXPECT_EQ(mid, from_mid);

  // A start past the last task finds nothing; fn returning false stops.
  EXPECT_TRUE(Scan("job-1", kSeqs, 0).empty());
  EXPECT_EQ(Scan("job-1", 10, 0, 5).size(), 5u);
  EXPECT_EQ(Scan("job-1", 10, 0, 5).back(), std::make_pair(int64_t{12}, 0));
}

TEST_F(RocksDbStoreTest, ScanTasksOrdersSamplesPast255) {
  StoreBatch batch;
  for (int sample : {300, 1, 256, 0, 255}) {
    batch.tasks.push_back(MakeTask("job-1", 0, sample));
  }
  ASSERT_TRUE(store_->Apply(batch).ok());
  std::vector<std::pair<int64_t, int>> expected = {
      {0, 0}, {0, 1}, {0, 255}, {0, 256}, {0, 300}};
  EXPECT_EQ(Scan("job-1"), expected);
}

TEST_F(RocksDbStoreTest, ScanTasksStaysInsideItsJob) {
  StoreBatch batch;
  for (const char* job : {"job-1", "job-10", "job-0", "job-1a"}) {
    for (int seq = 0; seq < 3; ++seq)
      batch.tasks.push_back(MakeTask(job, seq, 0));
  }
  ASSERT_TRUE(store_->Apply(batch).ok());
  std::vector<std::pair<int64_t, int>> three = {{0, 0}, {1, 0}, {2, 0}};
  EXPECT_EQ(Scan("job-1"), three);
  EXPECT_EQ(Scan("job-10"), three);
  EXPECT_EQ(Scan("job-0"), three);
  EXPECT_TRUE(Scan("job-").empty());
  EXPECT_TRUE(Scan("job-2").empty());
}

TEST_F(RocksDbStoreTest, DeleteJobRemovesOnlyThatJob) {
  StoreBatch batch;
  for (const char* job : {"job-1", "job-10", "job-1a"}) {
    batch.jobs.push_back(MakeJob(job));
    for (int seq = 0; seq < 3; ++seq) {
      batch.AddPrompt(job, seq, MakePrompt(job, "text"));
      batch.tasks.push_back(MakeTask(job, seq, 0));
      batch.tasks.push_back(MakeTask(job, seq, 1));
    }
  }
  v1::Answer answer;
  answer.set_request_key("job-1/0/0");
  batch.answers.push_back(answer);
  batch.task_answers.push_back({"job-1", 0, 0, 0});
  batch.task_answers.push_back({"job-10", 0, 0, 0});
  batch.content.emplace_back("hash", "job-1/0/0");
  ASSERT_TRUE(store_->Apply(batch).ok());

  ASSERT_TRUE(store_->DeleteJob("job-1").ok());
  EXPECT_TRUE(Records("job-10")[0].answer.has_value());
  // Its tasks' copies went with it: a task written again under the same
  // key finds none.
  StoreBatch again;
  again.tasks.push_back(MakeTask("job-1", 0, 0));
  ASSERT_TRUE(store_->Apply(again).ok());
  ASSERT_EQ(Records("job-1").size(), 1u);
  EXPECT_FALSE(Records("job-1")[0].answer.has_value());
  EXPECT_FALSE(Records("job-1")[0].prompt.has_value());
  ASSERT_TRUE(store_->DeleteJob("job-1").ok());

  EXPECT_FALSE(store_->GetJob("job-1")->has_value());
  for (int seq = 0; seq < 3; ++seq) {
    EXPECT_FALSE(store_->GetPrompt("job-1", seq)->has_value());
    EXPECT_FALSE(store_->GetTask("job-1", seq, 0)->has_value());
  }
  EXPECT_TRUE(Scan("job-1").empty());
  // Answers are shared by jobs and stay.
  EXPECT_TRUE(*store_->HasAnswer("job-1/0/0"));
  EXPECT_TRUE(store_->FindContent("hash")->has_value());

  for (const char* other : {"job-10", "job-1a"}) {
    SCOPED_TRACE(other);
    EXPECT_TRUE(store_->GetJob(other)->has_value());
    EXPECT_EQ(Scan(other).size(), 6u);
    for (int seq = 0; seq < 3; ++seq) {
      EXPECT_TRUE(store_->GetPrompt(other, seq)->has_value());
    }
  }
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->ListJobs();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id(), "job-10");
  EXPECT_EQ((*jobs)[1].id(), "job-1a");

  // Deleting a job that does not exist is fine.
  EXPECT_TRUE(store_->DeleteJob("job-404").ok());
}

TEST_F(RocksDbStoreTest, NextSequenceCountsPerNameAndPersists) {
  EXPECT_EQ(*store_->NextSequence("job"), 1);
  EXPECT_EQ(*store_->NextSequence("job"), 2);
  EXPECT_EQ(*store_->NextSequence("other"), 1);
  EXPECT_EQ(*store_->NextSequence("job"), 3);
  Reopen();
  EXPECT_EQ(*store_->NextSequence("job"), 4);
  EXPECT_EQ(*store_->NextSequence("other"), 2);
}

TEST_F(RocksDbStoreTest, DataSurvivesCloseAndReopen) {
  StoreBatch batch;
  batch.jobs.push_back(MakeJob("job-1"));
  batch.AddPrompt("job-1", 0, MakePrompt("p0", "hello"));
  batch.tasks.push_back(MakeTask("job-1", 0, 0));
  v1::Answer answer;
  answer.set_request_key("rk");
  answer.set_content("kept");
  batch.answers.push_back(answer);
  batch.content.emplace_back("h", "rk");
  ASSERT_TRUE(store_->Apply(batch).ok());

  Reopen();

  EXPECT_EQ((*store_->GetJob("job-1"))->id(), "job-1");
  EXPECT_EQ((*store_->GetPrompt("job-1", 0))->messages(0).content(), "hello");
  EXPECT_EQ((*store_->GetTask("job-1", 0, 0))->request_key(), "job-1/0/0");
  EXPECT_EQ((*store_->GetAnswer("rk"))->content(), "kept");
  EXPECT_EQ(**store_->FindContent("h"), "rk");
  EXPECT_EQ(Scan("job-1").size(), 1u);
}

TEST_F(RocksDbStoreTest, SecondOpenOfTheSameDirFailsAndNamesIt) {
  absl::StatusOr<std::unique_ptr<Store>> second = OpenRocksDbStore(dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(dir_.path()));
}

}  // namespace
}  // namespace distillery
