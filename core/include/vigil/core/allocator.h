#pragma once
// Process-wide settings of glibc's allocator for vigil's long-running, allocation-heavy
// processes (vigild, the macro benches).
//
// Why: on virtual machines a page fault is expensive (about 13 µs of CPU each measured on
// the development VM), and with glibc's defaults a busy pipeline faults about once per three
// events: RocksDB's memtables and WriteBatches, librdkafka's fetch buffers and prefetch queue
// are fresh memory, touched 4 KB at a time, and glibc gives memory of its per-thread arenas
// back to the kernel (and faults it in again) as soon as a heap empties. The settings put every
// thread on the main arena (arena_max=1), ask for transparent huge pages on it (hugetlb=1: a
// fault covers 2 MB) and keep freed memory there for reuse (mmap threshold 32 MB, trim threshold
// 128 MB). Measured with the pipeline bench (docs/perf-log.md): page faults per event 0.3 -> 0,
// process CPU per event about halved.
// The price: one arena lock for every thread (glibc's per-thread caches take most small
// allocations without it; on many cores an operator may prefer more arenas, by setting
// GLIBC_TUNABLES), and a heap that does not shrink below its peak by more than the trim
// threshold.
// Thread safety: call once, first thing in main(), before any thread starts.

namespace vigil {

// The GLIBC_TUNABLES value vigil runs with.
inline constexpr const char* kAllocatorTunables =
    "glibc.malloc.arena_max=1:glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:"
    "glibc.malloc.trim_threshold=134217728";

// glibc reads its tunables only at start-up, so unless GLIBC_TUNABLES is already set (an
// operator's own choice, left alone) or VIGIL_ALLOCATOR_TUNING=0, this sets it and
// re-executes the program with the same arguments (same pid); it returns only in the
// re-executed process, or if the re-execution failed, in which case the thresholds are set
// in place with mallopt (without huge pages). Does nothing in sanitizer builds and off glibc.
void adopt_allocator_settings(char** argv);

}  // namespace vigil
