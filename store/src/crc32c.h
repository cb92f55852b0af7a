#pragma once
// RocksDB's CRC32C entry point, which store/src/crc32c.cc defines in place of the library's
// (see there). Private to the store and its tests.

#include <cstddef>
#include <cstdint>

// As declared in RocksDB's util/crc32c.h.
namespace rocksdb::crc32c {
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);
}  // namespace rocksdb::crc32c

namespace vigil::store {
using Crc32cExtendFn = uint32_t (*)(uint32_t, const char*, size_t);
// The mangled name librocksdb exports it under.
inline constexpr const char* kRocksDbExtendSymbol = "_ZN7rocksdb6crc32c6ExtendEjPKcm";
}  // namespace vigil::store
