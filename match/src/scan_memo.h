#pragma once
// ScanMemo: what each eager field scan found, remembered per (database, value), so that a value
// the matcher has scanned recently costs a lookup instead of a Hyperscan scan. One per Matcher
// (one worker), dropped with it at a bundle switch.
//
// Recorded telemetry repeats most of the values rules read (a host's few dozen process
// images, its DLLs, its call traces) while some fields are nearly always new (registry keys,
// command lines, messages). So:
// - an entry holds the predicates the scan set (after PCRE2 confirmations), keyed by the
//   database and the whole value (its bytes compared, not only its hash);
// - a value is admitted only on its second sighting within a recent window (a doorkeeper of
//   two bits per value in a 32 KB filter, cleared after 16384 first sightings), so a flood of
//   unique values costs a hash and a missed probe each, and does not push out what repeats;
// - memory is bounded by the byte budget given at construction: the table and the arena start
//   small and double as values are admitted (a stream that repeats nothing keeps a table that
//   stays in cache); once at the budget, when either is full, everything is dropped at once
//   (a generation), and what repeats comes back.
//
// Not thread-safe: it belongs to its Matcher's worker.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace vigil::match::detail {

class ScanMemo {
 public:
  // Values longer than this are scanned, not remembered (they rarely repeat and would fill the
  // arena).
  static constexpr size_t kMaxValueBytes = 2048;

  // `bytes` bounds the table and the arena together; below 64 KiB the memo is off.
  explicit ScanMemo(size_t bytes);

  bool enabled() const { return !slots_.empty(); }
  static uint64_t hash(uint32_t database, std::string_view value);

  // The predicates the scan of `value` by `database` set, or nullptr if not remembered
  // (`count` is then untouched).
  const uint32_t* find(uint32_t database, std::string_view value, uint64_t hash,
                       uint32_t& count) const;
  // Whether a value not remembered should be: true on its second sighting in the doorkeeper's
  // window.
  bool admit(uint64_t hash);
  // Remembers what the scan of `value` by `database` set (ids may repeat).
  void insert(uint32_t database, std::string_view value, uint64_t hash, const uint32_t* preds,
              size_t count);

  uint64_t resets() const { return resets_; }
  size_t entries() const { return live_; }
  // What the table and the arena hold now: within the budget.
  size_t bytes_held() const { return slots_.size() * sizeof(Slot) + arena_.size(); }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t generation = 0;  // the slot is live when it equals generation_
    uint32_t database = 0;
    uint32_t key_offset = 0;  // into arena_; the predicates follow the key, 4-byte aligned
    uint32_t key_length = 0;
    uint32_t pred_count = 0;
    uint32_t pad = 0;
  };
  void reset();
  // Doubles the table (rehashing the live slots) or the arena, within the budget; false if at
  // the budget already.
  bool grow_slots();
  bool grow_arena();
  void place(const Slot& slot);

  size_t max_slots_ = 0, max_arena_ = 0;  // the budget's shares
  std::vector<Slot> slots_;               // a power of two in size, at most half live
  std::vector<char> arena_;
  size_t arena_used_ = 0;
  size_t live_ = 0;
  uint32_t generation_ = 1;
  uint64_t resets_ = 0;
  std::vector<uint64_t> doorkeeper_;
  size_t door_sets_ = 0;
};

}  // namespace vigil::match::detail
