#pragma once
// How many CPUs this process may use: the CPUs it may run on (sched_getaffinity), bounded by
// its cgroup's CPU quota (a Kubernetes CPU limit, `podman run --cpus`), rounded up. A pod
// limited to 2 CPUs on a 64-core node gets 2, not 64.

#include <optional>
#include <string_view>

namespace vigil {

int usable_cpus();

// The CPUs a cgroup v2 `cpu.max` line allows ("200000 100000" -> 2, "150000 100000" -> 2,
// "max 100000" -> nullopt: no quota).
std::optional<int> cpus_from_cpu_max(std::string_view cpu_max);

}  // namespace vigil
