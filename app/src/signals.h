#pragma once
// SIGINT and SIGTERM for sigwait(): blocked in the calling thread (and so in every thread it
// starts afterwards), returned as the set to wait on. Shared by vigild and `vigil`.

#include <pthread.h>
#include <signal.h>

namespace vigil::app {

inline sigset_t block_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace vigil::app
