#include "vigil/match/database_cache.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

namespace vigil::match {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[4] = {'V', 'G', 'H', 'S'};
constexpr uint32_t kFormat = 1;
constexpr size_t kHeader = 4 + 4 + 16 + 8 + 8;  // magic, format, key, size, checksum

struct Config {
  std::mutex mu;
  std::string dir;
  uint64_t max_bytes = 0;
  DatabaseCacheStats stats;
};

Config& config() {
  static Config c;
  return c;
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
uint64_t get_u64(const char* p, int bytes = 8) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// What a database is made of, hashed: see the header.
class KeyBuilder {
 public:
  KeyBuilder(char kind, unsigned mode, unsigned count) : state_(XXH3_createState()) {
    XXH3_128bits_reset(state_);
    static const std::string environment = [] {
      std::string e = "vigil-hsdb-" + std::to_string(kFormat) + '\0' + hs_version() + '\0';
      hs_platform_info_t platform{};
      if (hs_populate_platform(&platform) == HS_SUCCESS) {
        put_u32(e, platform.tune);
        put_u64(e, platform.cpu_features);
      }
      return e;
    }();
    add(environment.data(), environment.size());
    add(&kind, 1);
    add_u64(mode);
    add_u64(count);
  }
  ~KeyBuilder() { XXH3_freeState(state_); }
  KeyBuilder(const KeyBuilder&) = delete;
  KeyBuilder& operator=(const KeyBuilder&) = delete;
  void add(const void* p, size_t n) { XXH3_128bits_update(state_, p, n); }
  void add_u64(uint64_t v) {
    std::string s;
    put_u64(s, v);
    add(s.data(), s.size());
  }
  std::string key() {
    const XXH128_hash_t h = XXH3_128bits_digest(state_);
    std::string k;
    put_u64(k, h.low64);
    put_u64(k, h.high64);
    return k;
  }

 private:
  XXH3_state_t* state_;
};

std::string hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Loads the entry of `key`: nullptr if there is none or it is not trusted (then logged).
hs_database_t* load(const fs::path& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  std::string data((std::istreambuf_iterator<char>(in)), {});
  const char* why = nullptr;
  hs_database_t* db = nullptr;
  if (data.size() < kHeader || std::memcmp(data.data(), kMagic, 4) != 0) {
    why = "not a vigil rule cache entry";
  } else if (get_u64(data.data() + 4, 4) != kFormat) {
    why = "another cache format";
  } else if (data.compare(8, 16, key) != 0) {
    why = "made for other patterns";
  } else if (get_u64(data.data() + 24) != data.size() - kHeader) {
    why = "truncated";
  } else if (XXH3_64bits(data.data() + kHeader, data.size() - kHeader) !=
             get_u64(data.data() + 32)) {
    why = "checksum mismatch";
  } else if (hs_deserialize_database(data.data() + kHeader, data.size() - kHeader, &db) !=
             HS_SUCCESS) {
    db = nullptr;
    why = "Hyperscan refused it";
  }
  if (why) {
    spdlog::warn("rule cache entry {} ignored ({}): compiled again", path.string(), why);
    Config& c = config();
    std::lock_guard lock(c.mu);
    ++c.stats.rejected;
    return nullptr;
  }
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // its last use, for the size bound
  return db;
}

// Removes the least recently used entries past the size bound.
void prune(const fs::path& dir, uint64_t max_bytes) {
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, std::pair<fs::path, uint64_t>>> entries;
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".hsdb") continue;
    const uint64_t size = e.file_size(ec);
    if (ec) continue;
    total += size;
    entries.push_back({e.last_write_time(ec), {e.path(), size}});
  }
  if (total <= max_bytes) return;
  std::sort(entries.begin(), entries.end());
  for (const auto& [time, entry] : entries) {
    if (total <= max_bytes) break;
    if (fs::remove(entry.first, ec)) total -= entry.second;
  }
}

void store(const fs::path& dir, const fs::path& path, const std::string& key,
           const hs_database_t* db, uint64_t max_bytes) {
  char* bytes = nullptr;
  size_t length = 0;
  if (hs_serialize_database(db, &bytes, &length) != HS_SUCCESS) return;
  std::string data(kMagic, 4);
  put_u32(data, kFormat);
  data += key;
  put_u64(data, length);
  put_u64(data, XXH3_64bits(bytes, length));
  data.append(bytes, length);
  std::free(bytes);
  static std::atomic<uint64_t> seq{0};
  const fs::path tmp =
      path.string() + ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(seq.fetch_add(1));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      spdlog::warn("rule cache: cannot write {} (the rules still run, compiled)", tmp.string());
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return;
  }
  prune(dir, max_bytes);
}

// Looks `kb`'s key up; on a miss runs `compile` and stores its database.
template <typename Compile>
hs_error_t through_cache(KeyBuilder& kb, hs_database_t** db, Compile&& compile) {
  Config& c = config();
  std::string dir;
  uint64_t max_bytes = 0;
  {
    std::lock_guard lock(c.mu);
    dir = c.dir;
    max_bytes = c.max_bytes;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (dir.empty()) {
    const hs_error_t e = compile();
    std::lock_guard lock(c.mu);
    c.stats.compile_seconds += seconds_since(t0);
    ++c.stats.misses;
    return e;
  }
  const std::string key = kb.key();
  const fs::path path = fs::path(dir) / (hex(key) + ".hsdb");
  if (hs_database_t* cached = load(path, key)) {
    *db = cached;
    std::lock_guard lock(c.mu);
    c.stats.load_seconds += seconds_since(t0);
    ++c.stats.hits;
    return HS_SUCCESS;
  }
  const auto t1 = std::chrono::steady_clock::now();
  const hs_error_t e = compile();
  {
    std::lock_guard lock(c.mu);
    c.stats.compile_seconds += seconds_since(t1);
    ++c.stats.misses;
  }
  if (e == HS_SUCCESS && *db) store(dir, path, key, *db, max_bytes);
  return e;
}

}  // namespace

Status DatabaseCache::configure(const std::string& dir, uint64_t max_bytes) {
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      return Status::invalid("rule cache directory '" + dir +
                             "': " + (ec ? ec.message() : std::string("not a directory")));
  }
  Config& c = config();
  std::lock_guard lock(c.mu);
  c.dir = dir;
  c.max_bytes = max_bytes;
  return Status::ok();
}

std::string DatabaseCache::directory() {
  Config& c = config();
  std::lock_guard lock(c.mu);
  return c.dir;
}

DatabaseCacheStats DatabaseCache::stats() {
  Config& c = config();
  std::lock_guard lock(c.mu);
  return c.stats;
}

void DatabaseCache::reset_stats() {
  Config& c = config();
  std::lock_guard lock(c.mu);
  c.stats = {};
}

hs_error_t DatabaseCache::compile_multi(const char* const* expressions, const unsigned* flags,
                                        const unsigned* ids, unsigned count, unsigned mode,
                                        hs_database_t** db, hs_compile_error_t** err) {
  KeyBuilder kb('r', mode, count);
  for (unsigned i = 0; i < count; ++i) {
    kb.add_u64(std::strlen(expressions[i]));
    kb.add(expressions[i], std::strlen(expressions[i]));
    kb.add_u64(flags[i]);
    kb.add_u64(ids ? ids[i] : 0);
  }
  return through_cache(kb, db, [&] {
    return hs_compile_multi(expressions, flags, ids, count, mode, nullptr, db, err);
  });
}

hs_error_t DatabaseCache::compile_lit_multi(const char* const* expressions, const unsigned* flags,
                                            const unsigned* ids, const size_t* lengths,
                                            unsigned count, unsigned mode, hs_database_t** db,
                                            hs_compile_error_t** err) {
  KeyBuilder kb('l', mode, count);
  for (unsigned i = 0; i < count; ++i) {
    kb.add_u64(lengths[i]);
    kb.add(expressions[i], lengths[i]);
    kb.add_u64(flags[i]);
    kb.add_u64(ids ? ids[i] : 0);
  }
  return through_cache(kb, db, [&] {
    return hs_compile_lit_multi(expressions, flags, ids, lengths, count, mode, nullptr, db, err);
  });
}

hs_error_t DatabaseCache::compile(const char* expression, unsigned flags, unsigned mode,
                                  hs_database_t** db, hs_compile_error_t** err) {
  KeyBuilder kb('s', mode, 1);
  kb.add_u64(std::strlen(expression));
  kb.add(expression, std::strlen(expression));
  kb.add_u64(flags);
  return through_cache(kb, db,
                       [&] { return hs_compile(expression, flags, mode, nullptr, db, err); });
}

}  // namespace vigil::match
