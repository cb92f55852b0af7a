#pragma once
// A disk cache of compiled Hyperscan databases: a rule set's databases are compiled once,
// then loaded (hs_deserialize_database) at every later start, `vigil match` and `rules
// check` run, and bundle switch that needs the same ones. Compiling the whole SigmaHQ tree
// takes seconds of CPU; loading its databases takes milliseconds.
//
// Entries are content-addressed: the key hashes (XXH3-128) everything the database is made
// of (each expression's bytes, flags and id, the literal or regex API, the mode), the
// Hyperscan version, the CPU features and tuning it compiles for, and the cache's format.
// Two bundles sharing a field's patterns share its entry. An entry is trusted only when its
// header, key and checksum (XXH3-64 of the serialized bytes) agree and Hyperscan accepts it;
// otherwise it is logged, ignored and rebuilt (written again, atomically: a temporary file,
// then a rename). The cache is bounded: past max_bytes the least recently used entries are
// removed (an entry's modification time is its last use).
//
// Pattern checks (check_pattern) are remembered the same way, in one file of lines.
//
// Off until configure() names a directory (vigild: <data_dir>/rule-cache; the vigil tool:
// $VIGIL_RULE_CACHE, else $XDG_CACHE_HOME/vigil, else ~/.cache/vigil). Thread-safe.

#include <hs/hs.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "vigil/core/status.h"

namespace vigil::match {

struct DatabaseCacheStats {
  uint64_t hits = 0;      // databases loaded from the cache
  uint64_t misses = 0;    // compiled (then written)
  uint64_t rejected = 0;  // entries found but not trusted (damaged, foreign): rebuilt
  double load_seconds = 0;
  double compile_seconds = 0;
  uint64_t checks_remembered = 0;  // pattern checks (hs_expression_info) answered from the cache
  uint64_t checks_made = 0;
};

class DatabaseCache {
 public:
  // Turns the cache on in `dir` (created if missing); "" turns it off.
  static Status configure(const std::string& dir, uint64_t max_bytes = 1ull << 30);
  static std::string directory();
  // Process-wide totals since start (or reset()).
  static DatabaseCacheStats stats();
  static void reset_stats();

  // hs_compile_multi, hs_compile_lit_multi and hs_compile, through the cache. Same contracts
  // (on failure *err is set and must be freed by the caller).
  static hs_error_t compile_multi(const char* const* expressions, const unsigned* flags,
                                  const unsigned* ids, unsigned count, unsigned mode,
                                  hs_database_t** db, hs_compile_error_t** err);
  static hs_error_t compile_lit_multi(const char* const* expressions, const unsigned* flags,
                                      const unsigned* ids, const size_t* lengths, unsigned count,
                                      unsigned mode, hs_database_t** db, hs_compile_error_t** err);
  static hs_error_t compile(const char* expression, unsigned flags, unsigned mode,
                            hs_database_t** db, hs_compile_error_t** err);

  // Whether Hyperscan takes a pattern as it is, as a prefilter only (PCRE2 confirms), or not
  // at all: `check` (hs_expression_info, whose CPU detection traps to the hypervisor on a
  // VM: most of a warm compile) runs once per (pattern, flags, Hyperscan, CPU); the answers
  // are kept in <dir>/pattern-checks, one checksummed line each (a damaged line is ignored,
  // the check made again). Only answers of kind ok and unsupported are kept.
  static Expected<bool> check_pattern(const std::string& regex, unsigned flags,
                                      const std::function<Expected<bool>()>& check);
};

}  // namespace vigil::match
