// Crash consistency: a writer process persisting batches (alerts, their indexes, retained
// events, offsets) is killed with SIGKILL at random points; after each kill the reopened
// store holds every alert indexed, and its offsets are never ahead of (nor behind) the
// data they cover.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "support/temp_dir.h"
#include "vigil/store/store.h"

namespace vigil::store {
namespace {

constexpr TimeMs kT0 = 1795539600000;
constexpr int kBatch = 200;

// Runs in the child: from the stored offset on, batches of kBatch events, an alert for every
// third, the offset after the batch, until killed. Writes a byte to `ready` once the first
// batch is persisted, so the parent kills it while it writes, not while it opens the store.
[[noreturn]] void write_forever(const std::string& path, int ready) {
  auto opened = Store::open({path});
  if (!opened) _exit(3);
  Store& store = **opened;
  int64_t next = store.next_offset("c/e", 0)->value_or(0);
  const std::vector<std::string> tags = {"attack.execution"};
  std::string payload;
  std::vector<std::string> payloads(kBatch);
  for (;;) {
    std::vector<AlertRecord> alerts;
    std::vector<EventRecord> events;
    for (int i = 0; i < kBatch; ++i, ++next) {
      payloads[static_cast<size_t>(i)] =
          R"({"n":)" + std::to_string(next) + R"(,"pad":")" + std::string(400, 'p') + R"("})";
      events.push_back({kT0 + next, "c/e", 0, next, payloads[static_cast<size_t>(i)]});
      if (next % 3 == 0) {
        AlertRecord& a = alerts.emplace_back();
        a.id = AlertId::derive("c/e", 0, next, "rule");
        a.time = kT0 + next;
        a.rule_id = "rule";
        a.host = "h" + std::to_string(next % 7);
        a.level = AlertLevel::kHigh;
        a.title = "title";
        a.tags = tags;
        a.json = R"({"n":)" + std::to_string(next) + "}";
      }
    }
    if (!store.put_batch(alerts, {{"c/e", 0, next}}, {}, events)) _exit(4);
    if (ready >= 0) {
      const char byte = 1;
      if (write(ready, &byte, 1) != 1) _exit(5);
      close(ready);
      ready = -1;
    }
  }
}

TEST(CrashTest, KillNineDuringHeavyWritesKeepsTheStoreConsistent) {
  test::TempDir tmp("crash");
  const std::string path = tmp / "data";
  std::mt19937 rng(7);
  int64_t last = 0;
  for (int round = 0; round < 6; ++round) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(ready[0]);
      write_forever(path, ready[1]);
    }
    close(ready[1]);
    // Opening the store (a read-only check, then recovery) takes longer under sanitizers and
    // a loaded machine: the random kill point is counted from the first persisted batch.
    pollfd first{ready[0], POLLIN, 0};
    ASSERT_EQ(poll(&first, 1, 60000), 1) << "the writer persisted no batch within 60 s";
    close(ready[0]);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 400));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped by itself with status " << status;

    auto store = Store::open({path});
    ASSERT_TRUE(store) << store.status().to_string();
    auto report = (*store)->verify();
    ASSERT_TRUE(report) << report.status().to_string();
    EXPECT_TRUE(report->ok()) << "round " << round << ": missing index "
                              << report->alerts_missing_index << ", dangling "
                              << report->dangling_index << ", undecodable " << report->undecodable;
    const int64_t next = (*store)->next_offset("c/e", 0)->value_or(0);
    EXPECT_GE(next, last);  // durable progress never goes back
    EXPECT_EQ(next % kBatch, 0);
    // Exactly the events below the offset, and the alerts among them.
    EXPECT_EQ(report->events, static_cast<uint64_t>(next)) << "round " << round;
    EXPECT_EQ(report->alerts, static_cast<uint64_t>((next + 2) / 3)) << "round " << round;
    last = next;
  }
  EXPECT_GT(last, 0);
}

}  // namespace
}  // namespace vigil::store
