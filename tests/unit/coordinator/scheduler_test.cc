// The Scheduler's in-memory parts on their own: a job's TaskQueue (order,
// put-back, settled tasks skipped, duplicates dropped, rescans), the lease
// table (renew, expire, end, reassign), keys in flight and their waiters,
// and who may report a task.
#include "services/coordinator/scheduler.h"

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace distillery {
namespace {

v1::Task Task(int64_t seq, int sample = 0, const std::string& job = "job-1") {
  v1::Task t;
  t.set_job_id(job);
  t.set_prompt_seq(seq);
  t.set_sample(sample);
  t.set_request_key("key-" + job + "-" + std::to_string(seq) + "-" +
                    std::to_string(sample));
  t.set_state(v1::TASK_STATE_PENDING);
  return t;
}

std::vector<int64_t> Drain(TaskQueue& q) {
  std::vector<int64_t> seqs;
  while (std::optional<v1::Task> t = q.Pop()) seqs.push_back(t->prompt_seq());
  return seqs;
}

TEST(TaskQueueTest, ReturnedTasksGoFirstThenScannedInOrder) {
  TaskQueue q;
  EXPECT_TRUE(q.NeedsScan());
  q.AddScanned({Task(0), Task(1), Task(2)}, {3, 0}, /*end=*/false);
  EXPECT_FALSE(q.NeedsScan());
  EXPECT_EQ(q.cursor().seq, 3);
  EXPECT_EQ(q.Pop()->prompt_seq(), 0);
  q.PushBack(Task(7));
  q.PushFront(Task(8));
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{8, 7, 1, 2}));
  EXPECT_TRUE(q.NeedsScan()) << "the scan did not reach the end";
  q.AddScanned({}, {3, 0}, /*end=*/true);
  EXPECT_FALSE(q.NeedsScan());
}

TEST(TaskQueueTest, ATaskSettledWhileQueuedIsSkipped) {
  TaskQueue q;
  q.AddScanned({Task(0), Task(1), Task(2)}, {3, 0}, true);
  q.Settled(1, 0);
  q.Settled(9, 0);  // not queued: nothing to skip
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{0, 2}));
  // Queued again later (it is pending again): handed out.
  q.PushBack(Task(1));
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{1}));
}

TEST(TaskQueueTest, ATaskQueuedTwiceIsHandedOutOnce) {
  TaskQueue q;
  q.AddScanned({Task(0), Task(1)}, {2, 0}, true);
  q.PushBack(Task(1));
  q.AddScanned({Task(0)}, {2, 0}, true);
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{0, 1}));
}

TEST(TaskQueueTest, RescanReadsFromTheStartAndForgetsSkips) {
  TaskQueue q;
  q.AddScanned({Task(0), Task(1)}, {2, 0}, true);
  q.PushBack(Task(5));
  q.Settled(0, 0);
  q.Rescan();
  EXPECT_EQ(q.cursor().seq, 0);
  // Returned tasks stay; read ones go, to be read again by the next scan.
  EXPECT_EQ(q.Pop()->prompt_seq(), 5);
  EXPECT_TRUE(q.NeedsScan());
  q.AddScanned({Task(0), Task(1)}, {2, 0}, true);
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{0, 1}));
}

TEST(TaskQueueTest, ATaskAddedLaterIsQueuedUnlessAScanWillReadIt) {
  TaskQueue q;
  q.AddScanned({Task(0), Task(1)}, {2, 0}, /*end=*/false);
  EXPECT_EQ(q.Pop()->prompt_seq(), 0);
  q.Add(Task(0, 1));  // behind the cursor: no scan reads it again
  q.Add(Task(5, 1));  // ahead of it: the next scan reads it
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(q.NeedsScan());
  q.AddScanned({Task(5, 1)}, {5, 1}, /*end=*/true);
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{5}));
  // Every task read: anything added now is queued.
  q.Add(Task(9, 1));
  EXPECT_EQ(Drain(q), (std::vector<int64_t>{9}));
}

TEST(SchedulerTest, LeasesRenewExpireAndEnd) {
  Scheduler s(16);
  const TimePoint t0(std::chrono::hours(1));
  const int64_t a = s.NextLeaseId();
  const int64_t b = s.NextLeaseId();
  EXPECT_NE(a, b);
  s.AddLease(a, {"w1", Task(0), t0 + std::chrono::seconds(10)});
  s.AddLease(b, {"w2", Task(1), t0 + std::chrono::seconds(20)});
  EXPECT_TRUE(s.InFlight(Task(0).request_key()));
  EXPECT_FALSE(s.Renew(a, "w2", t0 + std::chrono::seconds(30)))
      << "only the holder renews";
  EXPECT_TRUE(s.Renew(a, "w1", t0 + std::chrono::seconds(30)));
  EXPECT_EQ(s.ExpiredBy(t0 + std::chrono::seconds(25)),
            std::vector<int64_t>{b});
  std::optional<Scheduler::Lease> ended = s.EndLease(b);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->worker_id, "w2");
  EXPECT_FALSE(s.InFlight(Task(1).request_key()));
  EXPECT_FALSE(s.EndLease(b).has_value());
  EXPECT_EQ(s.LeasesOfJob("job-1"), std::vector<int64_t>{a});
  // Ids from before a restart are never handed out again.
  s.LeaseIdsFrom(1000);
  EXPECT_EQ(s.NextLeaseId(), 1000);
  s.LeaseIdsFrom(10);
  EXPECT_EQ(s.NextLeaseId(), 1001);
}

TEST(SchedulerTest, WaitersOfAKeyAreTakenOnceAndSettledOnesDropped) {
  Scheduler s(16);
  v1::Task first = Task(0), second = Task(3), third = Task(4);
  second.set_request_key(first.request_key());
  third.set_request_key(first.request_key());
  s.Wait(second);
  s.Wait(third);
  s.Settled(third);
  std::vector<v1::Task> waiters = s.TakeWaiters(first.request_key());
  ASSERT_EQ(waiters.size(), 1u);
  EXPECT_EQ(waiters[0].prompt_seq(), 3);
  EXPECT_TRUE(s.TakeWaiters(first.request_key()).empty());
}

TEST(SchedulerTest, OnlyHoldersAndRecentHoldersMayReport) {
  Scheduler s(16);
  const TimePoint t0(std::chrono::hours(1));
  const v1::Task t = Task(0);
  const TaskId id{t.job_id(), t.prompt_seq(), t.sample()};
  s.AddLease(1, {"w1", t, t0});
  EXPECT_TRUE(s.HeldBy(id, 1, t.request_key(), "w1"));
  EXPECT_FALSE(s.HeldBy(id, 1, t.request_key(), "w2"));
  // The lease changes hands (w1 registered again as w1b): both are holders.
  s.Reassign(1, "w1b", t0);
  EXPECT_TRUE(s.HeldBy(id, 1, t.request_key(), "w1b"));
  s.EndLease(1);
  EXPECT_TRUE(s.HeldBy(id, 1, t.request_key(), "w1")) << "a recent holder";
  s.holders().Forget(id);
  EXPECT_FALSE(s.HeldBy(id, 1, t.request_key(), "w1"));
}

TEST(LeaseHoldersTest, RemembersAFewHoldersOfABoundedNumberOfTasks) {
  LeaseHolders holders(2);
  const TaskId a{"j", 0, 0}, b{"j", 1, 0}, c{"j", 2, 0};
  for (int i = 0; i < 6; ++i) holders.Note(a, "w" + std::to_string(i));
  EXPECT_FALSE(holders.Held(a, "w0")) << "only the last kPerTask are kept";
  EXPECT_TRUE(holders.Held(a, "w5"));
  holders.Note(b, "x");
  holders.Note(c, "y");  // a, the oldest, is forgotten
  EXPECT_FALSE(holders.Held(a, "w5"));
  EXPECT_TRUE(holders.Held(b, "x"));
  EXPECT_TRUE(holders.Held(c, "y"));
}

}  // namespace
}  // namespace distillery
