#include "e2e/e2e_support.h"

#include "vigil/ingest/simulator.h"

namespace vigil::e2e {

std::vector<std::string> simulated_events(size_t first, size_t n, uint64_t seed) {
  ManualClock clock(1795539600000);
  ingest::SensorSimulator sim({50, 0.05, seed}, clock);
  std::vector<std::string> out;
  out.reserve(n);
  ingest::SimulatedEvent e;
  for (size_t i = 0; i < n; ++i) {
    sim.next(e);
    clock.advance_ms(1);
    // {"test_id":"e<k>", ...the event's own fields}
    out.push_back("{\"test_id\":\"e" + std::to_string(first + i) + "\"," + e.json.substr(1));
  }
  return out;
}

}  // namespace vigil::e2e
