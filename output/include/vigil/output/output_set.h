#pragma once
// The configured alert outputs of one vigild: a Deliverer each; the queues of outputs no
// longer configured are dropped at start (and said in the log); the API's view of them.

#include <memory>
#include <string>
#include <vector>

#include "vigil/output/deliverer.h"

namespace vigil::output {

class OutputSet {
 public:
  static Expected<std::unique_ptr<OutputSet>> create(const std::vector<OutputConfig>& configs,
                                                     store::Store& store, MetricsRegistry& metrics,
                                                     const Clock& clock);
  void start();
  void stop();
  // After a batch: alerts queued per output, in the configs' order.
  void queued(const std::vector<uint64_t>& per_output);
  // {"outputs":[{name, type, state, format, min_level, delivered, ...}]}
  std::string status_json() const;
  Status test(const std::string& name);
  size_t size() const { return deliverers_.size(); }

 private:
  std::vector<std::unique_ptr<Deliverer>> deliverers_;
  const Clock* clock_ = nullptr;
};

}  // namespace vigil::output
