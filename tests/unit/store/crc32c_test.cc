// The CRC32C vigil hands RocksDB (store/src/crc32c.cc) in place of the library's own.
#include "crc32c.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "vigil/store/store.h"

namespace vigil::store {
namespace {

using ExtendFn = Crc32cExtendFn;

TEST(Crc32c, IsTheCastagnoliCrcOfRfc3720) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c_extend(0, digits.data(), digits.size()), 0xe3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(crc32c_extend(0, zeros.data(), zeros.size()), 0x8a9136aau);
  EXPECT_EQ(crc32c_extend(0, ones.data(), ones.size()), 0x62a8ab43u);
  std::string ascending(32, '\0');
  for (size_t i = 0; i < ascending.size(); ++i) ascending[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c_extend(0, ascending.data(), ascending.size()), 0x46dd794eu);
  // Extending is continuing: the CRC of a whole is the CRC of its tail from its head's.
  const uint32_t head = crc32c_extend(0, digits.data(), 4);
  EXPECT_EQ(crc32c_extend(head, digits.data() + 4, digits.size() - 4), 0xe3069283u);
  EXPECT_EQ(crc32c_extend(0x1234u, digits.data(), 0), 0x1234u);
}

TEST(Crc32c, UsesTheInstructionWhereTheCpuHasIt) {
  if (__builtin_cpu_supports("sse4.2")) {
    EXPECT_EQ(crc32c_implementation(), "sse4.2");
  } else {
    EXPECT_NE(crc32c_implementation(), "sse4.2");
  }
}

// The symbol RocksDB's own calls are bound to is vigil's (they go through the PLT), and it
// computes exactly what the library's definition computes.
TEST(Crc32c, RocksDbCallsReachItAndItAgreesWithRocksDbsOwn) {
  EXPECT_EQ(reinterpret_cast<ExtendFn>(dlsym(RTLD_DEFAULT, kRocksDbExtendSymbol)),
            &rocksdb::crc32c::Extend);
  const auto theirs = reinterpret_cast<ExtendFn>(dlsym(RTLD_NEXT, kRocksDbExtendSymbol));
  ASSERT_NE(theirs, nullptr) << "librocksdb no longer exports crc32c::Extend";
  ASSERT_NE(theirs, &rocksdb::crc32c::Extend);
  std::mt19937_64 rng(7);
  std::string buf(70000, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (int i = 0; i < 2000; ++i) {
    const size_t offset = rng() % 64, n = rng() % (i < 1000 ? 300 : buf.size() - 64);
    const auto init = static_cast<uint32_t>(rng());
    ASSERT_EQ(rocksdb::crc32c::Extend(init, buf.data() + offset, n),
              theirs(init, buf.data() + offset, n))
        << "offset " << offset << " length " << n;
  }
}

}  // namespace
}  // namespace vigil::store
