// The CPUs a cgroup quota allows (core/src/cpus.cc): a Kubernetes CPU limit bounds vigild's
// default worker count.

#include "vigil/core/cpus.h"

#include <gtest/gtest.h>

#include <thread>

namespace vigil {
namespace {

TEST(Cpus, ACgroupQuotaRoundsUpToWholeCpus) {
  EXPECT_EQ(cpus_from_cpu_max("200000 100000\n"), 2);
  EXPECT_EQ(cpus_from_cpu_max("150000 100000"), 2);  // 1.5 CPUs: two workers, each throttled
  EXPECT_EQ(cpus_from_cpu_max("50000 100000"), 1);   // under one CPU: still one
  EXPECT_EQ(cpus_from_cpu_max("max 100000"), std::nullopt);  // no limit
  EXPECT_EQ(cpus_from_cpu_max(""), std::nullopt);
  EXPECT_EQ(cpus_from_cpu_max("garbage"), std::nullopt);
  EXPECT_EQ(cpus_from_cpu_max("-1 100000"), std::nullopt);
}

TEST(Cpus, UsableCpusIsAtLeastOneAndAtMostTheMachine) {
  const int n = usable_cpus();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace
}  // namespace vigil
