// The events column family: hunts over retained events and their retention.

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <optional>

#include "encoding.h"
#include "vigil/core/event.h"
#include "vigil/store/store.h"

namespace vigil::store {

using namespace encoding;

namespace {

// The events of one window of the events cf, read record by record as an iterator passes them
// and then ordered by position, a replay's duplicates dropped (a batch cut differently after a
// restart may have written an event into two blocks).
class Window {
 public:
  // Reads every record of the window the iterator is on, leaving it on the first record
  // past the window in the direction of travel.
  Status load(rocksdb::Iterator& it, bool backward) {
    arena_.clear();
    records_.clear();
    entries_.clear();
    std::optional<TimeMs> window;
    for (; it.Valid(); backward ? it.Prev() : it.Next()) {
      const rocksdb::Slice k = it.key(), v = it.value();
      if (k.size() < 8)
        return Status::corruption("event entry " + to_hex(k.ToString()) + " cannot be decoded");
      const TimeMs w = window_of(time_from_key(k.data()));
      if (!window) window = w;
      if (w != *window) break;
      records_.push_back({arena_.size(), k.size(), v.size()});
      arena_.append(k.data(), k.size());
      arena_.append(v.data(), v.size());
    }
    if (!it.status().ok()) return from_rocks(it.status(), "event scan failed");
    for (const Record& r : records_) {
      const std::string_view key(arena_.data() + r.at, r.key_size);
      if (!decode_events_record(
              key, std::string_view(arena_.data() + r.at + r.key_size, r.value_size), entries_)) {
        return Status::corruption("event entry " + to_hex(key) + " cannot be decoded");
      }
    }
    std::sort(entries_.begin(), entries_.end(), [](const EventEntry& a, const EventEntry& b) {
      if (a.position() != b.position()) return a.position() < b.position();
      return a.stream < b.stream;
    });
    entries_.erase(std::unique(entries_.begin(), entries_.end(),
                               [](const EventEntry& a, const EventEntry& b) {
                                 return a.position() == b.position() && a.stream == b.stream;
                               }),
                   entries_.end());
    return Status::ok();
  }
  const std::vector<EventEntry>& entries() const { return entries_; }

 private:
  struct Record {
    size_t at, key_size, value_size;
  };
  std::string arena_;  // the window's keys and values, back to back
  std::vector<Record> records_;
  std::vector<EventEntry> entries_;  // ascending by position
};

StoredEvent stored(const EventEntry& e) {
  return {e.time, std::string(e.stream), e.partition, e.offset, std::string(e.payload)};
}

}  // namespace

void Store::put_events(rocksdb::WriteBatch& batch, const std::vector<EventRecord>& events) {
  if (events.empty()) return;
  // One block per (stream, partition, window) of the batch, at most kMaxBlockBytes of
  // payload each: a batch of a few thousand events becomes a few dozen records.
  constexpr size_t kMaxBlockBytes = 256 << 10;
  struct Item {
    int32_t partition;
    TimeMs window;
    const EventRecord* event;
  };
  std::vector<Item> items(events.size());
  for (size_t i = 0; i < events.size(); ++i)
    items[i] = {events[i].partition, window_of(events[i].time), &events[i]};
  auto same_stream = [](std::string_view a, std::string_view b) {
    return (a.data() == b.data() && a.size() == b.size()) ||
           a == b;  // one topic's batch shares its string
  };
  std::sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    if (a.partition != b.partition) return a.partition < b.partition;
    if (a.window != b.window) return a.window < b.window;
    if (!same_stream(a.event->stream, b.event->stream)) return a.event->stream < b.event->stream;
    return a.event->offset < b.event->offset;
  });
  std::vector<const EventRecord*> block;
  std::string key, value;
  for (size_t i = 0; i < items.size();) {
    const Item& first = items[i];
    block.clear();
    size_t bytes = 0;
    for (; i < items.size(); ++i) {
      const Item& it = items[i];
      if (it.partition != first.partition || it.window != first.window ||
          !same_stream(it.event->stream, first.event->stream) ||
          (!block.empty() && bytes + it.event->payload.size() > kMaxBlockBytes)) {
        break;
      }
      bytes += it.event->payload.size();
      block.push_back(it.event);
    }
    encode_event_block(key, value, first.window, first.event->stream, first.partition, block.data(),
                       block.size());
    batch.Put(events_, key, value);
  }
}

Status Store::scan_events(TimeMs since, TimeMs until,
                          const std::function<bool(const StoredEvent&)>& fn) const {
  if (since >= until) return Status::ok();
  const std::string lower = time_prefix(window_of(since));
  const std::string upper = time_prefix(until);
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;  // a dry run over days should not evict the alert pages
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
  Window window;
  it->Seek(lower);
  if (!it->status().ok()) return from_rocks(it->status(), "event scan failed");
  while (it->Valid()) {
    if (auto s = window.load(*it, /*backward=*/false); !s) return s;
    for (const EventEntry& e : window.entries()) {
      if (e.time < since || e.time >= until) continue;
      if (!fn(stored(e))) return Status::ok();
    }
  }
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
  std::optional<EventEntry> cursor;
  if (!q.cursor.empty()) {
    auto raw = from_hex(q.cursor);
    if (raw) cursor = decode_position(*raw);
    if (!cursor) return Status::invalid("cursor is not valid for this query");
  }
  // Records are read a window at a time, newest window first: from the window of the
  // cursor (or of `until`) down to the window of `since`.
  const std::string lower = time_prefix(window_of(q.since));
  const std::string start =
      time_prefix(cursor ? std::min(q.until, window_after(cursor->time)) : q.until);
  rocksdb::ReadOptions ro;
  rocksdb::Slice lower_slice(lower);
  ro.iterate_lower_bound = &lower_slice;
  ro.fill_cache = q.filters.empty();  // a wide hunt should not evict the alert pages
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
  it->SeekForPrev(
      start);  // the last record before `start` (an 8-byte key sorts before its time's records)

  EventParser parser;
  Event event;
  Window window;
  auto wanted = [&](const EventEntry& e) {
    return e.time >= q.since && e.time < q.until && (!cursor || e.position() < cursor->position());
  };
  std::optional<EventEntry> last;  // the last entry examined
  bool more = false;
  while (it->Valid() && !more) {
    if (auto s = window.load(*it, /*backward=*/true); !s) return s;
    const auto& entries = window.entries();
    for (size_t i = entries.size(); i-- > 0;) {
      const EventEntry& e = entries[i];
      if (!wanted(e)) continue;
      if (page.events.size() == q.limit || page.scanned >= q.max_scan) {
        page.partial = page.events.size() < q.limit;
        more = true;
        break;
      }
      ++page.scanned;
      last = e;
      if (!q.filters.empty()) {
        if (parser.parse(e.payload, fields, event) != ParseError::kNone) continue;
        bool pass = true;
        for (size_t f = 0; f < q.filters.size() && pass; ++f) {
          const FieldValue& fv = event.field(slots[f]);
          switch (q.filters[f].op) {
            case EventFilter::Op::kExists:
              pass = fv.present();
              break;
            case EventFilter::Op::kEquals:
              pass = fv.present() && iequals(fv.text, q.filters[f].value);
              break;
            case EventFilter::Op::kContains:
              pass = fv.present() && icontains(fv.text, q.filters[f].value);
              break;
          }
        }
        if (!pass) continue;
      }
      page.events.push_back(stored(e));
    }
    // A full page that ended with its window: whether more follows is known without reading
    // the next window (it may hold only events before `since`: a last, empty page).
    if (!more && page.events.size() == q.limit && it->Valid()) more = true;
  }
  if (!it->status().ok()) return from_rocks(it->status(), "event scan failed");
  if (more && last) page.next_cursor = to_hex(encode_position(*last));
  return page;
}

std::string event_cursor(TimeMs time, std::string_view stream, int32_t partition, int64_t offset) {
  EventEntry e;
  e.time = time;
  e.hash = stream_hash(stream);
  e.partition = partition;
  e.offset = offset;
  return to_hex(encode_position(e));
}

Expected<std::optional<StoredEvent>> Store::get_event(std::string_view stream, int32_t partition,
                                                      int64_t offset, TimeMs time) const {
  // The block of the event's window that starts at or before its offset; a replay's block
  // that overlaps it may start earlier, so a few before it are looked at too.
  // A block key is a format-2 key of the window's start, with its 0x01 marker.
  std::string target;
  event_key(target, window_of(time), stream, partition, offset);
  target += '\x01';
  const std::string prefix = target.substr(0, 16);  // window | stream hash | partition
  rocksdb::ReadOptions ro;
  rocksdb::Slice lower(prefix);
  ro.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_));
  std::vector<EventEntry> entries;
  int blocks = 0;
  for (it->SeekForPrev(target); it->Valid() && it->key().starts_with(prefix) && blocks < 16;
       it->Prev()) {
    const rocksdb::Slice k = it->key(), v = it->value();
    if (k.size() != kEventBlockKeySize)
      continue;  // a format-2 event of the window's first millisecond
    ++blocks;
    entries.clear();
    if (!decode_events_record({k.data(), k.size()}, {v.data(), v.size()}, entries)) {
      return Status::corruption("event entry " + to_hex(k.ToString()) + " cannot be decoded");
    }
    for (const EventEntry& e : entries) {
      if (e.offset == offset && e.time == time && e.stream == stream)
        return std::optional<StoredEvent>(stored(e));
    }
  }
  if (!it->status().ok()) return from_rocks(it->status(), "event read failed");

  // Written by format 2: one record per event.
  std::string key, value;
  event_key(key, time, stream, partition, offset);
  auto s = db_->Get(rocksdb::ReadOptions(), events_, key, &value);
  if (s.IsNotFound()) return std::optional<StoredEvent>();
  if (!s.ok()) return from_rocks(s, "event read failed");
  entries.clear();
  if (!decode_events_record(key, value, entries)) {
    return Status::corruption("event entry " + to_hex(key) + " cannot be decoded");
  }
  if (entries[0].stream != stream)
    return std::optional<StoredEvent>();  // a stream-hash collision: another event
  return std::optional<StoredEvent>(stored(entries[0]));
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
      result.buckets_dropped +=
          static_cast<size_t>((floor_div(cutoff, bucket) - floor_div(oldest, bucket)));
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
    if (auto s = db_->CompactRange(co, events_, &b, &e); !s.ok())
      return from_rocks(s, "event compaction failed");
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
  it->SeekToFirst();
  if (it->Valid() && it->key().size() >= 8)
    result.oldest_kept = floor_div(time_from_key(it->key().data()), bucket) * bucket;
  return result;
}

Status Store::compact_all() {
  rocksdb::CompactRangeOptions co;
  for (auto* h : handles_) {
    if (auto s = db_->CompactRange(co, h, nullptr, nullptr); !s.ok())
      return from_rocks(s, "compaction failed");
  }
  return Status::ok();
}

Status Store::compact_events() {
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return from_rocks(db_->CompactRange(co, events_, nullptr, nullptr), "event compaction failed");
}

}  // namespace vigil::store
