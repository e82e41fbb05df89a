#include "services/coordinator/budget.h"

#include <chrono>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "gtest/gtest.h"

namespace distillery {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TeacherProfile Profile(const std::string& name, int64_t rpm, int64_t tpm,
                       int max_concurrency = 0) {
  TeacherProfile p;
  p.name = name;
  p.rpm = rpm;
  p.tpm = tpm;
  p.max_concurrency = max_concurrency;
  p.limit_window_s = 60;
  return p;
}

google::protobuf::RepeatedPtrField<v1::TeacherDemand> Demands(
    const std::vector<v1::TeacherDemand>& ds) {
  google::protobuf::RepeatedPtrField<v1::TeacherDemand> out;
  for (const auto& d : ds) *out.Add() = d;
  return out;
}

v1::TeacherDemand Demand(const std::string& teacher, int64_t demand) {
  v1::TeacherDemand d;
  d.set_teacher(teacher);
  d.set_demand(demand);
  return d;
}

v1::BudgetShare One(const std::vector<v1::BudgetShare>& shares) {
  EXPECT_EQ(shares.size(), 1u);
  return shares.empty() ? v1::BudgetShare() : shares[0];
}

TEST(BudgetTest, HeartbeatWithDemandGetsAShare) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 600, 0)});
  const v1::BudgetShare s =
      One(budget.OnHeartbeat("w1", Demands({Demand("t", 4)})));
  EXPECT_EQ(s.teacher(), "t");
  EXPECT_TRUE(s.limited());
  EXPECT_TRUE(s.requests_limited());
  EXPECT_FALSE(s.tokens_limited());
  EXPECT_DOUBLE_EQ(s.requests_per_window(), 600 * 0.99);
  EXPECT_DOUBLE_EQ(s.tokens_per_window(), 0);
  EXPECT_EQ(s.window_ms(), 60'000);
  EXPECT_EQ(s.expires_in_ms(), 6'000);
  EXPECT_FALSE(s.paused());
}

TEST(BudgetTest, UnknownTeacherGetsNoShare) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 600, 0)});
  EXPECT_TRUE(budget.OnHeartbeat("w1", Demands({Demand("other", 4)})).empty());
  EXPECT_EQ(budget.Status("other").effective_rpm(), 0);
}

TEST(BudgetTest, IdleWorkerGetsNothing) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 600, 0)});
  const v1::BudgetShare s =
      One(budget.OnHeartbeat("w1", Demands({Demand("t", 0)})));
  EXPECT_TRUE(s.requests_limited());
  EXPECT_DOUBLE_EQ(s.requests_per_window(), 0);
}

TEST(BudgetTest, ConfiguredLimitWithHeadroomSplitBetweenTwoWorkers) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 1000, 100'000, 8)});
  const auto hb = [&](const std::string& w) {
    return One(budget.OnHeartbeat(w, Demands({Demand("t", 5)})));
  };
  hb("w1");
  hb("w2");
  clock.Advance(seconds(2));
  const v1::BudgetShare a = hb("w1");
  const v1::BudgetShare b = hb("w2");
  EXPECT_DOUBLE_EQ(a.requests_per_window(), 495);
  EXPECT_DOUBLE_EQ(b.requests_per_window(), 495);
  EXPECT_DOUBLE_EQ(a.tokens_per_window(), 49'500);
  EXPECT_DOUBLE_EQ(b.tokens_per_window(), 49'500);
  EXPECT_EQ(a.max_concurrency(), 4);
  EXPECT_EQ(b.max_concurrency(), 4);
  EXPECT_TRUE(a.tokens_limited());
  EXPECT_LE(a.requests_per_window() + b.requests_per_window(), 1000 * 0.99);
}

TEST(BudgetTest, DroppedWorkerFreesItsShare) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 1000, 0)});
  const auto hb = [&](const std::string& w) {
    return One(budget.OnHeartbeat(w, Demands({Demand("t", 5)})));
  };
  hb("w1");
  hb("w2");
  hb("w1");
  ASSERT_DOUBLE_EQ(hb("w2").requests_per_window(), 495);
  budget.DropWorker("w2");
  EXPECT_DOUBLE_EQ(hb("w1").requests_per_window(), 990);
}

TEST(BudgetTest, RateLimitReportDecreasesEffectiveRpm) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 1000, 0)});
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 1000);
  EXPECT_DOUBLE_EQ(budget.Status("t").configured_rpm(), 1000);
  v1::TeacherDemand d = Demand("t", 5);
  d.set_successes(40);
  d.set_rate_limited_requests(3);
  const v1::BudgetShare s = One(budget.OnHeartbeat("w1", Demands({d})));
  const v1::TeacherStatus st = budget.Status("t");
  // Less than a window of reports: the 40 answered say nothing of the
  // limit, so the level is the effective one, decreased.
  EXPECT_DOUBLE_EQ(st.effective_rpm(), 900);
  EXPECT_DOUBLE_EQ(st.configured_rpm(), 1000);
  EXPECT_EQ(st.rate_limited_total(), 3);
  EXPECT_FALSE(st.learning());
  EXPECT_DOUBLE_EQ(s.requests_per_window(), 900 * 0.99);
  // Successes bring it back towards the level of the 429, half the gap
  // per interval.
  clock.Advance(seconds(1));
  d.set_rate_limited_requests(0);
  budget.OnHeartbeat("w1", Demands({d}));
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 950);
}

TEST(BudgetTest, TokenRateLimitDecreasesEffectiveTpmOnly) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 1000, 100'000)});
  v1::TeacherDemand d = Demand("t", 5);
  d.set_rate_limited_tokens(2);
  d.set_tokens_used(50'000);
  budget.OnHeartbeat("w1", Demands({d}));
  const v1::TeacherStatus st = budget.Status("t");
  EXPECT_DOUBLE_EQ(st.effective_tpm(), 90'000);
  EXPECT_DOUBLE_EQ(st.effective_rpm(), 1000);
  EXPECT_EQ(st.rate_limited_total(), 2);
}

TEST(BudgetTest, AnnouncedRpmSetsAnUnconfiguredLimit) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", -1, 0)});
  v1::TeacherStatus st = budget.Status("t");
  EXPECT_TRUE(st.learning());
  EXPECT_DOUBLE_EQ(st.configured_rpm(), 0);
  EXPECT_DOUBLE_EQ(st.effective_rpm(), 0);  // none enforced yet
  v1::TeacherDemand d = Demand("t", 5);
  d.set_successes(10);
  d.set_announced_rpm(500);
  const v1::BudgetShare s = One(budget.OnHeartbeat("w1", Demands({d})));
  st = budget.Status("t");
  EXPECT_FALSE(st.learning());
  EXPECT_DOUBLE_EQ(st.effective_rpm(), 500);
  EXPECT_DOUBLE_EQ(s.requests_per_window(), 500 * 0.99);
}

TEST(BudgetTest, UnknownLimitIsNotEnforcedUntilA429) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", -1, -1)});
  v1::TeacherDemand d = Demand("t", 5);
  d.set_successes(10'000);
  for (int i = 0; i < 30; ++i) {
    clock.Advance(seconds(1));
    const v1::BudgetShare s = One(budget.OnHeartbeat("w1", Demands({d})));
    ASSERT_FALSE(s.limited()) << "second " << i;
    ASSERT_FALSE(s.requests_limited());
    ASSERT_FALSE(s.tokens_limited());
  }
  EXPECT_TRUE(budget.Status("t").learning());
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 0);
}

TEST(BudgetTest, First429OfAnUnknownLimitSetsWhatTheTeacherAdmitted) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", -1, 0)});
  v1::TeacherDemand d = Demand("t", 5);
  // Two workers: 250 and 300 answered within the window, then 429s.
  d.set_successes(250);
  budget.OnHeartbeat("w1", Demands({d}));
  clock.Advance(seconds(1));
  d.set_successes(300);
  d.set_rate_limited_requests(40);
  const v1::BudgetShare s = One(budget.OnHeartbeat("w2", Demands({d})));
  EXPECT_TRUE(s.requests_limited());
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 550);
  EXPECT_FALSE(budget.Status("t").learning());
  // w1's answers admitted before the 429, reported just after it, count.
  clock.Advance(milliseconds(500));
  d.set_successes(30);
  d.set_rate_limited_requests(0);
  budget.OnHeartbeat("w1", Demands({d}));
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 580);
  // Another 429 at that level, once the measuring is over: the level
  // itself is decreased.
  clock.Advance(seconds(6));
  d.set_successes(20);
  d.set_rate_limited_requests(2);
  budget.OnHeartbeat("w1", Demands({d}));
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 580 * 0.9);
}

TEST(BudgetTest, AfterARestartMidJobAnUnknownLimitWaitsForAWholeWindow) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", -1, 0)});
  budget.NoteTrafficBeforeReports();  // a worker came back holding tasks
  v1::TeacherDemand d = Demand("t", 5);
  d.set_successes(1);
  d.set_rate_limited_requests(1);  // in flight across the restart
  budget.OnHeartbeat("w1", Demands({d}));
  EXPECT_TRUE(budget.Status("t").learning()) << "one answer is no measure";
  EXPECT_EQ(budget.Status("t").rate_limited_total(), 1);
  d.set_rate_limited_requests(0);
  d.set_successes(100);
  for (int i = 0; i < 60; ++i) {
    clock.Advance(seconds(1));
    budget.OnHeartbeat("w1", Demands({d}));
  }
  d.set_rate_limited_requests(3);
  budget.OnHeartbeat("w1", Demands({d}));
  // A whole window counted: the 60 reports within it and this one.
  EXPECT_DOUBLE_EQ(budget.Status("t").effective_rpm(), 61 * 100);
}

TEST(BudgetTest, PauseAndResumeAreReflectedInSharesAndStatus) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 600, 0)});
  budget.Pause("t", "insufficient_quota");
  EXPECT_TRUE(budget.Paused("t"));
  v1::TeacherStatus st = budget.Status("t");
  EXPECT_TRUE(st.paused());
  EXPECT_EQ(st.pause_reason(), "insufficient_quota");
  v1::BudgetShare s = One(budget.OnHeartbeat("w1", Demands({Demand("t", 3)})));
  EXPECT_TRUE(s.paused());
  EXPECT_EQ(s.pause_reason(), "insufficient_quota");
  budget.Pause("t", "another reason");  // the first reason is kept
  EXPECT_EQ(budget.Status("t").pause_reason(), "insufficient_quota");

  EXPECT_TRUE(budget.Resume("t"));
  EXPECT_FALSE(budget.Paused("t"));
  st = budget.Status("t");
  EXPECT_FALSE(st.paused());
  EXPECT_EQ(st.pause_reason(), "");
  s = One(budget.OnHeartbeat("w1", Demands({Demand("t", 3)})));
  EXPECT_FALSE(s.paused());
  EXPECT_EQ(s.pause_reason(), "");
}

TEST(BudgetTest, PauseOrResumeOfUnknownTeacher) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 600, 0)});
  budget.Pause("nope", "x");
  EXPECT_FALSE(budget.Paused("nope"));
  EXPECT_FALSE(budget.Resume("nope"));
  EXPECT_FALSE(budget.Paused("t"));
}

TEST(BudgetTest, RpmZeroIsNotLimited) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 0, 0)});
  v1::TeacherDemand d = Demand("t", 5);
  d.set_rate_limited_requests(4);  // a 429 does not invent a limit
  const v1::BudgetShare s = One(budget.OnHeartbeat("w1", Demands({d})));
  EXPECT_FALSE(s.requests_limited());
  EXPECT_FALSE(s.tokens_limited());
  EXPECT_FALSE(s.limited());
  EXPECT_EQ(s.max_concurrency(), 0);
  const v1::TeacherStatus st = budget.Status("t");
  EXPECT_DOUBLE_EQ(st.effective_rpm(), 0);
  EXPECT_DOUBLE_EQ(st.effective_tpm(), 0);
  EXPECT_FALSE(st.learning());
}

TEST(BudgetTest, ConcurrencyOnlyIsLimitedButNotRates) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 0, 0, 3)});
  const v1::BudgetShare s =
      One(budget.OnHeartbeat("w1", Demands({Demand("t", 5)})));
  EXPECT_TRUE(s.limited());
  EXPECT_FALSE(s.requests_limited());
  EXPECT_FALSE(s.tokens_limited());
  EXPECT_EQ(s.max_concurrency(), 3);
  EXPECT_EQ(budget.Status("t").max_concurrency(), 3);
}

TEST(BudgetTest, ExpiredShareReturnsToThePool) {
  FakeClock clock;
  Budget budget(clock, {Profile("t", 1000, 0)});
  const auto hb = [&](const std::string& w) {
    return One(budget.OnHeartbeat(w, Demands({Demand("t", 5)})));
  };
  hb("w1");
  hb("w2");
  hb("w1");
  hb("w2");
  clock.Advance(seconds(3));
  EXPECT_DOUBLE_EQ(hb("w1").requests_per_window(), 495);
  clock.Advance(seconds(3));  // w2 silent for the ttl
  EXPECT_DOUBLE_EQ(hb("w1").requests_per_window(), 990);
}

TEST(BudgetTest, SeveralTeachersInOneHeartbeat) {
  FakeClock clock;
  Budget budget(clock, {Profile("a", 600, 0), Profile("b", 0, 60'000)});
  const auto shares = budget.OnHeartbeat(
      "w1", Demands({Demand("a", 1), Demand("b", 1)}));
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[0].teacher(), "a");
  EXPECT_TRUE(shares[0].requests_limited());
  EXPECT_FALSE(shares[0].tokens_limited());
  EXPECT_EQ(shares[1].teacher(), "b");
  EXPECT_FALSE(shares[1].requests_limited());
  EXPECT_TRUE(shares[1].tokens_limited());
  EXPECT_DOUBLE_EQ(shares[1].tokens_per_window(), 60'000 * 0.99);
}

}  // namespace
}  // namespace distillery
