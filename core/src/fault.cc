#include "vigil/core/fault.h"

#ifdef VIGIL_FAULT_INJECTION
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

namespace vigil {
namespace {

std::once_flag g_once;
std::vector<std::pair<std::string, std::string>> g_faults;

void parse(const std::string& spec) {
  g_faults.clear();
  size_t i = 0;
  while (i < spec.size()) {
    size_t j = spec.find(',', i);
    if (j == std::string::npos) j = spec.size();
    const std::string item = spec.substr(i, j - i);
    const size_t eq = item.find('=');
    if (eq != std::string::npos) g_faults.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    i = j + 1;
  }
}

}  // namespace

bool fault_armed(std::string_view point, std::string_view subject) {
  std::call_once(g_once, [] {
    if (const char* env = std::getenv("VIGIL_FAULTS")) parse(env);
  });
  for (const auto& [p, s] : g_faults) {
    if (p == point && s == subject) return true;
  }
  return false;
}

void set_faults(const std::string& spec) {
  std::call_once(g_once, [] {});
  parse(spec);
}

}  // namespace vigil
#endif
