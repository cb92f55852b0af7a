#include "vigil/ingest/partition_assigner.h"

#include <algorithm>

namespace vigil::ingest {

PartitionAssigner::PartitionAssigner(int workers)
    : load_(static_cast<size_t>(std::max(workers, 1)), 0) {}

int PartitionAssigner::assign(const std::string& topic, int32_t partition) {
  auto [it, inserted] = owner_.try_emplace({topic, partition}, 0);
  if (!inserted) return it->second;
  const auto least = std::min_element(load_.begin(), load_.end());
  it->second = static_cast<int>(least - load_.begin());
  ++*least;
  return it->second;
}

std::optional<int> PartitionAssigner::release(const std::string& topic, int32_t partition) {
  auto it = owner_.find({topic, partition});
  if (it == owner_.end()) return std::nullopt;
  const int w = it->second;
  --load_[static_cast<size_t>(w)];
  owner_.erase(it);
  return w;
}

std::optional<int> PartitionAssigner::owner(const std::string& topic, int32_t partition) const {
  auto it = owner_.find({topic, partition});
  if (it == owner_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, int32_t>> PartitionAssigner::partitions_of(int worker) const {
  std::vector<std::pair<std::string, int32_t>> out;
  for (const auto& [tp, w] : owner_) {
    if (w == worker) out.push_back(tp);
  }
  return out;
}

}  // namespace vigil::ingest
