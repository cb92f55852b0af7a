#pragma once
// The rule content operations the API serves (bundles, dry runs, rollouts), implemented by
// the daemon over ingest::Rollout. A seam: the API depends on core, match and store only,
// and tests can serve a fake.
//
// Thread safety: implementations are called from the HTTP I/O threads concurrently.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "vigil/core/status.h"
#include "vigil/core/time.h"
#include "vigil/match/bundle.h"

namespace vigil::api {

struct SubmittedBundle {
  bool stored = false;  // false: the same content was stored before
  bool valid = false;
  std::string json;
};

class ContentService {
 public:
  virtual ~ContentService() = default;
  // The bundle every shard runs when no rollout is in progress (GET /api/v1/rules).
  virtual std::shared_ptr<const match::CompiledBundle> active() const = 0;
  virtual Expected<std::string> list_bundles() const = 0;
  virtual Expected<std::string> bundle(uint64_t version) const = 0;
  virtual Expected<std::string> bundle_archive(uint64_t version) const = 0;
  // Validates and stores an archive (tar, tar.gz, zip). `actor` names who for the audit log.
  virtual Expected<SubmittedBundle> submit(std::string_view archive, const std::string& actor) = 0;
  virtual Expected<std::string> dry_run(uint64_t version, TimeMs since, TimeMs until,
                                        size_t max_events) const = 0;
  // A dry run of an archive that is not stored (POST /api/v1/bundles/dry-run; what cluster
  // mode asks of the peers, which may not hold the bundle).
  virtual Expected<std::string> dry_run_archive(std::string_view archive, TimeMs since,
                                                TimeMs until, size_t max_events,
                                                bool lenient) const {
    (void)archive, (void)since, (void)until, (void)max_events, (void)lenient;
    return Status::unavailable("dry runs of an archive are not served by this server");
  }
  virtual Expected<std::string> rollout_state() const = 0;
  virtual Expected<std::string> audit(size_t limit) const = 0;
  // action: start (with version), promote, pause, resume, rollback.
  virtual Status rollout_action(std::string_view action, uint64_t version, const std::string& actor,
                                const std::string& reason) = 0;
  virtual Status set_policy(std::string_view policy, const std::string& actor) = 0;
};

}  // namespace vigil::api
