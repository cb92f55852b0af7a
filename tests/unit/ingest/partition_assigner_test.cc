#include "vigil/ingest/partition_assigner.h"

#include <gtest/gtest.h>

namespace vigil::ingest {
namespace {

TEST(PartitionAssigner, SpreadsPartitionsEvenlyAndKeepsThemWhereTheyAre) {
  PartitionAssigner a(3);
  for (int p = 0; p < 8; ++p) a.assign("t", p);
  EXPECT_EQ(a.load(0), 3u);
  EXPECT_EQ(a.load(1), 3u);
  EXPECT_EQ(a.load(2), 2u);
  // Round robin by load, lowest index first on a tie.
  EXPECT_EQ(a.owner("t", 0), 0);
  EXPECT_EQ(a.owner("t", 1), 1);
  EXPECT_EQ(a.owner("t", 2), 2);
  EXPECT_EQ(a.owner("t", 3), 0);
  // Assigning again is idempotent.
  EXPECT_EQ(a.assign("t", 4), 1);
  EXPECT_EQ(a.load(1), 3u);

  // A cooperative rebalance takes some partitions away: the others stay put, and new ones
  // fill the emptiest worker.
  EXPECT_EQ(a.release("t", 0), 0);
  EXPECT_EQ(a.release("t", 3), 0);
  EXPECT_FALSE(a.release("t", 3));
  EXPECT_EQ(a.owner("t", 1), 1);
  EXPECT_EQ(a.owner("t", 2), 2);
  EXPECT_EQ(a.load(0), 1u);
  EXPECT_EQ(a.assign("u", 0), 0);
  EXPECT_EQ(a.assign("u", 1), 0);
  EXPECT_EQ(a.assign("u", 2), 2);
  const auto of0 = a.partitions_of(0);
  ASSERT_EQ(of0.size(), 3u);
  EXPECT_EQ(of0[0], std::make_pair(std::string("t"), 6));
  EXPECT_EQ(of0[1], std::make_pair(std::string("u"), 0));
  EXPECT_FALSE(a.owner("t", 99));
}

TEST(PartitionAssigner, OneWorkerOwnsEverything) {
  PartitionAssigner a(0);  // at least one worker
  EXPECT_EQ(a.workers(), 1);
  for (int p = 0; p < 5; ++p) EXPECT_EQ(a.assign("t", p), 0);
  EXPECT_EQ(a.load(0), 5u);
}

}  // namespace
}  // namespace vigil::ingest
