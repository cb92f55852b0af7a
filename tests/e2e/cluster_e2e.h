#pragma once
// The cluster e2e fixture: three vigild processes with their own stores in one consumer group
// on a standalone broker (`vigil dev kafka`), judged through each one's API. Shared by
// cluster_e2e_test.cc (queries and correlations) and cluster_content_e2e_test.cc (rule content).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e_support.h"
#include "vigil/core/time.h"

namespace vigil::e2e {
namespace {

// A loopback port nothing listens on now (the replicas must know each other's before start).
uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

class ClusterTest : public VigildFixture {
 protected:
  static constexpr int kReplicas = 3;
  std::string name(int i) const { return std::string("vigil-") + std::to_string(i); }

  void SetUp() override {
    for (int i = 0; i < kReplicas; ++i) ports_[i] = free_port();
    std::ofstream(dir_ / "cursor-key") << "e2e-cluster-cursor-key-0123456789\n";
  }

  // Starts replica i (its own data directory, "data-<i>" unless named) and waits until it is
  // ready.
  void start_replica(int i, const std::string& data = "") {
    std::string peers;
    for (int j = 0; j < kReplicas; ++j)
      peers += (j ? "," : "") + name(j) + "=http://127.0.0.1:" + std::to_string(ports_[j]);
    listen_ = "127.0.0.1:" + std::to_string(ports_[i]);
    std::vector<std::string> args = {
        "--kafka-brokers", brokers_, "--group-instance-id", name(i), "--cluster-self", name(i),
        "--cluster-peers", peers, "--cluster-cursor-key-file", (dir_ / "cursor-key").string(),
        // The simulated events are dated at a fixed day, which retention by age would
        // drop a minute after start once the calendar is 7 days past it.
        "--events-max-age", "0",
        // Three replicas, the broker and the test share two cores (and ASan in CI).
        "--cluster-peer-timeout", "30s",
        // A bundle pushed for a dry run is stored, not rolled out.
        "--rollout-policy", policy_};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    const uint16_t port = start(procs_[i], args, data.empty() ? "data-" + std::to_string(i) : data);
    ASSERT_EQ(port, ports_[i]) << log(runs_);
    run_of_[i] = runs_;
    ASSERT_TRUE(
        wait_for([&] { return test::http_get("127.0.0.1", port, "/readyz").status == 200; }, 60s))
        << log(runs_);
  }

  // The alert list of a replica, page by page (`limit` per page), as ids.
  std::vector<std::string> alert_ids(uint16_t port, int limit, std::string cursor = {}) {
    std::vector<std::string> ids;
    for (int page = 0; page < 10000; ++page) {
      std::string target = "/api/v1/alerts?limit=" + std::to_string(limit);
      if (!cursor.empty()) target += "&cursor=" + cursor;
      auto r = api_get(port, target);
      if (r.status != 200) return {"HTTP " + std::to_string(r.status) + " " + r.body};
      rapidjson::Document d;
      d.Parse(r.body.c_str());
      for (const auto& a : d["alerts"].GetArray()) ids.push_back(a["id"].GetString());
      if (d["next_cursor"].IsNull()) break;
      cursor = d["next_cursor"].GetString();
    }
    return ids;
  }

  // The first page's cursor of the alert list on `port`.
  std::string first_cursor(uint16_t port, int limit) {
    auto r = api_get(port, "/api/v1/alerts?limit=" + std::to_string(limit));
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    return d["next_cursor"].IsNull() ? std::string() : d["next_cursor"].GetString();
  }

  struct Hunt {
    std::set<std::string> test_ids;
    size_t events = 0;
    bool partial = false;
    std::vector<std::string> missing;
    int status = 200;
    std::string error;  // the body of a failed page
  };
  // Every event a hunt on `port` returns, following its cursors.
  Hunt hunt(uint16_t port, const std::string& query, int limit) {
    Hunt h;
    std::string cursor;
    for (int page = 0; page < 10000; ++page) {
      std::string target = "/api/v1/events?" + query + "&limit=" + std::to_string(limit);
      if (!cursor.empty()) target += "&cursor=" + cursor;
      auto r = api_get(port, target);
      if (r.status != 200) {
        h.status = r.status;
        h.error = r.body;
        return h;
      }
      rapidjson::Document d;
      d.Parse(r.body.c_str());
      for (const auto& e : d["events"].GetArray()) {
        ++h.events;
        if (e.HasMember("event") && e["event"].HasMember("test_id"))
          h.test_ids.insert(e["event"]["test_id"].GetString());
      }
      h.partial = h.partial || d["partial"].GetBool();
      if (d.HasMember("replicas")) {
        for (const auto& m : d["replicas"]["missing"].GetArray())
          h.missing.push_back(m["peer"].GetString());
      }
      if (d["next_cursor"].IsNull()) break;
      cursor = d["next_cursor"].GetString();
    }
    return h;
  }

  // The symmetric difference, for a readable failure.
  static std::string diff(const std::set<AlertKey>& got, const std::set<AlertKey>& expected) {
    std::string out;
    for (const auto& k : expected)
      if (!got.count(k)) out += "  missing " + k.first + " " + k.second + "\n";
    for (const auto& k : got)
      if (!expected.count(k)) out += "  extra " + k.first + " " + k.second + "\n";
    return out;
  }

  std::set<AlertKey> alert_keys(uint16_t port) {
    auto all = alerts(port);
    return {all.begin(), all.end()};
  }

  // Waits until replica i lists as many alerts as expected, then checks they are exactly
  // those, each once.
  void expect_alerts(int i, const std::set<AlertKey>& expected) {
    std::set<AlertKey> got;
    ASSERT_TRUE(wait_for(
        [&] {
          got = alert_keys(ports_[i]);
          return got.size() >= expected.size();
        },
        90s))
        << name(i) << ": " << got.size() << " of " << expected.size() << "\n"
        << diff(got, expected) << log(run_of_[i]);
    EXPECT_EQ(got, expected) << name(i) << "\n" << diff(got, expected);
    EXPECT_EQ(alerts(ports_[i]).size(), expected.size()) << name(i) << ": an alert twice";
  }

  // The events topic's partitions the replicas of a deployment-wide /api/v1/stats hold (the
  // repartition topic's are listed too).
  static size_t events_partitions(const rapidjson::Document& stats) {
    size_t n = 0;
    if (!stats.IsObject() || !stats.HasMember("replicas")) return 0;
    for (const auto& rep : stats["replicas"].GetArray())
      for (const auto& p : rep["partitions"].GetArray())
        n += p.HasMember("topic") && std::string(p["topic"].GetString()) == "vigil.events";
    return n;
  }

  // Waits until every replica holds partitions and the events topic's 6 are all held.
  void wait_every_replica_assigned() {
    ASSERT_TRUE(wait_for(
        [&] {
          auto r = api_get(ports_[0], "/api/v1/stats");
          rapidjson::Document d;
          d.Parse(r.body.c_str());
          if (r.status != 200 || !d.HasMember("replicas") || d["replicas"].Size() != kReplicas)
            return false;
          for (const auto& rep : d["replicas"].GetArray())
            if (rep["partitions"].Empty()) return false;
          return events_partitions(d) == 6;
        },
        60s))
        << api_get(ports_[0], "/api/v1/stats").body;
  }

  std::vector<std::string> extra_args_;  // for every replica
  std::string policy_ = "pinned";
  std::string brokers_;
  uint16_t ports_[kReplicas] = {};
  int run_of_[kReplicas] = {};
  std::unique_ptr<test::Subprocess> procs_[kReplicas];
};

}  // namespace
}  // namespace vigil::e2e
