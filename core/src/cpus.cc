#include "vigil/core/cpus.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <string>
#include <thread>

namespace vigil {

namespace {

std::optional<long long> to_number(std::string_view s) {
  long long v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int> cpus_from_quota(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<int>(std::max(1LL, (quota + period - 1) / period));
}

std::string read_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

std::optional<int> cpus_from_cpu_max(std::string_view cpu_max) {
  while (!cpu_max.empty() && (cpu_max.back() == '\n' || cpu_max.back() == ' '))
    cpu_max.remove_suffix(1);
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto quota = to_number(cpu_max.substr(0, space));  // "max": no quota
  const auto period = to_number(cpu_max.substr(space + 1));
  if (!quota || !period) return std::nullopt;
  return cpus_from_quota(*quota, *period);
}

int usable_cpus() {
  int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  // cgroup v2, then v1.
  std::optional<int> quota = cpus_from_cpu_max(read_line("/sys/fs/cgroup/cpu.max"));
  if (!quota) {
    const auto q = to_number(read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"));
    const auto p = to_number(read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
    if (q && p) quota = cpus_from_quota(*q, *p);
  }
  return quota ? std::min(cpus, *quota) : cpus;
}

}  // namespace vigil
