// Cluster mode end to end: three vigild processes with their own stores in one consumer
// group on a standalone broker (`vigil dev kafka`), judged through each one's API.
//  - every replica answers the alert list with the same alerts, order and cursors (a cursor
//    from one continues on another), exactly the alerts `vigil match` finds;
//  - an event hunt on one replica returns the events the others stored;
//  - a replica killed with SIGKILL: hunts are partial and name it, the alert list stays
//    whole (its alerts were mirrored), its partitions move and the alerts of what follows
//    arrive once; back again, hunts are whole.

#include "cluster_e2e.h"

namespace vigil::e2e {
namespace {

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

// A logon rule (its own alerts too: generate) and four correlations grouped by user, while
// the events are keyed (and partitioned) by host: each user's logons reach every replica, and the
// matches meet in the repartition topic's partition of the user. Sigma 2.1: value_count over a
// list of fields (distinct host and image pairs) and a metric, value_sum, which is judged when
// its window ends; and a chain: a correlation over the first one's alerts, which reach it
// through the repartition topic.
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
name: e2e_many_logons
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
---
title: E2E one user on many host and image pairs
id: 9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a
status: test
level: high
correlation:
  type: value_count
  rules: [e2e_logon]
  group-by: [User]
  timespan: 1h
  condition: {field: [Hostname, Image], gte: 4}
  generate: true
---
title: E2E bytes of one user in ten minutes
id: 2f3e4d5c-6b7a-4891-a0b1-c2d3e4f5a6b7
status: test
level: high
correlation:
  type: value_sum
  rules: [e2e_logon]
  group-by: [User]
  timespan: 10m
  condition: {field: Bytes, gte: 400}
  generate: true
---
title: E2E a chain over the many logons
id: 4c5d6e7f-8091-4a2b-b3c4-d5e6f7a8b9c0
status: test
level: critical
correlation:
  type: event_count
  rules: [e2e_many_logons]
  group-by: [User]
  timespan: 1h
  condition: {gte: 1}
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
  // One logon of every user on each host of [from, to), keyed by host, `later` after t0.
  auto logons = [&](int from, int to, TimeMs later) {
    const fs::path file = dir_ / "logons.txt";
    std::ofstream out(file);
    for (int h = from; h < to; ++h) {
      for (int u = 0; u < kUsers; ++u) {
        out << "host-" << h << "|{\"@timestamp\":\"" << format_rfc3339(t0 + later + sent++)
            << "\",\"logsource\":{\"product\":\"linux\",\"category\":\"process_creation\"},"
            << "\"Image\":\"/usr/bin/e2e-logon\",\"User\":\"user-" << u << "\",\"Hostname\":\"host-"
            << h << "\",\"Bytes\":100}\n";
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
  std::map<std::string, int> expected = {{"0a9d6c1e-52f4-4f0b-8d3e-1c2b3a4d5e6f", kUsers},
                                         {"5b6c7d8e-9f01-4a2b-8c3d-4e5f6a7b8c9d", kUsers},
                                         {"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a", kUsers},
                                         {"4c5d6e7f-8091-4a2b-b3c4-d5e6f7a8b9c0", kUsers}};

  // Two logons of every user on two hosts: no group has fired.
  ASSERT_NO_FATAL_FAILURE(logons(0, 2, 0));
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
  // Two more hosts each: four logons on four hosts: the counts fire for every user; the sums
  // (400 bytes each) wait for their windows' end.
  ASSERT_NO_FATAL_FAILURE(logons(2, 4, 1000));
  std::map<std::string, int> got;
  ASSERT_TRUE(wait_for(
      [&] {
        got = correlation_alerts(0);
        return got == expected;
      },
      90s))
      << got.size() << "\n"
      << log(run_of_[0]);

  // Back again (a rebalance): a fifth logon, eleven minutes later, opens new windows (nothing
  // fires twice) and closes the sums' windows, rebuilt through the kill and both hand-overs:
  // each fires once.
  ASSERT_NO_FATAL_FAILURE(start_replica(2));
  ASSERT_NO_FATAL_FAILURE(logons(4, 5, 11 * 60 * 1000));
  expected["2f3e4d5c-6b7a-4891-a0b1-c2d3e4f5a6b7"] = kUsers;
  ASSERT_TRUE(wait_for(
      [&] { return alerts(ports_[2]).size() >= static_cast<size_t>(5 * kUsers + 5 * kUsers); },
      90s))
      << alerts(ports_[2]).size() << "\n"
      << log(run_of_[2]);
  std::this_thread::sleep_for(3s);
  for (int i = 0; i < kReplicas; ++i) EXPECT_EQ(correlation_alerts(i), expected) << name(i);
}

}  // namespace
}  // namespace vigil::e2e
