#include "services/coordinator/budget.h"

#include <algorithm>

namespace distillery {

Budget::Budget(Clock& clock, const std::vector<TeacherProfile>& teachers,
               BudgetOptions options)
    : clock_(clock), options_(options) {
  for (const TeacherProfile& p : teachers) {
    TeacherBudget tb(p, clock, options.share_ttl);
    // A probe shows its effect within a window (the teacher counts over
    // one), so none starts before a whole window at the plateau.
    AimdOptions aimd = options.aimd;
    aimd.hold = std::max<Duration>(aimd.hold,
                                   std::chrono::seconds(p.limit_window_s));
    if (p.rpm != 0) {
      tb.requests = std::make_unique<AimdLimit>(
          clock, static_cast<double>(std::max<int64_t>(p.rpm, 0)), aimd);
    }
    if (p.tpm != 0) {
      tb.tokens = std::make_unique<AimdLimit>(
          clock, static_cast<double>(std::max<int64_t>(p.tpm, 0)), aimd);
    }
    teachers_.emplace(p.name, std::move(tb));
  }
}

void Budget::Record(AimdLimit* limit, int64_t admitted, Duration window,
                    std::deque<std::pair<TimePoint, int64_t>>& log) {
  if (limit == nullptr || !(limit->learning() || limit->measuring())) {
    log.clear();
    return;
  }
  const TimePoint now = clock_.Now();
  log.emplace_back(now, admitted);
  while (!log.empty() && log.front().first <= now - window) log.pop_front();
  if (limit->measuring()) limit->OnAdmitted(Total(log));
}

double Budget::Total(const std::deque<std::pair<TimePoint, int64_t>>& log) {
  int64_t total = 0;
  for (const auto& [t, n] : log) total += n;
  return static_cast<double>(total);
}

std::optional<double> Budget::AdmittedInWindow(
    const std::deque<std::pair<TimePoint, int64_t>>& log,
    const AimdLimit& limit) {
  // Once a limit is known, what went through says more about the cluster
  // (held back by a retry-after, short of work) than about the teacher;
  // before, what went through up to the first 429 is the limit.
  if (!limit.learning()) return std::nullopt;
  return Total(log);
}

bool Budget::ReportsCoverAWindow(Duration window) const {
  return !traffic_before_reports_ ||
         clock_.Now() - *traffic_before_reports_ >= window;
}

void Budget::NoteTrafficBeforeReports() {
  traffic_before_reports_ = clock_.Now();
}

std::vector<v1::BudgetShare> Budget::OnHeartbeat(
    const std::string& worker_id,
    const google::protobuf::RepeatedPtrField<v1::TeacherDemand>& demands) {
  std::vector<v1::BudgetShare> shares;
  for (const v1::TeacherDemand& d : demands) {
    auto it = teachers_.find(d.teacher());
    if (it == teachers_.end()) continue;
    TeacherBudget& tb = it->second;
    const Duration window = std::chrono::seconds(tb.profile.limit_window_s);

    // Learn from what the worker saw: what the teacher admitted (answered),
    // its 429s and its announcements. What was admitted is kept only while
    // a limit is unknown or being measured: that is when it is used.
    Record(tb.requests.get(), d.successes(), window, tb.admitted);
    Record(tb.tokens.get(), d.tokens_used(), window, tb.admitted_tokens);
    if (tb.requests) {
      if (d.announced_rpm() > 0) tb.requests->OnAnnounced(d.announced_rpm());
      // An unknown limit is learned from a count of a whole window: until
      // there is one, workers keep to the 429s' retry-after on their own.
      if (d.rate_limited_requests() > 0 &&
          !(tb.requests->learning() && !ReportsCoverAWindow(window))) {
        tb.requests->OnRateLimited(
            AdmittedInWindow(tb.admitted, *tb.requests));
      } else if (d.successes() > 0) {
        tb.requests->OnSuccess();
      }
    }
    if (tb.tokens) {
      if (d.announced_tpm() > 0) tb.tokens->OnAnnounced(d.announced_tpm());
      if (d.rate_limited_tokens() > 0 &&
          !(tb.tokens->learning() && !ReportsCoverAWindow(window))) {
        tb.tokens->OnRateLimited(
            AdmittedInWindow(tb.admitted_tokens, *tb.tokens));
      } else if (d.successes() > 0) {
        tb.tokens->OnSuccess();
      }
    }
    tb.rate_limited_total += d.rate_limited_requests() + d.rate_limited_tokens();
    tb.errors_total += d.errors();

    v1::BudgetShare share;
    share.set_teacher(d.teacher());
    share.set_window_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(window).count());
    share.set_expires_in_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            options_.share_ttl)
            .count());
    share.set_paused(tb.paused);
    share.set_pause_reason(tb.pause_reason);
    const double demand = static_cast<double>(d.demand());
    bool limited = false;
    if (tb.requests && tb.requests->effective()) {
      share.set_requests_per_window(tb.request_shares.Renew(
          worker_id, demand, *tb.requests->effective() * options_.headroom));
      share.set_requests_limited(true);
      limited = true;
    }
    if (tb.tokens && tb.tokens->effective()) {
      share.set_tokens_per_window(tb.token_shares.Renew(
          worker_id, demand, *tb.tokens->effective() * options_.headroom));
      share.set_tokens_limited(true);
      limited = true;
    }
    if (tb.profile.max_concurrency > 0) {
      share.set_max_concurrency(static_cast<int64_t>(tb.concurrency_shares.Renew(
          worker_id, demand, tb.profile.max_concurrency, /*integral=*/true)));
      limited = true;
    }
    share.set_limited(limited);
    shares.push_back(std::move(share));
  }
  return shares;
}

void Budget::DropWorker(const std::string& worker_id) {
  for (auto& [name, tb] : teachers_) {
    tb.request_shares.Drop(worker_id);
    tb.token_shares.Drop(worker_id);
    tb.concurrency_shares.Drop(worker_id);
  }
}

void Budget::Pause(const std::string& teacher, const std::string& reason) {
  auto it = teachers_.find(teacher);
  if (it == teachers_.end() || it->second.paused) return;
  it->second.paused = true;
  it->second.pause_reason = reason;
}

bool Budget::Resume(const std::string& teacher) {
  auto it = teachers_.find(teacher);
  if (it == teachers_.end()) return false;
  it->second.paused = false;
  it->second.pause_reason.clear();
  return true;
}

bool Budget::Paused(const std::string& teacher) const {
  auto it = teachers_.find(teacher);
  return it != teachers_.end() && it->second.paused;
}

v1::TeacherStatus Budget::Status(const std::string& teacher) const {
  v1::TeacherStatus s;
  s.set_name(teacher);
  auto it = teachers_.find(teacher);
  if (it == teachers_.end()) return s;
  const TeacherBudget& tb = it->second;
  s.set_window_ms(tb.profile.limit_window_s * 1000);
  if (tb.requests) {
    s.set_effective_rpm(tb.requests->effective().value_or(0));
    s.set_configured_rpm(tb.requests->configured());
  }
  if (tb.tokens) {
    s.set_effective_tpm(tb.tokens->effective().value_or(0));
    s.set_configured_tpm(tb.tokens->configured());
  }
  s.set_learning((tb.requests && tb.requests->learning()) ||
                 (tb.tokens && tb.tokens->learning()));
  s.set_max_concurrency(tb.profile.max_concurrency);
  s.set_paused(tb.paused);
  s.set_pause_reason(tb.pause_reason);
  s.set_rate_limited_total(tb.rate_limited_total);
  s.set_errors_total(tb.errors_total);
  return s;
}

}  // namespace distillery
