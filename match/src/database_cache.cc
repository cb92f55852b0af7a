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
#include <unordered_map>
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
  uint64_t bytes = 0;  // the entries' total, as of the last scan plus what was written since
  DatabaseCacheStats stats;
  // Pattern checks: key -> ('0' as is | '1' prefilter | 'U' unsupported, message).
  bool checks_loaded = false;
  std::unordered_map<std::string, std::pair<char, std::string>> checks;
  int checks_fd = -1;  // appended to, opened at the first new check
};

constexpr char kChecksFile[] = "pattern-checks";
constexpr uint64_t kMaxChecksBytes = 64 << 20;

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

// Removes the least recently used entries past the size bound; returns what is left.
uint64_t prune(const fs::path& dir, uint64_t max_bytes) {
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
  if (total <= max_bytes) return total;
  std::sort(entries.begin(), entries.end());
  for (const auto& [time, entry] : entries) {
    if (total <= max_bytes) break;
    if (fs::remove(entry.first, ec)) total -= entry.second;
  }
  return total;
}

void store(const fs::path& dir, const fs::path& path, const std::string& key,
           const hs_database_t* db) {
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
  // The directory is scanned only when the running total passes the bound.
  Config& c = config();
  std::lock_guard lock(c.mu);
  c.bytes += data.size();
  if (c.bytes > c.max_bytes) c.bytes = prune(dir, c.max_bytes);
}

// Looks `kb`'s key up; on a miss runs `compile` and stores its database.
template <typename Compile>
hs_error_t through_cache(KeyBuilder& kb, hs_database_t** db, Compile&& compile) {
  Config& c = config();
  std::string dir;
  {
    std::lock_guard lock(c.mu);
    dir = c.dir;
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
  if (e == HS_SUCCESS && *db) store(dir, path, key, *db);
  return e;
}

std::string escape_line(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string unescape_line(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[i + 1] == 'n' ? '\n' : s[i + 1];
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string hex64(uint64_t v) {
  std::string b;
  for (int i = 7; i >= 0; --i) b += static_cast<char>((v >> (i * 8)) & 0xff);
  return hex(b);
}

// Reads the remembered checks (c.mu held): "<key hex> <r> <message> <checksum hex>" lines.
void load_checks_locked(Config& c) {
  c.checks_loaded = true;
  const fs::path path = fs::path(c.dir) / kChecksFile;
  std::error_code ec;
  if (fs::file_size(path, ec) > kMaxChecksBytes && !ec) {
    fs::remove(path, ec);  // bounded: made again as rules need them
    return;
  }
  std::ifstream in(path, std::ios::binary);
  std::string line;
  size_t bad = 0;
  while (std::getline(in, line)) {
    const size_t last = line.rfind(' ');
    if (line.size() < 32 + 3 + 17 || last == std::string::npos || line[32] != ' ' ||
        line[34] != ' ' || hex64(XXH3_64bits(line.data(), last)) != line.substr(last + 1)) {
      ++bad;
      continue;
    }
    c.checks[line.substr(0, 32)] = {line[33], unescape_line(line.substr(35, last - 35))};
  }
  if (bad)
    spdlog::warn("rule cache: {} damaged line(s) of {} ignored: those checks are made again", bad,
                 path.string());
}

}  // namespace

Expected<bool> DatabaseCache::check_pattern(const std::string& regex, unsigned flags,
                                            const std::function<Expected<bool>()>& check) {
  Config& c = config();
  std::string dir;
  {
    std::lock_guard lock(c.mu);
    dir = c.dir;
  }
  if (dir.empty()) return check();
  KeyBuilder kb('c', 0, 1);
  kb.add_u64(regex.size());
  kb.add(regex.data(), regex.size());
  kb.add_u64(flags);
  const std::string key = hex(kb.key());
  {
    std::lock_guard lock(c.mu);
    if (!c.checks_loaded && c.dir == dir) load_checks_locked(c);
    if (auto it = c.checks.find(key); it != c.checks.end()) {
      ++c.stats.checks_remembered;
      if (it->second.first == 'U') return Status::unsupported(it->second.second);
      return it->second.first == '1';
    }
  }
  Expected<bool> result = check();
  char r = 0;
  std::string message;
  if (result) {
    r = *result ? '1' : '0';
  } else if (result.status().code() == Code::kUnsupported) {
    r = 'U';
    message = result.status().message();
  }
  std::lock_guard lock(c.mu);
  ++c.stats.checks_made;
  if (r == 0 || c.dir != dir) return result;
  c.checks[key] = {r, message};
  std::string line = key + ' ' + r + ' ' + escape_line(message);
  line += ' ' + hex64(XXH3_64bits(line.data(), line.size())) + '\n';
  // One write per line with O_APPEND: lines of processes writing at once do not interleave.
  if (c.checks_fd < 0)
    c.checks_fd = ::open((fs::path(dir) / kChecksFile).c_str(),
                         O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (c.checks_fd >= 0) (void)!::write(c.checks_fd, line.data(), line.size());
  return result;
}

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
  c.bytes = dir.empty() ? 0 : prune(dir, max_bytes);
  c.checks_loaded = false;
  c.checks.clear();
  if (c.checks_fd >= 0) ::close(c.checks_fd);
  c.checks_fd = -1;
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
