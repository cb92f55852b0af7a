#include "vigil/core/allocator.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#include <unistd.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define VIGIL_SANITIZED_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define VIGIL_SANITIZED_ALLOCATOR 1
#endif
#endif

namespace vigil {

void adopt_allocator_settings(char** argv) {
#if defined(__GLIBC__) && !defined(VIGIL_SANITIZED_ALLOCATOR)
  const char* opt = std::getenv("VIGIL_ALLOCATOR_TUNING");
  if (opt != nullptr && std::strcmp(opt, "0") == 0) return;
  if (std::getenv("GLIBC_TUNABLES") != nullptr) return;
  // The marker stops a loop should the tunables be stripped from the new environment.
  // The program's own path, not /proc/self/exe, so that the process keeps its name.
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (std::getenv("VIGIL_ALLOCATOR_REEXEC") == nullptr && argv != nullptr && argv[0] != nullptr &&
      n > 0 && static_cast<size_t>(n) < sizeof self - 1) {
    self[n] = '\0';
    if (setenv("GLIBC_TUNABLES", kAllocatorTunables, 1) == 0 &&
        setenv("VIGIL_ALLOCATOR_REEXEC", "1", 1) == 0) {
      execv(self, argv);
    }
    unsetenv("GLIBC_TUNABLES");  // exec failed: go on in this process
  }
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
#else
  (void)argv;
#endif
}

}  // namespace vigil
