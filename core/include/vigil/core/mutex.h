#pragma once
// A mutex Clang's thread-safety analysis understands, and the annotations that tell it which
// state each mutex guards (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html). Clang
// builds (the fuzz preset) compile every library with -Wthread-safety as an error, so state
// marked VIGIL_GUARDED_BY(mu) touched without mu held fails the build; GCC ignores the
// annotations. libstdc++'s std::mutex carries none, hence this wrapper.
//
//   Mutex mu_;
//   int count_ VIGIL_GUARDED_BY(mu_);
//   void bump() { MutexLock lock(mu_); ++count_; }
//   void bump_locked() VIGIL_REQUIRES(mu_) { ++count_; }
//
// A wait on a condition variable goes through MutexLock (CondVar is
// std::condition_variable_any) in an explicit loop: `while (!ready_) cv_.wait(lock);` (a
// predicate lambda is analysed as a function of its own, which does not hold the lock).

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define VIGIL_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define VIGIL_THREAD_ANNOTATION(x)
#endif

#define VIGIL_CAPABILITY(x) VIGIL_THREAD_ANNOTATION(capability(x))
#define VIGIL_SCOPED_CAPABILITY VIGIL_THREAD_ANNOTATION(scoped_lockable)
#define VIGIL_GUARDED_BY(x) VIGIL_THREAD_ANNOTATION(guarded_by(x))
#define VIGIL_PT_GUARDED_BY(x) VIGIL_THREAD_ANNOTATION(pt_guarded_by(x))
#define VIGIL_REQUIRES(...) VIGIL_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define VIGIL_ACQUIRE(...) VIGIL_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define VIGIL_RELEASE(...) VIGIL_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define VIGIL_TRY_ACQUIRE(...) VIGIL_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define VIGIL_EXCLUDES(...) VIGIL_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define VIGIL_NO_THREAD_SAFETY_ANALYSIS VIGIL_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace vigil {

class VIGIL_CAPABILITY("mutex") Mutex {
 public:
  void lock() VIGIL_ACQUIRE() { mu_.lock(); }
  void unlock() VIGIL_RELEASE() { mu_.unlock(); }
  bool try_lock() VIGIL_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope. unlock() and lock() let a scope let go of it for a while (a
// wait, a slow call); the destructor releases it only if held.
class VIGIL_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) VIGIL_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() VIGIL_RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void lock() VIGIL_ACQUIRE() {
    mu_.lock();
    held_ = true;
  }
  void unlock() VIGIL_RELEASE() {
    held_ = false;
    mu_.unlock();
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

using CondVar = std::condition_variable_any;

}  // namespace vigil
