#pragma once
// Names the calling thread as `top -H`, perf and /proc/<pid>/task/*/comm show it (Linux keeps
// 15 bytes; longer names are cut). vigil's threads are named "vigil:<role>", beside
// librdkafka's "rdk:*" and RocksDB's "rocksdb:*".

#include <string_view>

namespace vigil {

void set_thread_name(std::string_view name);

}  // namespace vigil
