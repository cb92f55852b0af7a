#include "e2e/e2e_support.h"

#include "vigil/core/time.h"
#include "vigil/ingest/simulator.h"

namespace vigil::e2e {

std::string now_rfc3339() { return format_rfc3339(SystemClock::instance().now_ms()); }

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

StreamingProducer::StreamingProducer(std::string brokers, fs::path dir,
                                     std::vector<std::string>& events, uint64_t seed)
    : brokers_(std::move(brokers)),
      file_(dir / ("stream-" + std::to_string(seed) + ".jsonl")),
      events_(events) {
  thread_ = std::thread([this, seed]() mutable {
    while (!done_.load()) {
      auto chunk = simulated_events(events_.size(), 100, seed++);
      std::ofstream out(file_);
      for (const auto& l : chunk) out << l << "\n";
      out.close();
      // kcat can report a failed delivery and still exit 0: its error lines count too.
      std::string output;
      const int rc = test::run_command(std::string(KCAT_PATH) + " -P -b " + brokers_ +
                                           " -t vigil.events -l " + file_.string() + " 2>&1",
                                       &output);
      if (rc != 0 || output.find("ERROR") != std::string::npos) {
        std::fprintf(stderr, "streaming producer: kcat rc=%d: %s\n", rc, output.c_str());
        ++failures_;
        continue;
      }
      events_.insert(events_.end(), chunk.begin(), chunk.end());
      std::this_thread::sleep_for(200ms);
    }
  });
}

int StreamingProducer::stop() {
  done_ = true;
  if (thread_.joinable()) thread_.join();
  return failures_.load();
}

}  // namespace vigil::e2e
