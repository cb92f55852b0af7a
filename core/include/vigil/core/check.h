#pragma once
// VIGIL_DCHECK(condition): an invariant of vigil's own code, checked wherever it is cheap to
// be wrong (debug, CI, sanitizer and fuzz builds: every preset but `release`, through the
// VIGIL_DCHECKS CMake option) and compiled out of release builds, where it costs nothing.
// A failure prints the condition and its place and aborts: it marks a bug in vigil. Input
// from outside is never checked with it; a bad input gets a Status.

#include <cstdio>
#include <cstdlib>

namespace vigil::detail {

[[noreturn]] inline void dcheck_failed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: VIGIL_DCHECK(%s) failed\n", file, line, condition);
  std::abort();
}

}  // namespace vigil::detail

#if defined(VIGIL_DCHECKS) && VIGIL_DCHECKS
#define VIGIL_DCHECK(condition)       \
  ((condition) ? static_cast<void>(0) \
               : ::vigil::detail::dcheck_failed(#condition, __FILE__, __LINE__))
#else
#define VIGIL_DCHECK(condition) static_cast<void>(sizeof(!(condition)))
#endif
