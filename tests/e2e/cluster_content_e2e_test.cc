// Cluster mode end to end, rule content: a bundle pushed to one of three vigild processes rolls
// out over the deployment's shards on all of them; a flood on a canary of another replica rolls
// back everywhere; a replica stopped during a rollout comes back on what the deployment decided;
// one joining on an empty store reads the content first; records forged by an independent client
// are refused and counted.

#include "cluster_e2e.h"

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
