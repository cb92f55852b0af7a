#pragma once
// Connection admission of the HTTP server (private to api/): per-client counts and the idle
// connections that a new one may evict. Thread safety: any thread (one mutex).

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "vigil/core/metrics.h"
#include "vigil/core/mutex.h"

namespace vigil::api {

// A connection as the admission control sees it: evict() closes it from any thread (the
// close itself runs on the connection's own I/O thread).
class Evictable {
 public:
  virtual ~Evictable() = default;
  virtual void evict() = 0;
};

// Connections per client address, and those waiting for a request (idle keep-alive,
// silent, or sending a header slowly), oldest first. When the server is full, or a client
// is at its own limit, a new connection evicts the oldest idle one instead of being
// refused: idle sockets can no longer lock other clients (probes, /metrics) out.
class Admission {
 public:
  using Idle = std::list<std::pair<std::weak_ptr<Evictable>, std::string>>;

  // Counts a new connection from `client`; false if it must be refused: the server or the
  // client is at its limit and no idle connection (the client's own, at its limit) could be
  // evicted to make room.
  bool admit(const std::string& client, size_t total, size_t max_total, size_t max_per_client,
             Counter* evictions) {
    std::shared_ptr<Evictable> victim;
    {
      MutexLock lock(mu_);
      size_t& mine = per_client_[client];
      const bool client_full = max_per_client > 0 && mine >= max_per_client;
      if (client_full || total >= max_total) {
        victim = take_idle(client_full ? &client : nullptr);
        if (!victim) {
          if (mine == 0) per_client_.erase(client);
          return false;
        }
      }
      ++mine;
    }
    if (victim) {
      if (evictions) evictions->inc();
      victim->evict();
    }
    return true;
  }
  void release(const std::string& client) {
    MutexLock lock(mu_);
    auto it = per_client_.find(client);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
  }
  Idle::iterator mark_idle(std::weak_ptr<Evictable> session, const std::string& client) {
    MutexLock lock(mu_);
    idle_.emplace_back(std::move(session), client);
    return std::prev(idle_.end());
  }
  void mark_busy(Idle::iterator it) {
    MutexLock lock(mu_);
    idle_.erase(it);
  }
  // The end of a std::list is its sentinel, fixed for its lifetime: read without the lock.
  Idle::iterator none() VIGIL_NO_THREAD_SAFETY_ANALYSIS { return idle_.end(); }

 private:
  // The oldest idle connection (of `client`, if given) that is still alive. Its entry stays
  // (only its owner removes it, in mark_busy) but no longer names it: taken once.
  std::shared_ptr<Evictable> take_idle(const std::string* client) VIGIL_REQUIRES(mu_) {
    for (auto& [weak, owner] : idle_) {
      if (client != nullptr && owner != *client) continue;
      if (auto session = weak.lock()) {
        weak.reset();
        return session;
      }
    }
    return nullptr;
  }
  Mutex mu_;
  std::unordered_map<std::string, size_t> per_client_ VIGIL_GUARDED_BY(mu_);
  Idle idle_ VIGIL_GUARDED_BY(mu_);
};

}  // namespace vigil::api
