// ThreadSanitizer builds only: C11 threads that TSan can see.
//
// librdkafka starts its threads with C11 thrd_create. glibc implements it by calling its
// internal pthread_create directly, past TSan's interceptor, so TSan never sets those threads
// up and they crash in its allocator at their first malloc. Defined in the test executable,
// these take precedence over glibc's for librdkafka (the executable is searched first) and go
// through the intercepted pthread functions. librdkafka's locks (mtx_*, cnd_*) stay glibc's:
// librdkafka is not instrumented, so TSan checks only vigil's own accesses.
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>

namespace {

struct Start {
  thrd_start_t func;
  void* arg;
};

void* run(void* p) {
  const Start start = *static_cast<Start*>(p);
  delete static_cast<Start*>(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

}  // namespace

extern "C" int thrd_create(thrd_t* thread, thrd_start_t func, void* arg) {
  auto* start = new Start{func, arg};
  const int rc = pthread_create(thread, nullptr, run, start);
  if (rc == 0) return thrd_success;
  delete start;
  return rc == EAGAIN ? thrd_nomem : thrd_error;
}

extern "C" int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  if (pthread_join(thread, &value) != 0) return thrd_error;
  if (result != nullptr) *result = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return thrd_success;
}

extern "C" int thrd_detach(thrd_t thread) {
  return pthread_detach(thread) == 0 ? thrd_success : thrd_error;
}
