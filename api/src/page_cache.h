#pragma once
// PageCache: rendered answers of alert list queries, each kept under the store's alerts
// version it was computed at (Store::alerts_version), so that a page asked for again before
// any alert was written (dashboards refreshing one view, analysts on the newest alerts) is
// served without reading and writing it out again. An entry of an older version is never
// returned: a new alert makes every cached page stale at once.
//
// Bounded in bytes (least recently used out first); answers larger than a sixteenth of the
// bound are not kept. Thread-safe (one mutex, held for a lookup or an insert, never while
// a page is computed).

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "vigil/core/mutex.h"

namespace vigil::api {

class PageCache {
 public:
  explicit PageCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  // The answer cached for `key` at `version`, or null (an entry of another version is dropped).
  std::shared_ptr<const std::string> find(const std::string& key, uint64_t version);
  // Keeps `body` as the answer for `key` at `version`.
  void insert(const std::string& key, uint64_t version, std::string body);

  size_t bytes() const;
  size_t entries() const;

 private:
  struct Entry {
    std::string key;
    uint64_t version;
    std::shared_ptr<const std::string> body;
  };
  void erase(std::list<Entry>::iterator it) VIGIL_REQUIRES(mu_);

  const size_t max_bytes_;
  mutable Mutex mu_;
  std::list<Entry> lru_ VIGIL_GUARDED_BY(mu_);  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_ VIGIL_GUARDED_BY(mu_);
  size_t bytes_ VIGIL_GUARDED_BY(mu_) = 0;
};

}  // namespace vigil::api
