// RocksDB's CRC32C on the CPU's crc32 instruction.
//
// RocksDB checksums every write-ahead-log record with CRC32C (`rocksdb::crc32c::Extend`), on
// the ingest workers' threads. Debian's librocksdb is built portable, without SSE4.2, so its
// Extend is the table-driven fallback (about a byte per cycle): in a profile of the pipeline
// bench it was about a quarter of a shard worker's time. The library exports Extend and calls
// it through its PLT, so the definition below, linked into the executable, is the one those
// calls reach (ELF symbol interposition, as with malloc). It computes the same CRC32C
// (Castagnoli, RFC 3720) with `crc32` instructions, 8 bytes at a time.
//
// It is used only after it agreed with RocksDB's own Extend (found with dlsym(RTLD_NEXT))
// on a set of inputs, on a CPU with SSE4.2; otherwise every call goes to RocksDB's. Stores
// written either way are the same bytes.

#include "crc32c.h"

#include <dlfcn.h>

#include <cstdint>
#include <cstring>

#include "vigil/store/store.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace vigil::store {
namespace {

using ExtendFn = Crc32cExtendFn;

// Bitwise CRC32C: the last resort when neither the instruction nor RocksDB's own is there.
uint32_t extend_bitwise(uint32_t crc, const char* data, size_t n) {
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) {
    c ^= static_cast<uint8_t>(data[i]);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
  }
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t extend_sse42(uint32_t crc, const char* data, size_t n) {
  uint64_t c = ~crc;
  for (; n >= 8; n -= 8, data += 8) {
    uint64_t word;
    std::memcpy(&word, data, sizeof word);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++data) c32 = _mm_crc32_u8(c32, static_cast<uint8_t>(*data));
  return ~c32;
}
#endif

// RocksDB's Extend when this process has one to defer to, else null (never ourselves).
ExtendFn rocksdb_extend() {
  const auto found = reinterpret_cast<ExtendFn>(dlsym(RTLD_NEXT, kRocksDbExtendSymbol));
  return found == &rocksdb::crc32c::Extend ? nullptr : found;
}

// Whether `fn` computes what `reference` computes, for every length up to 300 bytes at every
// alignment up to 8 and from several initial values.
bool agrees(ExtendFn fn, ExtendFn reference) {
  char buf[320];
  uint32_t x = 0x9e3779b9u;
  for (char& b : buf) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<char>(x >> 24);
  }
  for (const uint32_t init : {0u, 0xffffffffu, 0x12345678u}) {
    for (size_t offset = 0; offset < 8; ++offset) {
      for (size_t n = 0; n <= 300; ++n) {
        if (fn(init, buf + offset, n) != reference(init, buf + offset, n)) return false;
      }
    }
  }
  return true;
}

struct Choice {
  ExtendFn fn;
  const char* name;
};

Choice choose() {
  const ExtendFn theirs = rocksdb_extend();
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2") && agrees(extend_sse42, theirs ? theirs : extend_bitwise)) {
    return {extend_sse42, "sse4.2"};
  }
#endif
  if (theirs != nullptr) return {theirs, "rocksdb"};
  return {extend_bitwise, "bitwise"};
}

const Choice& chosen() {
  static const Choice choice = choose();
  return choice;
}

}  // namespace

std::string_view crc32c_implementation() { return chosen().name; }

uint32_t crc32c_extend(uint32_t crc, const char* data, size_t n) {
  return chosen().fn(crc, data, n);
}

}  // namespace vigil::store

// The interposed definition (see the top of this file): same signature as RocksDB's
// util/crc32c.h, `uint32_t Extend(uint32_t init_crc, const char* data, size_t n)`.
namespace rocksdb::crc32c {
uint32_t Extend(uint32_t init_crc, const char* data, size_t n) {
  return vigil::store::crc32c_extend(init_crc, data, n);
}
}  // namespace rocksdb::crc32c
