// Alert retention: by age and by size, each alert with its index entries and id, the store
// consistent after (issue: alerts were never deleted).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "vigil/store/store.h"

namespace vigil::store {
namespace {

constexpr TimeMs kBase = 1795539600000;  // 2026-11-24T17:00:00Z
constexpr TimeMs kDay = 24LL * 3600 * 1000;

class AlertRetentionTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open(AlertRetentionOptions retention) {
    StoreOptions o;
    o.path = (tmp_.path() / "data").string();
    o.alert_retention = retention;
    auto s = Store::open(o);
    EXPECT_TRUE(s) << s.status().to_string();
    return s ? std::move(*s) : nullptr;
  }
  // One alert a day for `days` days, rules and hosts alternating, each with a body of 1 KB
  // that does not compress.
  static void fill(Store& store, int days) {
    std::mt19937_64 random(7);
    std::vector<AlertRecord> batch;
    for (int d = 0; d < days; ++d) {
      AlertRecord a;
      a.id = AlertId::derive("events", 0, d, d % 2 ? "rule-odd" : "rule-even");
      a.time = kBase + d * kDay;
      a.rule_id = d % 2 ? "rule-odd" : "rule-even";
      a.host = "host" + std::to_string(d % 3);
      std::string pad;
      for (int i = 0; i < 64; ++i) pad += std::to_string(random());
      a.json = R"({"day":)" + std::to_string(d) + R"(,"pad":")" + pad.substr(0, 1000) + R"("})";
      batch.push_back(std::move(a));
    }
    ASSERT_TRUE(store.put_batch(batch, {}).is_ok());
  }
  test::TempDir tmp_{"alert-retention"};
};

TEST_F(AlertRetentionTest, ByAgeDeletesOldAlertsWithTheirIndexesAndIds) {
  auto store = open({30 * kDay, 0});
  fill(*store, 100);
  const TimeMs now = kBase + 100 * kDay;
  auto r = store->expire_alerts(now);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->alerts_deleted, 70u);  // days 0..69 are older than 30 days at day 100
  EXPECT_EQ(r->oldest_kept, kBase + 70 * kDay);
  EXPECT_EQ(*store->count_alerts(), 30u);
  EXPECT_FALSE(*store->get_alert(AlertId::derive("events", 0, 5, "rule-odd")));
  EXPECT_TRUE(*store->get_alert(AlertId::derive("events", 0, 71, "rule-odd")));
  AlertQuery by_rule;
  by_rule.rule_id = "rule-even";
  by_rule.limit = 1000;
  EXPECT_EQ(store->query_alerts(by_rule)->alerts.size(), 15u);
  AlertQuery by_host;
  by_host.host = "host1";
  by_host.limit = 1000;
  EXPECT_EQ(store->query_alerts(by_host)->alerts.size(), 10u);  // days 70..99 with d % 3 == 1
  auto v = store->verify();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok()) << "dangling " << v->dangling_index << ", missing "
                       << v->alerts_missing_index;
  // A second pass finds nothing more to do.
  EXPECT_EQ(store->expire_alerts(now)->alerts_deleted, 0u);
}

TEST_F(AlertRetentionTest, BySizeDeletesTheOldestUntilUnderTheLimit) {
  uint64_t full = 0;
  {
    auto store = open({});
    fill(*store, 2000);
    ASSERT_TRUE(store->flush().is_ok());
    ASSERT_TRUE(store->compact_all().is_ok());
    full = store->alerts_bytes();
    ASSERT_GT(full, 0u);
  }
  auto store = open({0, full / 2});
  auto r = store->expire_alerts(kBase + 2000 * kDay);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_GT(r->alerts_deleted, 900u);
  EXPECT_LT(r->alerts_deleted, 1100u);
  // The newest are the ones kept.
  EXPECT_TRUE(*store->get_alert(AlertId::derive("events", 0, 1999, "rule-odd")));
  EXPECT_FALSE(*store->get_alert(AlertId::derive("events", 0, 0, "rule-even")));
  // The size is estimated from the average alert on disk (table files have overheads of
  // their own): within a few percent after a pass, under the limit after the next.
  ASSERT_TRUE(store->flush().is_ok());
  ASSERT_TRUE(store->compact_all().is_ok());
  EXPECT_LE(store->alerts_bytes(), full / 2 + full / 20) << "within 5% of the limit";
  ASSERT_TRUE(store->expire_alerts(kBase + 2000 * kDay));
  ASSERT_TRUE(store->flush().is_ok());
  ASSERT_TRUE(store->compact_all().is_ok());
  EXPECT_LE(store->alerts_bytes(), full / 2);
  auto v = store->verify();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok());
}

TEST_F(AlertRetentionTest, NoLimitsDeleteNothing) {
  auto store = open({});
  fill(*store, 10);
  EXPECT_EQ(store->expire_alerts(kBase + 10000 * kDay)->alerts_deleted, 0u);
  EXPECT_EQ(*store->count_alerts(), 10u);
}

}  // namespace
}  // namespace vigil::store
