#pragma once
// Test-only fault injection points. In a build with VIGIL_FAULT_INJECTION (the test
// builds: ci, asan, debug) a point is armed by the environment variable VIGIL_FAULTS
// ("point=subject,point=subject") read at the first check, or by set_faults() in-process;
// in other builds (release: what `make run` and the Helm image run) fault_armed() is a
// constant false and the points compile to nothing.
//
// Points used:
//   crash_after_activate=<bundle name>  a worker aborts the process as it starts running
//                                       the bundle (the crash-loop guard's test)
//   match_error=<bundle name>           matching fails for every event under the bundle
//                                       (the rollout error gate's test)
//   slow_batch=<bundle name>            every batch under the bundle takes 30 ms longer
//                                       (the rollout latency gate's test)
//
// Thread safety: fault_armed() may be called from any thread; set_faults() only while no
// other thread checks a point.

#include <string>
#include <string_view>

namespace vigil {

#ifdef VIGIL_FAULT_INJECTION
bool fault_armed(std::string_view point, std::string_view subject);
void set_faults(const std::string& spec);
#else
inline constexpr bool fault_armed(std::string_view, std::string_view) { return false; }
inline void set_faults(const std::string&) {}
#endif

}  // namespace vigil
