#pragma once
// Sensor simulator: realistic Windows endpoint telemetry as flat Sysmon-style JSON
// (rules/mappings/vigil-sensor.yml): process creation, network connections, file creation,
// registry writes and DNS queries from a fleet of simulated hosts. A small, known share
// of events is malicious behaviour that the default rule pack detects; each such event
// names the rule that must fire, so tests can check the pipeline end to end.
//
// Deterministic for a given seed. Not thread-safe: one simulator per producing thread.

#include <atomic>
#include <cstdint>
#include <random>
#include <string>

#include "vigil/core/metrics.h"
#include "vigil/core/status.h"
#include "vigil/core/time.h"

namespace vigil::ingest {

struct SimulatorOptions {
  int hosts = 300;
  double malicious_ratio = 0.01;  // share of events that are attacks
  uint64_t seed = 1;
};

struct SimulatedEvent {
  std::string json;
  std::string host;
  std::string expected_rule_id;  // the default-pack rule this event must trigger; empty if benign
};

class SensorSimulator {
 public:
  SensorSimulator(const SimulatorOptions& options, const Clock& clock);
  // Fills `out` with the next event.
  void next(SimulatedEvent& out);
  // The next malicious event, whatever the ratio (for tests).
  void next_malicious(SimulatedEvent& out);

 private:
  void benign(SimulatedEvent& out);
  void malicious(SimulatedEvent& out);

  SimulatorOptions options_;
  const Clock& clock_;
  std::mt19937_64 rng_;
  uint64_t sequence_ = 0;
};

struct ProduceOptions {
  std::string brokers;
  std::string topic = "vigil.events";
  double rate = 1000;       // events per second; 0: as fast as the producer takes them
  uint64_t max_events = 0;  // 0: until stopped
};

// Produces simulated events to Kafka until `stop` is set or max_events are sent, then
// flushes. Counts what it produced in `metrics` (vigil_simulator_events_total).
Status run_simulator(const ProduceOptions& produce, SensorSimulator& sim,
                     const std::atomic<bool>& stop, MetricsRegistry& metrics);

}  // namespace vigil::ingest
