// The events column family: hunts over retained events and their retention.

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "encoding.h"
#include "vigil/core/event.h"
#include "vigil/store/store.h"

namespace vigil::store {

using namespace encoding;

namespace {

bool decode_event(const rocksdb::Slice& key, const rocksdb::Slice& value, StoredEvent& out, bool copy_payload) {
  if (key.size() != kEventKeySize || value.size() < 2) return false;
  const uint16_t n = get_u16(value.data());
  if (value.size() - 2 < n) return false;
  out.time = time_from_key(key.data());
  out.partition = static_cast<int32_t>(get_u32(key.data() + 12));
  out.offset = static_cast<int64_t>(get_u64(key.data() + 16));
  out.stream.assign(value.data() + 2, n);
  if (copy_payload) out.payload.assign(value.data() + 2 + n, value.size() - 2 - n);
  return true;
}

std::string_view payload_of(const rocksdb::Slice& value) {
  const uint16_t n = get_u16(value.data());
  return {value.data() + 2 + n, value.size() - 2 - n};
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

Status Store::scan_events(TimeMs since, TimeMs until, const std::function<bool(const StoredEvent&)>& fn) const {
  if (since >= until) return Status::ok();
  const std::string lower = time_prefix(since);
  const std::string upper = time_prefix(until);
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;  // a dry run over days should not evict the alert pages
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
  StoredEvent e;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    if (!decode_event(it->key(), it->value(), e, true)) {
      return Status::corruption("event entry " + to_hex(it->key().ToString()) + " cannot be decoded");
    }
    if (!fn(e)) return Status::ok();
  }
  if (!it->status().ok()) return Status::io_error("event scan failed: " + it->status().ToString());
  return Status::ok();
}

Expected<EventPage> Store::query_events(const EventQuery& q) const {
  EventPage page;
  if (q.limit == 0 || q.since >= q.until) return page;
  FieldSet fields;
  std::vector<uint32_t> slots;
  for (const auto& f : q.filters) {
    if (f.path.empty()) return Status::invalid("an event filter has an empty field path");
    slots.push_back(fields.add(f.path));
  }
  const std::string lower = time_prefix(q.since);
  const std::string upper = time_prefix(q.until);
  std::string start = upper;
  bool skip_start = false;
  if (!q.cursor.empty()) {
    auto raw = from_hex(q.cursor);
    if (!raw || raw->size() != kEventKeySize) return Status::invalid("cursor is not valid for this query");
    if (*raw < start) start = *raw;
    skip_start = true;
  }
  rocksdb::ReadOptions ro;
  rocksdb::Slice lower_slice(lower);
  ro.iterate_lower_bound = &lower_slice;
  ro.fill_cache = q.filters.empty();  // a wide hunt should not evict the alert pages
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
  it->SeekForPrev(start);
  // Keys equal to `upper` cannot exist (it is 8 bytes); the cursor's own key is skipped.
  if (it->Valid() && skip_start && it->key() == rocksdb::Slice(start)) it->Prev();

  EventParser parser;
  Event event;
  std::string last_key;
  for (; it->Valid() && page.events.size() < q.limit; it->Prev()) {
    if (page.scanned >= q.max_scan) {
      page.partial = true;
      break;
    }
    ++page.scanned;
    const rocksdb::Slice k = it->key(), v = it->value();
    last_key.assign(k.data(), k.size());
    if (k.size() != kEventKeySize || v.size() < 2 || v.size() - 2 < get_u16(v.data())) {
      return Status::corruption("event entry " + to_hex(last_key) + " cannot be decoded");
    }
    if (!q.filters.empty()) {
      if (parser.parse(payload_of(v), fields, event) != ParseError::kNone) continue;
      bool pass = true;
      for (size_t i = 0; i < q.filters.size() && pass; ++i) {
        const FieldValue& fv = event.field(slots[i]);
        switch (q.filters[i].op) {
          case EventFilter::Op::kExists: pass = fv.present(); break;
          case EventFilter::Op::kEquals: pass = fv.present() && iequals(fv.text, q.filters[i].value); break;
          case EventFilter::Op::kContains: pass = fv.present() && icontains(fv.text, q.filters[i].value); break;
        }
      }
      if (!pass) continue;
    }
    decode_event(k, v, page.events.emplace_back(), true);
  }
  if (!it->status().ok()) return from_rocks(it->status(), "event scan failed");
  if ((page.events.size() == q.limit || page.partial) && it->Valid()) page.next_cursor = to_hex(last_key);
  return page;
}

Expected<std::optional<StoredEvent>> Store::get_event(std::string_view stream, int32_t partition, int64_t offset,
                                                      TimeMs time) const {
  std::string key, value;
  event_key(key, time, stream, partition, offset);
  auto s = db_->Get(rocksdb::ReadOptions(), events_, key, &value);
  if (s.IsNotFound()) return std::optional<StoredEvent>();
  if (!s.ok()) return from_rocks(s, "event read failed");
  StoredEvent e;
  if (!decode_event(key, value, e, true)) return Status::corruption("event entry " + to_hex(key) + " cannot be decoded");
  if (e.stream != stream) return std::optional<StoredEvent>();  // a stream-hash collision: another event
  return std::optional<StoredEvent>(std::move(e));
}

uint64_t Store::events_bytes() const {
  uint64_t sst = 0, mem = 0;
  db_->GetIntProperty(events_, "rocksdb.live-sst-files-size", &sst);
  db_->GetIntProperty(events_, "rocksdb.cur-size-all-mem-tables", &mem);
  return sst + mem;
}

Expected<RetentionResult> Store::expire_events(TimeMs now) {
  RetentionResult result;
  result.bytes_before = events_bytes();
  const int64_t bucket = retention_.bucket_ms;
  const std::string first = time_prefix(INT64_MIN);
  std::string dropped_end;  // everything before it is dropped (empty: nothing)

  auto drop = [&](const std::string& end) -> Status {
    rocksdb::Slice b(first), e(end);
    // Whole SST files inside the range go at once; what is left is covered by a range
    // tombstone and compacted away below.
    auto s = rocksdb::DeleteFilesInRange(db_.get(), events_, &b, &e, /*include_end=*/false);
    if (!s.ok()) return from_rocks(s, "event expiry failed");
    rocksdb::WriteBatch batch;
    batch.DeleteRange(events_, b, e);
    if (auto w = write(batch); !w) return w;
    dropped_end = end;
    return Status::ok();
  };

  if (retention_.max_age_ms > 0) {
    const TimeMs cutoff = floor_div(now - retention_.max_age_ms, bucket) * bucket;
    rocksdb::ReadOptions ro;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
    it->SeekToFirst();
    if (it->Valid() && it->key().size() >= 8 && time_from_key(it->key().data()) < cutoff) {
      const TimeMs oldest = time_from_key(it->key().data());
      result.buckets_dropped += static_cast<size_t>((floor_div(cutoff, bucket) - floor_div(oldest, bucket)));
      it.reset();
      if (auto s = drop(time_prefix(cutoff)); !s) return s;
    }
  }

  if (retention_.max_bytes > 0) {
    uint64_t size = events_bytes();
    rocksdb::ReadOptions ro;
    std::string lower = dropped_end.empty() ? first : dropped_end;
    // Oldest bucket first, until the estimate fits; the newest bucket is always kept.
    for (int guard = 0; size > retention_.max_bytes && guard < 100000; ++guard) {
      rocksdb::Slice lower_slice(lower);
      ro.iterate_lower_bound = &lower_slice;
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
      it->SeekToFirst();
      if (!it->Valid()) break;
      const TimeMs oldest = time_from_key(it->key().data());
      it->SeekToLast();
      const TimeMs newest = time_from_key(it->key().data());
      if (!it->status().ok()) return from_rocks(it->status(), "event expiry scan failed");
      const TimeMs b = floor_div(oldest, bucket) * bucket;
      if (b + bucket > newest) break;
      const std::string end = time_prefix(b + bucket);
      rocksdb::Range range(lower, end);
      uint64_t bucket_bytes = 0;
      rocksdb::SizeApproximationOptions so;
      so.include_memtables = true;
      so.include_files = true;
      db_->GetApproximateSizes(so, events_, &range, 1, &bucket_bytes);
      it.reset();
      if (auto s = drop(end); !s) return s;
      ++result.buckets_dropped;
      lower = end;
      size = size > bucket_bytes ? size - bucket_bytes : 0;
    }
  }

  if (!dropped_end.empty()) {
    rocksdb::Slice b(first), e(dropped_end);
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
    if (auto s = db_->CompactRange(co, events_, &b, &e); !s.ok()) return from_rocks(s, "event compaction failed");
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
  it->SeekToFirst();
  if (it->Valid() && it->key().size() >= 8) result.oldest_kept = floor_div(time_from_key(it->key().data()), bucket) * bucket;
  return result;
}

Status Store::compact_all() {
  rocksdb::CompactRangeOptions co;
  for (auto* h : handles_) {
    if (auto s = db_->CompactRange(co, h, nullptr, nullptr); !s.ok()) return from_rocks(s, "compaction failed");
  }
  return Status::ok();
}

Status Store::compact_events() {
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return from_rocks(db_->CompactRange(co, events_, nullptr, nullptr), "event compaction failed");
}

}  // namespace vigil::store
