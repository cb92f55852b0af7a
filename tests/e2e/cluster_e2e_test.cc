// Cluster mode end to end: three vigild processes with their own stores in one consumer
// group on a standalone broker (`vigil dev kafka`), judged through each one's API.
//  - every replica answers the alert list with the same alerts, order and cursors (a cursor
//    from one continues on another), exactly the alerts `vigil match` finds;
//  - an event hunt on one replica returns the events the others stored;
//  - a replica killed with SIGKILL: hunts are partial and name it, the alert list stays
//    whole (its alerts were mirrored), its partitions move and the alerts of what follows
//    arrive once; back again, hunts are whole.

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

TEST_F(ClusterTest, AnyReplicaAnswersForTheDeploymentAndNamesAReplicaThatIsGone) {
  Broker broker(6);
  ASSERT_FALSE(broker.bootstrap().empty());
  brokers_ = broker.bootstrap();
  for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(start_replica(i));
  // Every replica has partitions before events arrive.
  ASSERT_NO_FATAL_FAILURE(wait_every_replica_assigned());

  std::vector<std::string> all = simulated_events(0, 3000, 31);
  kcat_produce(brokers_, all);
  auto expected = expected_by_batch_match(all);
  ASSERT_GT(expected.size(), 20u);
  // Each replica's list holds every replica's alerts: exactly what `vigil match` finds.
  for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(expect_alerts(i, expected));
  // The same ids in the same order on every replica, whatever the page size, and a cursor
  // from one replica continues on another.
  const auto reference = alert_ids(ports_[0], 1000);
  ASSERT_EQ(reference.size(), expected.size());
  EXPECT_EQ(alert_ids(ports_[1], 7), reference);
  EXPECT_EQ(alert_ids(ports_[2], 50), reference);
  auto continued = alert_ids(ports_[0], 10);  // first 10 from replica 0 ...
  continued.resize(10);
  auto rest = alert_ids(ports_[2], 10, first_cursor(ports_[0], 10));  // ... the rest from 2
  continued.insert(continued.end(), rest.begin(), rest.end());
  EXPECT_EQ(continued, reference);
  for (int i = 0; i < kReplicas; ++i)
    EXPECT_EQ(api_get(ports_[i], "/api/v1/alerts/" + reference.back()).status, 200) << name(i);

  // Hunts: each replica stored the events of its partitions; any replica returns them all.
  std::set<std::string> produced;
  for (size_t i = 0; i < all.size(); ++i) produced.insert("e" + std::to_string(i));
  // Every event stored somewhere first (the alert list can be whole while a partition with
  // no alert left in it is still being read, e.g. just after a rebalance).
  std::set<std::string> stored;
  ASSERT_TRUE(wait_for(
      [&] {
        stored.clear();
        for (int i = 0; i < kReplicas; ++i) {
          const Hunt h = hunt(ports_[i], "scope=local&until=2100-01-01T00:00:00Z", 1000);
          stored.insert(h.test_ids.begin(), h.test_ids.end());
        }
        return stored == produced;
      },
      60s))
      << stored.size() << " of " << produced.size() << " events stored";
  // What each replica holds. The group can settle after the events arrived (a member that
  // rejoins takes partitions back), so a replica may hold many, all or none of them.
  std::vector<std::set<std::string>> held(kReplicas);
  for (int i = 0; i < kReplicas; ++i)
    held[i] = hunt(ports_[i], "scope=local&until=2100-01-01T00:00:00Z", 1000).test_ids;
  std::set<std::string> held_by_survivors = held[0];
  held_by_survivors.insert(held[1].begin(), held[1].end());
  const int fewest = static_cast<int>(
      std::min_element(held.begin(), held.end(),
                       [](const auto& a, const auto& b) { return a.size() < b.size(); }) -
      held.begin());
  ASSERT_LT(held[fewest].size(), produced.size());
  // Each replica's hunt returns every event, the one holding fewest included (so events only
  // the others stored).
  for (int i = 0; i < kReplicas; ++i) {
    const Hunt h = hunt(ports_[i], "until=2100-01-01T00:00:00Z", i == fewest ? 97 : 1000);
    EXPECT_EQ(h.status, 200);
    std::string absent;
    for (const auto& id : produced)
      if (!h.test_ids.count(id)) absent += id + " ";
    std::string missing;
    for (const auto& m : h.missing) missing += m + " ";
    EXPECT_TRUE(absent.empty()) << name(i) << " misses " << absent.substr(0, 300)
                                << "; replicas that did not answer: " << missing;
    EXPECT_EQ(h.events, produced.size()) << name(i) << ": an event twice";
    EXPECT_FALSE(h.partial) << name(i);
  }
  // A dry run on one replica runs over every replica's stored events: the peers, which do
  // not hold the bundle, are sent its archive.
  {
    std::string out;
    const std::string server = " --server http://127.0.0.1:" + std::to_string(ports_[0]) +
                               " --token " + kAdminToken + " 2>&1";
    ASSERT_EQ(
        test::run_command(std::string(VIGIL_CLI_PATH) +
                              " bundle push " VIGIL_SOURCE_DIR "/tests/data/bundles/good" + server,
                          &out),
        0)
        << out;
    out.clear();
    ASSERT_EQ(
        test::run_command(
            std::string(VIGIL_CLI_PATH) + " bundle dry-run 2 --since 3650d --json" + server, &out),
        0)
        << out;
    rapidjson::Document dry;
    dry.Parse(out.c_str());
    ASSERT_FALSE(dry.HasParseError()) << out;
    // Each replica counts what it stored (an event two replicas read while the group settled
    // counts twice).
    EXPECT_GE(dry["events"].GetUint64(), produced.size()) << out.substr(0, 2000);
    EXPECT_FALSE(dry["partial"].GetBool());
    ASSERT_EQ(dry["per_replica"].Size(), static_cast<size_t>(kReplicas));
    EXPECT_TRUE(dry["replicas"]["missing"].Empty());
    uint64_t sum = 0;
    for (int i = 0; i < kReplicas; ++i) {
      const auto& r = dry["per_replica"][static_cast<rapidjson::SizeType>(i)];
      const int who = std::stoi(std::string(r["replica"].GetString()).substr(6));
      EXPECT_GE(r["events"].GetUint64(), held[who].size()) << name(who);
      sum += r["events"].GetUint64();
    }
    EXPECT_EQ(dry["events"].GetUint64(), sum);
  }

  // Event statistics count every replica's stored events: the sum of each one's own.
  {
    auto count = [&](int i, const std::string& scope) {
      auto r = api_get(ports_[i], "/api/v1/events/stats?since=3650d&bucket=7d&by=host" + scope);
      rapidjson::Document d;
      d.Parse(r.body.c_str());
      EXPECT_EQ(r.status, 200) << r.body;
      return d.HasParseError() || !d.HasMember("events") ? 0 : d["events"].GetUint64();
    };
    uint64_t sum = 0;
    for (int i = 0; i < kReplicas; ++i) sum += count(i, "&scope=local");
    EXPECT_GE(sum, produced.size());
    EXPECT_EQ(count(1, ""), sum);
    // `top` is checked by the replica asked (the members are asked for every group).
    EXPECT_EQ(api_get(ports_[1], "/api/v1/events/stats?top=abc").status, 400);
    EXPECT_EQ(api_get(ports_[1], "/api/v1/events/stats?top=5000").status, 400);
  }

  // A filtered hunt finds one event wherever it is.
  const Hunt one = hunt(ports_[0], "field=test_id=e2345", 100);
  EXPECT_EQ(one.test_ids, std::set<std::string>{"e2345"});

  // Replica 2 is killed. Hunts name it and are partial; the alert list is still whole.
  procs_[2]->signal(SIGKILL);
  procs_[2]->wait(10s);
  const Hunt without = hunt(ports_[0], "until=2100-01-01T00:00:00Z", 1000);
  EXPECT_TRUE(without.partial);
  ASSERT_FALSE(without.missing.empty());
  EXPECT_EQ(without.missing.front(), name(2));
  EXPECT_EQ(without.test_ids, held_by_survivors);
  auto r = api_get(ports_[1], "/api/v1/stats");
  EXPECT_NE(r.body.find("\"missing\":[{\"peer\":\"" + name(2) + "\""), std::string::npos) << r.body;
  EXPECT_EQ(alert_ids(ports_[1], 1000), reference);

  // Its partitions move to the others (after the session timeout of its static membership);
  // what is produced next is matched there, once, and every replica left lists it.
  ASSERT_TRUE(wait_for(
      [&] {
        auto s = api_get(ports_[0], "/api/v1/stats");
        rapidjson::Document d;
        d.Parse(s.body.c_str());
        return s.status == 200 && events_partitions(d) == 6;
      },
      60s))
      << api_get(ports_[0], "/api/v1/stats").body;
  std::vector<std::string> more = simulated_events(all.size(), 1000, 32);
  kcat_produce(brokers_, more);
  all.insert(all.end(), more.begin(), more.end());
  expected = expected_by_batch_match(all);
  for (int i = 0; i < 2; ++i) ASSERT_NO_FATAL_FAILURE(expect_alerts(i, expected));
  EXPECT_EQ(alert_ids(ports_[0], 1000), alert_ids(ports_[1], 100));

  // Back again on its store: hunts are whole, and it lists every alert it missed meanwhile.
  ASSERT_NO_FATAL_FAILURE(start_replica(2));
  for (size_t i = 0; i < all.size(); ++i) produced.insert("e" + std::to_string(i));
  Hunt back;
  ASSERT_TRUE(wait_for(
      [&] {
        back = hunt(ports_[0], "until=2100-01-01T00:00:00Z", 1000);
        return !back.partial && back.test_ids == produced;
      },
      60s))
      << back.test_ids.size() << " of " << produced.size() << " partial " << back.partial << " "
      << back.status << " " << back.error;
  ASSERT_NO_FATAL_FAILURE(expect_alerts(2, expected));
  EXPECT_EQ(alert_ids(ports_[2], 1000), alert_ids(ports_[0], 1000));
}

// A logon rule (its own alerts too: generate) and two correlations grouped by user, while
// the events are keyed (and partitioned) by host: each user's logons reach every replica, and the
// matches meet in the repartition topic's partition of the user.
constexpr char kLogonRules[] = R"(title: E2E logon
id: 7c1f3a52-0d1e-4b7a-9a51-6f1e2d3c4b5a
name: e2e_logon
status: test
level: low
logsource: {product: linux, category: process_creation}
detection:
  sel:
    Image|endswith: /e2e-logon
  condition: sel
---
title: E2E many logons of one user
id: 0a9d6c1e-52f4-4f0b-8d3e-1c2b3a4d5e6f
status: test
level: high
correlation:
  type: event_count
  rules: [e2e_logon]
  group-by: [User]
  timespan: 1h
  condition: {gte: 4}
  generate: true
---
title: E2E one user on many hosts
id: 5b6c7d8e-9f01-4a2b-8c3d-4e5f6a7b8c9d
status: test
level: high
correlation:
  type: value_count
  rules: [e2e_logon]
  group-by: [User]
  timespan: 1h
  condition: {field: Hostname, gte: 4}
  generate: true
)";

TEST_F(ClusterTest, CorrelationsOfGroupsSpreadOverEveryPartitionFireOnceThroughAKill) {
  Broker broker(6);
  ASSERT_FALSE(broker.bootstrap().empty());
  brokers_ = broker.bootstrap();
  fs::create_directories(dir_ / "corr-rules");
  std::ofstream(dir_ / "corr-rules" / "logons.yml") << kLogonRules;
  extra_args_ = {"--rules", (dir_ / "corr-rules").string()};
  for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(start_replica(i));
  ASSERT_NO_FATAL_FAILURE(wait_every_replica_assigned());

  constexpr int kUsers = 12;
  const TimeMs t0 = SystemClock::instance().now_ms();
  int sent = 0;
  // One logon of every user on each host of [from, to), keyed by host.
  auto logons = [&](int from, int to) {
    const fs::path file = dir_ / "logons.txt";
    std::ofstream out(file);
    for (int h = from; h < to; ++h) {
      for (int u = 0; u < kUsers; ++u) {
        out << "host-" << h << "|{\"@timestamp\":\"" << format_rfc3339(t0 + sent++)
            << "\",\"logsource\":{\"product\":\"linux\",\"category\":\"process_creation\"},"
            << "\"Image\":\"/usr/bin/e2e-logon\",\"User\":\"user-" << u << "\",\"Hostname\":\"host-"
            << h << "\"}\n";
      }
    }
    out.close();
    std::string output;
    const int rc = test::run_command(std::string(KCAT_PATH) + " -P -K '|' -b " + brokers_ +
                                         " -t vigil.events -l " + file.string() + " 2>&1",
                                     &output);
    ASSERT_EQ(rc, 0) << output;
  };
  // The correlation alerts replica i lists: rule id -> count.
  auto correlation_alerts = [&](int i) {
    std::map<std::string, int> n;
    for (const auto& [rule, test_id] : alerts(ports_[i]))
      if (rule != "7c1f3a52-0d1e-4b7a-9a51-6f1e2d3c4b5a") ++n[rule];
    return n;
  };
  const std::map<std::string, int> expected = {{"0a9d6c1e-52f4-4f0b-8d3e-1c2b3a4d5e6f", kUsers},
                                               {"5b6c7d8e-9f01-4a2b-8c3d-4e5f6a7b8c9d", kUsers}};

  // Two logons of every user on two hosts: no group has fired.
  ASSERT_NO_FATAL_FAILURE(logons(0, 2));
  ASSERT_TRUE(
      wait_for([&] { return alerts(ports_[0]).size() >= static_cast<size_t>(2 * kUsers); }, 60s));
  std::this_thread::sleep_for(2s);  // the matches reach their windows
  EXPECT_TRUE(correlation_alerts(0).empty());

  // A replica is killed with its windows; its partitions move to the two others, which
  // rebuild the windows from the repartition topic.
  procs_[2]->signal(SIGKILL);
  procs_[2]->wait(10s);
  ASSERT_TRUE(wait_for(
      [&] {
        auto s = api_get(ports_[0], "/api/v1/stats");
        rapidjson::Document d;
        d.Parse(s.body.c_str());
        return s.status == 200 && events_partitions(d) == 6;
      },
      60s))
      << api_get(ports_[0], "/api/v1/stats").body;
  // Two more hosts each: four logons on four hosts: both correlations fire for every user.
  ASSERT_NO_FATAL_FAILURE(logons(2, 4));
  std::map<std::string, int> got;
  ASSERT_TRUE(wait_for(
      [&] {
        got = correlation_alerts(0);
        return got == expected;
      },
      90s))
      << got.size() << "\n"
      << log(run_of_[0]);

  // Back again (a rebalance): a fifth logon opens new windows, nothing fires twice.
  ASSERT_NO_FATAL_FAILURE(start_replica(2));
  ASSERT_NO_FATAL_FAILURE(logons(4, 5));
  ASSERT_TRUE(wait_for(
      [&] { return alerts(ports_[2]).size() >= static_cast<size_t>(5 * kUsers + 2 * kUsers); },
      90s))
      << alerts(ports_[2]).size() << "\n"
      << log(run_of_[2]);
  std::this_thread::sleep_for(3s);
  for (int i = 0; i < kReplicas; ++i) EXPECT_EQ(correlation_alerts(i), expected) << name(i);
}

}  // namespace
}  // namespace vigil::e2e

namespace vigil::e2e {
namespace {

// Process creations no rule of the "good" bundle matches (the "flood" bundle's rule does).
std::vector<std::string> plain_process_starts(int first, int n) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) {
    out.push_back(
        R"({"@timestamp":")" + now_rfc3339() + R"(","Hostname":"WS-)" + std::to_string(i % 40) +
        R"(","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"test_id":"p)" +
        std::to_string(i) +
        R"(","ParentImage":"C:\\Windows\\explorer.exe","Image":"C:\\Windows\\System32\\notepad.exe","CommandLine":"notepad.exe"})");
  }
  return out;
}

// Republishes a bundle's chunks under another hash with a header claiming it, and writes a
// decision that does not parse: a real, independent Kafka client (kafka-python).
constexpr char kForge[] = R"(import json, sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
brokers, topic, good = sys.argv[1:4]
c = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, consumer_timeout_ms=10000)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek_to_beginning(tp)
end = c.end_offsets([tp])[tp]  # the replicas report every second: read to here, not to idle
header, chunks = None, {}
for m in c:
    k = m.key.decode()
    if k == 'bundle/' + good and m.value:
        header = json.loads(m.value)
    if k.startswith('chunk/' + good + '/'):
        chunks[k.split('/')[2]] = m.value
    if m.offset + 1 >= end:
        break
assert header and chunks, 'the bundle is not on the topic'
fake = 'f' * 32
p = KafkaProducer(bootstrap_servers=brokers)
for n, v in chunks.items():
    p.send(topic, key=('chunk/%s/%s' % (fake, n)).encode(), value=v, partition=0)
header['hash'] = fake
p.send(topic, key=('bundle/' + fake).encode(), value=json.dumps(header).encode(), partition=0)
p.send(topic, key=b'decision', value=b'{"v":1,"seq":', partition=0)
p.flush()
print('forged', len(chunks))
)";

class ClusterContentTest : public ClusterTest {
 protected:
  rapidjson::Document rollout_doc(int i) {
    rapidjson::Document d;
    d.Parse(api_get(ports_[i], "/api/v1/rollout").body.c_str());
    return d;
  }
  // The bundle named `name` stored on replica i: its version, hash and status (0 if none).
  struct Stored {
    uint64_t version = 0;
    std::string hash, status;
  };
  Stored stored(int i, const std::string& name) {
    rapidjson::Document d;
    d.Parse(api_get(ports_[i], "/api/v1/bundles").body.c_str());
    Stored out;
    if (!d.IsObject() || !d.HasMember("bundles")) return out;
    for (const auto& b : d["bundles"].GetArray()) {
      if (std::string(b["name"].GetString()) != name) continue;
      out = {b["version"].GetUint64(), b["hash"].GetString(), b["status"].GetString()};
    }
    return out;
  }
  // Whether replica i follows the deployment's latest decision, idle, with `hash` active and
  // every shard of its own running it.
  bool runs(int i, const std::string& hash) {
    auto d = rollout_doc(i);
    if (!d.IsObject() || !d.HasMember("cluster") || d["cluster"]["decision"].IsNull()) return false;
    const auto& c = d["cluster"];
    const auto& dec = c["decision"];
    if (c["applied"].GetUint64() != dec["seq"].GetUint64()) return false;
    if (std::string(dec["state"].GetString()) != "idle" ||
        std::string(dec["active"]["hash"].GetString()) != hash)
      return false;
    const uint64_t v = dec["active"]["version"].GetUint64();
    if (v == 0 || d["shards"].Empty()) return false;
    for (const auto& s : d["shards"].GetArray())
      if (s["bundle"].GetUint64() != v) return false;
    return true;
  }
  std::string cli(const std::string& args, int i, int* rc) {
    std::string out;
    *rc = test::run_command(std::string(VIGIL_CLI_PATH) + " " + args +
                                " --server http://127.0.0.1:" + std::to_string(ports_[i]) +
                                " --token " + kAdminToken + " 2>&1",
                            &out);
    return out;
  }
  double metric(int i, const std::string& name,
                const std::vector<std::pair<std::string, std::string>>& labels) {
    return test::prometheus_sum(test::http_get("127.0.0.1", ports_[i], "/metrics").body, name,
                                labels);
  }
  std::string state(int i) { return api_get(ports_[i], "/api/v1/rollout").body; }
};

TEST_F(ClusterContentTest, ABundleRollsOutOnEveryReplicaAndAFloodOnTheCanaryRollsBackEverywhere) {
  Broker broker(6);
  ASSERT_FALSE(broker.bootstrap().empty());
  brokers_ = broker.bootstrap();
  config_file();
  // A stage is promoted once its shards of the new bundle saw events (a canary that saw
  // nothing proved nothing): the test streams events while it waits.
  std::ofstream(dir_ / "vigild.yml", std::ios::app)
      << "rollout:\n  stage_duration: 1s\n  min_stage_events: 200\n";
  int sent = 0;
  // Keyed by host, so that they spread over every partition (unkeyed, kcat's producer sticks
  // to one partition per batch).
  auto stream = [&] {
    const fs::path file = dir_ / "stream.txt";
    std::ofstream out(file);
    for (const auto& e : plain_process_starts(sent, 1200))
      out << "WS-" << sent++ % 40 << "|" << e << "\n";
    out.close();
    std::string output;
    ASSERT_EQ(test::run_command(std::string(KCAT_PATH) + " -P -K '|' -b " + brokers_ +
                                    " -t vigil.events -l " + file.string() + " 2>&1",
                                &output),
              0)
        << output;
    std::this_thread::sleep_for(1s);
  };
  policy_ = "staged";
  for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(start_replica(i));
  ASSERT_NO_FATAL_FAILURE(wait_every_replica_assigned());

  // One coordinator; every replica follows its decision.
  ASSERT_TRUE(wait_for(
      [&] {
        int coordinators = 0;
        std::set<std::string> active;
        for (int i = 0; i < kReplicas; ++i) {
          auto d = rollout_doc(i);
          if (!d.IsObject() || !d.HasMember("cluster") || d["cluster"]["decision"].IsNull())
            return false;
          const auto& c = d["cluster"];
          if (c["applied"].GetUint64() != c["decision"]["seq"].GetUint64()) return false;
          coordinators += c["this_replica_coordinates"].GetBool();
          active.insert(c["decision"]["active"]["hash"].GetString());
        }
        return coordinators == 1 && active.size() == 1;
      },
      60s))
      << state(0) << "\n"
      << log(run_of_[0]);

  stream();  // every shard with partitions has consumed something
  // Pushed to vigil-2: every replica stores and validates it; the coordinator rolls it out
  // over the deployment's six shards in stages; it runs on all three.
  int rc = 0;
  std::string out = cli("bundle push " VIGIL_SOURCE_DIR "/tests/data/bundles/good", 2, &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string good = stored(2, "good").hash;
  ASSERT_EQ(good.size(), 32u);
  for (int i = 0; i < kReplicas; ++i) {
    ASSERT_TRUE(wait_for(
        [&] {
          if (runs(i, good)) return true;
          stream();
          return false;
        },
        90s))
        << name(i) << " " << state(i);
  }
  const std::string audit = api_get(ports_[0], "/api/v1/rollout/audit").body;
  EXPECT_NE(audit.find("\"action\":\"completed\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("deployment (coordinator vigil-"), std::string::npos) << audit;

  // A bundle that floods alerts, pushed to one replica: its canary is the deployment's first
  // shard that consumes events, on another replica; the flood there rolls it back on all
  // three.
  std::string canary;
  {
    auto d = rollout_doc(0);
    for (const auto& r : d["cluster"]["replicas"].GetArray())
      for (const auto& sh : r["shards"].GetArray())
        if (canary.empty() && sh["events"].GetUint64() > 0)
          canary = std::string(r["name"].GetString()) + "/" + std::to_string(sh["shard"].GetUint());
  }
  ASSERT_FALSE(canary.empty()) << state(0);
  const int pusher = (std::stoi(canary.substr(6, 1)) + 1) % kReplicas;
  out = cli("bundle push " VIGIL_SOURCE_DIR "/tests/data/bundles/flood", pusher, &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string flood = stored(pusher, "flood").hash;
  ASSERT_TRUE(wait_for(
      [&] {
        auto d = rollout_doc(0);
        return d.IsObject() && d.HasMember("cluster") && !d["cluster"]["decision"].IsNull() &&
               d["cluster"]["decision"]["target"].IsObject() &&
               std::string(d["cluster"]["decision"]["target"]["hash"].GetString()) == flood;
      },
      60s))
      << state(0);
  EXPECT_NE(state(0).find("\"target_shards\":[\"" + canary + "\"]"), std::string::npos)
      << canary << " " << state(0);
  ASSERT_TRUE(wait_for(
      [&] {
        auto d = rollout_doc(1);
        if (d.IsObject() && d.HasMember("cluster") &&
            d["cluster"]["decision"]["rolled_back"].Size() > 0)
          return true;
        stream();
        return false;
      },
      120s))
      << state(1);
  for (int i = 0; i < kReplicas; ++i) {
    ASSERT_TRUE(
        wait_for([&] { return runs(i, good) && stored(i, "flood").status == "rolled_back"; }, 60s))
        << name(i) << " " << state(i);
  }
  EXPECT_NE(state(2).find("alert flood"), std::string::npos) << state(2);

  // Pinned: a bundle an operator starts on vigil-0 runs on the canary; vigil-1 stops during
  // the rollout, the rollout is rolled back from vigil-2, and vigil-1 comes back on what the
  // deployment decided.
  out = cli("rollout policy pinned", 1, &rc);
  ASSERT_EQ(rc, 0) << out;
  fs::copy(VIGIL_SOURCE_DIR "/tests/data/bundles/good", dir_ / "good2",
           fs::copy_options::recursive);
  {
    std::ifstream in(dir_ / "good2" / "manifest.yml");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.replace(text.find("name: good"), 10, "name: good2");
    std::ofstream(dir_ / "good2" / "manifest.yml") << text;
  }
  out = cli("bundle push " + (dir_ / "good2").string(), 0, &rc);
  ASSERT_EQ(rc, 0) << out;
  for (int i = 0; i < kReplicas; ++i)
    ASSERT_TRUE(wait_for([&] { return stored(i, "good2").status == "valid"; }, 60s)) << name(i);
  const Stored good2 = stored(0, "good2");
  out = cli("rollout start " + std::to_string(good2.version), 0, &rc);
  ASSERT_EQ(rc, 0) << out;
  // Its canary runs it (a shard of whichever replica).
  ASSERT_TRUE(wait_for(
      [&] {
        auto d = rollout_doc(0);
        if (!d.IsObject() || !d.HasMember("cluster") || d["cluster"]["decision"].IsNull() ||
            d["cluster"]["decision"]["target_shards"].Size() != 1)
          return false;
        const std::string shard = d["cluster"]["decision"]["target_shards"][0].GetString();
        const int r = std::stoi(shard.substr(6, 1));
        auto local = rollout_doc(r);
        const auto i = static_cast<rapidjson::SizeType>(std::stoi(shard.substr(8)));
        return local.IsObject() && local["shards"].Size() > i &&
               local["shards"][i]["bundle"].GetUint64() == stored(r, "good2").version;
      },
      60s))
      << state(0);
  procs_[1]->signal(SIGTERM);
  ASSERT_TRUE(procs_[1]->wait(30s));
  out = cli("rollout rollback --reason e2e", 2, &rc);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_NO_FATAL_FAILURE(start_replica(1));
  EXPECT_TRUE(wait_for([&] { return runs(1, good); }, 60s)) << state(1);
  EXPECT_EQ(stored(1, "good2").status, "rolled_back");
  EXPECT_TRUE(wait_for([&] { return runs(0, good); }, 60s)) << state(0);

  // A replica that joins on an empty store reads the content first: ready, it runs what the
  // deployment runs and holds every bundle, the rolled back ones as such.
  procs_[2]->signal(SIGTERM);
  ASSERT_TRUE(procs_[2]->wait(30s));
  ASSERT_NO_FATAL_FAILURE(start_replica(2, "data-2-late"));
  // (A wait: the coordinator may decide again meanwhile, and `runs` wants the latest applied.)
  EXPECT_TRUE(wait_for([&] { return runs(2, good); }, 10s)) << state(2);
  // It never ran the bundles the deployment rolled back: its audit has no such transition.
  const std::string late_audit = api_get(ports_[2], "/api/v1/rollout/audit").body;
  EXPECT_EQ(late_audit.find("\"action\":\"started\""), std::string::npos) << late_audit;
  EXPECT_EQ(stored(2, "flood").status, "rolled_back");
  EXPECT_EQ(stored(2, "good2").status, "rolled_back");
  const std::string late_log = log(run_of_[2]);
  const size_t caught = late_log.find("read to its end");
  ASSERT_NE(caught, std::string::npos) << late_log;
  EXPECT_EQ(late_log.find("gate:"), std::string::npos);

  // Bad input from an independent client: a bundle whose content is another's, and a
  // decision that does not parse. Each replica refuses both, says why, keeps its bundle.
  std::ofstream(dir_ / "forge.py") << kForge;
  out.clear();
  ASSERT_EQ(test::run_command("timeout 60 /usr/bin/python3 " + (dir_ / "forge.py").string() + " " +
                                  brokers_ + " vigil.events.content " + good + " 2>&1",
                              &out),
            0)
      << out;
  for (int i = 0; i < kReplicas; ++i) {
    EXPECT_TRUE(wait_for(
        [&] {
          return metric(i, "vigil_content_bundles_refused_total", {{"reason", "hash_mismatch"}}) >=
                     1 &&
                 metric(i, "vigil_content_records_invalid_total", {{"kind", "decision"}}) >= 1;
        },
        30s))
        << name(i) << "\n"
        << test::http_get("127.0.0.1", ports_[i], "/metrics").body.substr(0, 200);
    EXPECT_TRUE(wait_for([&] { return runs(i, good); }, 30s)) << name(i) << " " << state(i);
  }
  EXPECT_NE(log(run_of_[0]).find("not to the hash it was published under"), std::string::npos);
}

}  // namespace
}  // namespace vigil::e2e
