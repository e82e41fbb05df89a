#include "tests/testing/in_process_coordinator_client.h"

#include <algorithm>

#include "tests/testing/clock_driver.h"

namespace distillery::testing {

absl::StatusOr<v1::RegisterResponse> InProcessCoordinatorClient::Register(
    const v1::RegisterRequest& request) {
  v1::RegisterResponse response = coordinator_.Register(request);
  absl::MutexLock lock(&mu_);
  ++registers_;
  last_register_ = request;
  return response;
}

absl::StatusOr<v1::LeaseResponse> InProcessCoordinatorClient::Lease(
    const v1::LeaseRequest& request) {
  {
    absl::MutexLock lock(&mu_);
    if (lease_failures_ > 0) {
      --lease_failures_;
      return absl::FailedPreconditionError("unknown worker; register again");
    }
  }
  absl::StatusOr<v1::LeaseResponse> response = coordinator_.Lease(request);
  absl::MutexLock lock(&mu_);
  ++leases_;
  if (response.ok()) {
    for (const v1::LeasedTask& t : response->tasks()) {
      leased_ids_.push_back(t.lease_id());
    }
  }
  return response;
}

absl::StatusOr<v1::ReportResponse> InProcessCoordinatorClient::Report(
    const v1::ReportRequest& sent) {
  {
    absl::MutexLock lock(&mu_);
    if (unknown_reports_ > 0) {
      // As a coordinator that restarted since the worker registered.
      --unknown_reports_;
      return absl::FailedPreconditionError(
          "unknown worker '" + sent.worker_id() + "'; register again");
    }
    if (report_failures_ > 0) {
      --report_failures_;
      ++failed_reports_;
      return absl::UnavailableError("coordinator unreachable");
    }
    const size_t bytes = sent.ByteSizeLong();
    largest_report_ = std::max(largest_report_, bytes);
    most_results_ = std::max(most_results_, sent.results_size());
    if (max_report_bytes_ > 0 && bytes > max_report_bytes_) {
      ++refused_reports_;
      return absl::ResourceExhaustedError("Received message larger than max");
    }
    for (const v1::TaskResult& r : sent.results()) {
      if (!refused_content_.empty() &&
          r.answer().content() == refused_content_) {
        ++refused_reports_;
        return absl::InvalidArgumentError("a result the coordinator refuses");
      }
    }
  }
  v1::ReportRequest request;
  if (!request.ParseFromString(sent.SerializeAsString())) {
    absl::MutexLock lock(&mu_);
    ++refused_reports_;
    return absl::InternalError("Failed to parse request");
  }
  absl::StatusOr<v1::ReportResponse> response = coordinator_.Report(request);
  absl::MutexLock lock(&mu_);
  if (response.ok()) {
    for (const v1::TaskResult& r : request.results()) results_.push_back(r);
  }
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> InProcessCoordinatorClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response = coordinator_.Heartbeat(request);
  absl::MutexLock lock(&mu_);
  ++heartbeats_;
  last_heartbeat_ = request;
  return response;
}

void InProcessCoordinatorClient::FailNextLeases(int n) {
  absl::MutexLock lock(&mu_);
  lease_failures_ = n;
}
void InProcessCoordinatorClient::FailNextReports(int n) {
  absl::MutexLock lock(&mu_);
  report_failures_ = n;
}
void InProcessCoordinatorClient::ForgetWorkerAtNextReports(int n) {
  absl::MutexLock lock(&mu_);
  unknown_reports_ = n;
}
void InProcessCoordinatorClient::RefuseReportsOver(size_t bytes) {
  absl::MutexLock lock(&mu_);
  max_report_bytes_ = bytes;
}
void InProcessCoordinatorClient::RefuseAnswer(const std::string& content) {
  absl::MutexLock lock(&mu_);
  refused_content_ = content;
}
int InProcessCoordinatorClient::refused_reports() {
  absl::MutexLock lock(&mu_);
  return refused_reports_;
}
int InProcessCoordinatorClient::most_results_in_a_report() {
  absl::MutexLock lock(&mu_);
  return most_results_;
}

size_t InProcessCoordinatorClient::largest_report() {
  absl::MutexLock lock(&mu_);
  return largest_report_;
}
int InProcessCoordinatorClient::registers() {
  absl::MutexLock lock(&mu_);
  return registers_;
}
v1::RegisterRequest InProcessCoordinatorClient::last_register() {
  absl::MutexLock lock(&mu_);
  return last_register_;
}
int InProcessCoordinatorClient::failed_reports() {
  absl::MutexLock lock(&mu_);
  return failed_reports_;
}
std::vector<v1::TaskResult> InProcessCoordinatorClient::results() {
  absl::MutexLock lock(&mu_);
  return results_;
}
std::vector<int64_t> InProcessCoordinatorClient::leased_ids() {
  absl::MutexLock lock(&mu_);
  return leased_ids_;
}

bool InProcessCoordinatorClient::WaitUntil(const std::function<bool()>& ready) {
  if (drive_ != nullptr) {
    return RunClockUntil(*drive_, [&] {
      absl::MutexLock lock(&mu_);
      return ready();
    });
  }
  absl::MutexLock lock(&mu_);
  // A hang guard, not a timing.
  return mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30));
}

bool InProcessCoordinatorClient::WaitForFreshHeartbeat() {
  int64_t target;
  {
    absl::MutexLock lock(&mu_);
    target = heartbeats_ + 3;
  }
  return WaitUntil([this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return heartbeats_ >= target;
  });
}

bool InProcessCoordinatorClient::WaitForReports(size_t n) {
  return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return results_.size() >= n;
  });
}

bool InProcessCoordinatorClient::WaitForFailedReports(int n) {
  return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return failed_reports_ >= n;
  });
}

bool InProcessCoordinatorClient::SyncLoop() {
  int64_t target;
  {
    absl::MutexLock lock(&mu_);
    target = leases_ + 2;
  }
  return WaitUntil([this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return leases_ >= target;
  });
}

bool InProcessCoordinatorClient::WaitForHeartbeatWith(int64_t lease_id) {
  int64_t after;
  {
    absl::MutexLock lock(&mu_);
    after = heartbeats_;
  }
  return WaitUntil(
      [this, after, lease_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (heartbeats_ < after + 2) return false;
        const auto& ids = last_heartbeat_.held_lease_ids();
        return std::find(ids.begin(), ids.end(), lease_id) != ids.end();
      });
}

bool InProcessCoordinatorClient::WaitForHeartbeatWithout(int64_t lease_id) {
  int64_t after;
  {
    absl::MutexLock lock(&mu_);
    after = heartbeats_;
  }
  return WaitUntil(
      [this, after, lease_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (heartbeats_ < after + 2) return false;
        const auto& ids = last_heartbeat_.held_lease_ids();
        return std::find(ids.begin(), ids.end(), lease_id) == ids.end();
      });
}

}  // namespace distillery::testing
