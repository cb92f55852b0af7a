#pragma once
// The rules vigild is configured with (--rules, --mapping, select) as a bundle, and the
// watch that submits them again when their files change while vigild runs: a ConfigMap
// update in Kubernetes (the kubelet writes the new files into a fresh hidden directory and
// swaps the `..data` link to it at once), or a directory edited in place. The change goes
// through the content lifecycle like any pushed bundle (validated, then rolled out by the
// policy); a refused bundle leaves the running one in place.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "config.h"
#include "vigil/core/metrics.h"
#include "vigil/core/status.h"
#include "vigil/match/bundle.h"

namespace vigil::ingest {
class Rollout;
}

namespace vigil::app {

// The configured rules and mapping as a bundle: the mapping as mapping.yml, the rules under
// rules/ (rules/<i>/ for several roots), a manifest naming both and holding the selection.
// Directories are read recursively for *.yml and *.yaml; entries whose name starts with a
// dot are skipped (the kubelet's `..data` link and `..<timestamp>` directories, editors'
// files), symbolic links to files are followed.
Expected<match::Bundle> configured_bundle(const Config& config);

// What changes when any configured rule file or the mapping changes: each file's path, size,
// modification time and inode (of the link's target). Cheap: no file is read.
Expected<uint64_t> configured_fingerprint(const Config& config);

class RulesWatch {
 public:
  // Every `interval`: when the fingerprint changed and reads the same twice in a row (a
  // copy in progress is not submitted half done), the bundle is read and handed to the
  // rollout with Rollout::submit_changed_config.
  RulesWatch(const Config& config, ingest::Rollout& rollout, MetricsRegistry& metrics,
             std::chrono::milliseconds interval);
  ~RulesWatch();
  RulesWatch(const RulesWatch&) = delete;
  RulesWatch& operator=(const RulesWatch&) = delete;

  void start();
  void stop();
  // One look at the files (the thread calls it every interval; tests may call it directly).
  void check();

 private:
  const Config& config_;
  ingest::Rollout& rollout_;
  std::chrono::milliseconds interval_;
  Counter& submitted_;
  Counter& refused_;
  Counter& errors_;
  uint64_t seen_ = 0;     // the fingerprint the last bundle was read at
  uint64_t pending_ = 0;  // a new fingerprint, submitted once it is seen again
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vigil::app
