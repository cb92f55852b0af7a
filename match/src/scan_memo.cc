#include "scan_memo.h"

// Inlined: a short value is hashed in a few nanoseconds, less than a call into the library.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace vigil::match::detail {

namespace {

constexpr size_t kDoorkeeperBits = size_t{1} << 18;  // 32 KB
// First sightings before the doorkeeper is cleared: at most 2 * 2^14 of its 2^18 bits are set,
// so a value never seen passes it by chance at most (1/8)^2 of the time.
constexpr size_t kDoorkeeperWindow = size_t{1} << 14;
constexpr size_t kMinBytes = size_t{64} << 10;
constexpr size_t kFirstSlots = 1024;  // 32 KB
constexpr size_t kFirstArena = size_t{32} << 10;

}  // namespace

ScanMemo::ScanMemo(size_t bytes) {
  if (bytes < kMinBytes) return;
  // A quarter of the budget for the table (32-byte slots, at most half live), the rest for
  // the values and their predicates.
  max_slots_ = 1;
  while (max_slots_ * 2 * sizeof(Slot) <= bytes / 4) max_slots_ *= 2;
  max_arena_ = bytes - max_slots_ * sizeof(Slot);
  slots_.assign(std::min(kFirstSlots, max_slots_), Slot{});
  arena_.resize(std::min(kFirstArena, max_arena_));
  doorkeeper_.assign(kDoorkeeperBits / 64, 0);
}

uint64_t ScanMemo::hash(uint32_t database, std::string_view value) {
  return XXH3_64bits_withSeed(value.data(), value.size(), database);
}

const uint32_t* ScanMemo::find(uint32_t database, std::string_view value, uint64_t hash,
                               uint32_t& count) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.generation != generation_) return nullptr;
    if (s.hash == hash && s.database == database && s.key_length == value.size() &&
        std::memcmp(arena_.data() + s.key_offset, value.data(), value.size()) == 0) {
      count = s.pred_count;
      const size_t at = (s.key_offset + s.key_length + 3) & ~size_t{3};
      return reinterpret_cast<const uint32_t*>(arena_.data() + at);
    }
  }
}

bool ScanMemo::admit(uint64_t hash) {
  // Two bits from the hash's upper half (the table indexes by the lower one).
  const size_t a = (hash >> 32) & (kDoorkeeperBits - 1);
  const size_t b = (hash >> 46) & (kDoorkeeperBits - 1);
  const uint64_t ma = uint64_t{1} << (a & 63), mb = uint64_t{1} << (b & 63);
  if ((doorkeeper_[a >> 6] & ma) && (doorkeeper_[b >> 6] & mb)) return true;
  if (++door_sets_ > kDoorkeeperWindow) {
    std::fill(doorkeeper_.begin(), doorkeeper_.end(), 0);
    door_sets_ = 1;
  }
  doorkeeper_[a >> 6] |= ma;
  doorkeeper_[b >> 6] |= mb;
  return false;
}

void ScanMemo::insert(uint32_t database, std::string_view value, uint64_t hash,
                      const uint32_t* preds, size_t count) {
  if (value.size() > kMaxValueBytes) return;
  const size_t need = ((value.size() + 3) & ~size_t{3}) + count * sizeof(uint32_t) + 4;
  if (need > max_arena_ / 16) return;  // an entry that big would crowd out the rest
  while (2 * (live_ + 1) > slots_.size()) {
    if (!grow_slots()) {
      reset();
      break;
    }
  }
  while (arena_used_ + need > arena_.size()) {
    if (!grow_arena()) {
      reset();
      break;
    }
  }
  const size_t key_offset = arena_used_;
  std::memcpy(arena_.data() + key_offset, value.data(), value.size());
  const size_t at = (key_offset + value.size() + 3) & ~size_t{3};
  if (count > 0) std::memcpy(arena_.data() + at, preds, count * sizeof(uint32_t));
  arena_used_ = at + count * sizeof(uint32_t);
  Slot s;
  s.hash = hash;
  s.generation = generation_;
  s.database = database;
  s.key_offset = static_cast<uint32_t>(key_offset);
  s.key_length = static_cast<uint32_t>(value.size());
  s.pred_count = static_cast<uint32_t>(count);
  place(s);
  ++live_;
}

void ScanMemo::place(const Slot& slot) {
  const size_t mask = slots_.size() - 1;
  size_t i = slot.hash & mask;
  while (slots_[i].generation == generation_) i = (i + 1) & mask;
  slots_[i] = slot;
}

bool ScanMemo::grow_slots() {
  if (slots_.size() >= max_slots_) return false;
  std::vector<Slot> old(slots_.size() * 2, Slot{});
  old.swap(slots_);
  for (const Slot& s : old) {
    if (s.generation == generation_) place(s);
  }
  return true;
}

bool ScanMemo::grow_arena() {
  if (arena_.size() >= max_arena_) return false;
  arena_.resize(std::min(arena_.size() * 2, max_arena_));
  return true;
}

void ScanMemo::reset() {
  ++resets_;
  live_ = 0;
  arena_used_ = 0;
  if (++generation_ == 0) {  // after 2^32 resets: slots of generation 1 would read as live
    std::fill(slots_.begin(), slots_.end(), Slot{});
    generation_ = 1;
  }
}

}  // namespace vigil::match::detail
