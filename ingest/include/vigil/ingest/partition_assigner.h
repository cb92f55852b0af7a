#pragma once
// PartitionAssigner: which shard worker owns which assigned Kafka partition.
//
// A partition goes to the worker that owns the fewest (the lowest index on a tie) and stays
// there until it is released, so a cooperative rebalance that adds or removes some
// partitions never moves the others between workers. Each partition has exactly one owner,
// so a partition's messages are processed in order by one thread.
//
// Not thread-safe: the consumer thread owns it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vigil::ingest {

class PartitionAssigner {
 public:
  explicit PartitionAssigner(int workers);

  // The owner of (topic, partition), choosing one if it has none.
  int assign(const std::string& topic, int32_t partition);
  // Forgets the partition; returns its former owner, if it had one.
  std::optional<int> release(const std::string& topic, int32_t partition);
  std::optional<int> owner(const std::string& topic, int32_t partition) const;
  // The partitions `worker` owns, in (topic, partition) order.
  std::vector<std::pair<std::string, int32_t>> partitions_of(int worker) const;
  size_t load(int worker) const { return load_[static_cast<size_t>(worker)]; }
  int workers() const { return static_cast<int>(load_.size()); }

 private:
  std::map<std::pair<std::string, int32_t>, int> owner_;
  std::vector<size_t> load_;
};

}  // namespace vigil::ingest
