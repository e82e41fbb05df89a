// CoordinatorServer: a Coordinator on a RocksDB data dir, served over gRPC
// (client service, worker service, standard health service), with a
// housekeeping thread that expires leases. Used by distillery-coordinator's
// main and by `distillery run`, which embeds a whole cluster in one process.
#ifndef DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_SERVER_H_
#define DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_SERVER_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/metrics/metrics.h"
#include "common/rpc/grpc_security.h"
#include "services/coordinator/coordinator.h"

namespace grpc {
class Server;
}

namespace distillery {

class ClientServiceImpl;
class WorkerServiceImpl;

struct CoordinatorServerOptions {
  std::string listen = "127.0.0.1:7070";  // port 0 picks a free one
  std::string data_dir;
  // Each commit reaches the disk (WAL fsync) before it is acknowledged.
  bool sync_writes = false;
  std::vector<TeacherProfile> teachers;
  CoordinatorOptions coordinator;
  // Security and limits (see README "Security"): TLS when tls.cert_file is
  // set, bearer tokens for clients and for workers when set.
  ServerTlsOptions tls;
  std::string client_token;
  std::string worker_token;
  // Largest gRPC message either way (--max-message-mb). Leases and export
  // chunks are cut to fit it; prompts must fit with room to spare, or Start
  // refuses the configuration.
  int max_message_bytes = kDefaultMaxMessageBytes;
  int max_concurrent_submissions = 0;  // 0: no limit
  // Time for the coordinator, housekeeping and watches; not owned. Tests
  // pass a FakeClock.
  Clock* clock = &RealClock::Get();
};

// The warning to log when `options` serve callers no one authenticates on an
// address other hosts can reach (not loopback, not a unix socket), naming
// what is open; "" when there is nothing to warn about.
std::string ExposureWarning(const CoordinatorServerOptions& options);

// Not thread-safe to start; the running server is, and Shutdown may be
// called from any thread (a signal handler thread and the destructor). The
// housekeeping thread expires leases every 200 ms of its clock, waiting on
// the clock so that Shutdown wakes it at once.
class CoordinatorServer {
 public:
  ~CoordinatorServer();
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      CoordinatorServerOptions options);
  // "host:port" actually bound.
  const std::string& address() const { return address_; }
  void Wait();
  // Stops serving, finishing calls in flight for up to `grace`, then saves
  // the lease table for the next start (Coordinator::SaveLeases). Returns
  // once stopped, also when another thread's call is doing the stopping.
  void Shutdown(Duration grace = std::chrono::seconds(5));
  Coordinator& coordinator() { return *coordinator_; }

 private:
  CoordinatorServer() = default;
  // The housekeeping thread's body: expires leases until Shutdown.
  void Housekeep() ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<ClientServiceImpl> client_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  Clock* clock_ = nullptr;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::once_flag shutdown_once_;
  std::thread housekeeping_;
  // Declared last: unregistered before the coordinator and store go.
  std::unique_ptr<metrics::CollectorHandle> metrics_;
};

}  // namespace distillery

#endif  // DISTILLERY_SERVICES_COORDINATOR_COORDINATOR_SERVER_H_
