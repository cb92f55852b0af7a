#include "page_cache.h"

namespace vigil::api {

namespace {
// What an entry costs beyond its body (key, list and map nodes), roughly.
size_t entry_bytes(const std::string& key, const std::string& body) {
  return key.size() * 2 + body.size() + 128;
}
}  // namespace

std::shared_ptr<const std::string> PageCache::find(const std::string& key, uint64_t version) {
  MutexLock lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  if (it->second->version != version) {
    erase(it->second);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->body;
}

void PageCache::insert(const std::string& key, uint64_t version, std::string body) {
  const size_t cost = entry_bytes(key, body);
  if (cost > max_bytes_ / 16) return;
  auto shared = std::make_shared<const std::string>(std::move(body));
  MutexLock lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) erase(it->second);
  lru_.push_front(Entry{key, version, std::move(shared)});
  index_.emplace(key, lru_.begin());
  bytes_ += cost;
  while (bytes_ > max_bytes_ && !lru_.empty()) erase(std::prev(lru_.end()));
}

void PageCache::erase(std::list<Entry>::iterator it) {
  bytes_ -= entry_bytes(it->key, *it->body);
  index_.erase(it->key);
  lru_.erase(it);
}

size_t PageCache::bytes() const {
  MutexLock lock(mu_);
  return bytes_;
}

size_t PageCache::entries() const {
  MutexLock lock(mu_);
  return lru_.size();
}

}  // namespace vigil::api
