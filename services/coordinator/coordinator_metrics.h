// The coordinator's scrape-time metrics: job progress by state, spend and
// last progress per job, leases, live workers and RocksDB figures. They are
// read from the Coordinator and the Store when Prometheus scrapes, instead
// of being tracked on every event.
#ifndef DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_
#define DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_

#include <memory>
#include <vector>

#include "common/base/clock.h"
#include "common/metrics/metrics.h"
#include "common/store/store.h"
#include "services/coordinator/coordinator.h"

namespace distillery {

// The metric families for one snapshot. A worker counts as live when the
// coordinator heard from it within `live_within`. Pure; for tests.
std::vector<metrics::Family> CoordinatorFamilies(
    const CoordinatorSnapshot& snapshot, const StoreStats& store,
    Duration live_within);

// Registers a collector over `coordinator` and `store`, which must outlive
// the returned handle.
std::unique_ptr<metrics::CollectorHandle> RegisterCoordinatorMetrics(
    Coordinator& coordinator, Store& store, Duration live_within);

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_
