#include "vigil/match/correlator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <tuple>

namespace vigil::match {

namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

struct Reader {
  std::string_view in;
  size_t pos = 0;
  bool u32(uint32_t& v) {
    if (in.size() - pos < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos++]);
    return true;
  }
  bool u64(uint64_t& v) {
    if (in.size() - pos < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos++]);
    return true;
  }
  bool str(std::string& s) {
    uint32_t n = 0;
    if (!u32(n) || in.size() - pos < n) return false;
    s.assign(in.substr(pos, n));
    pos += n;
    return true;
  }
};

}  // namespace

Correlator::Correlator(std::shared_ptr<const RuleSet> rules) : rules_(std::move(rules)) {
  windows_.resize(rules_->correlations().size());
}

size_t Correlator::groups() const {
  size_t n = 0;
  for (const auto& w : windows_) n += w.size();
  return n;
}

std::string Correlator::key_of(uint32_t index, const std::string& group) const {
  std::string k = rules_->correlations()[index].info.id;
  k += '\0';
  k += group;
  return k;
}

// A metric's value: the window's numbers (at most kMaxHitsPerGroup, so exact) reduced.
// Median and percentiles interpolate linearly between the closest ranks (NumPy's default:
// the median of 1, 2, 3, 4 is 2.5).
double Correlator::metric_of(const CompiledCorrelation& c, const Window& w) {
  std::vector<double>& xs = numbers_;
  xs.clear();
  for (const auto& h : w.hits) {
    double x = 0;
    if (parse_metric_value(h.value, x)) xs.push_back(x);
  }
  if (xs.empty()) return std::nan("");
  switch (c.spec.type) {
    case Correlation::Type::kValueSum: {
      double sum = 0;
      for (double x : xs) sum += x;
      return sum;
    }
    case Correlation::Type::kValueAvg: {
      double sum = 0;
      for (double x : xs) sum += x;
      return sum / static_cast<double>(xs.size());
    }
    case Correlation::Type::kValueMin:
      return *std::min_element(xs.begin(), xs.end());
    case Correlation::Type::kValueMax:
      return *std::max_element(xs.begin(), xs.end());
    default: {
      const double p = c.spec.type == Correlation::Type::kValueMedian ? 50 : c.spec.percentile;
      std::sort(xs.begin(), xs.end());
      const double rank = p / 100 * static_cast<double>(xs.size() - 1);
      const auto below = static_cast<size_t>(std::floor(rank));
      const size_t above = std::min(below + 1, xs.size() - 1);
      return xs[below] + (xs[above] - xs[below]) * (rank - static_cast<double>(below));
    }
  }
}

bool Correlator::parse_metric_value(std::string_view text, double& out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && p == end && std::isfinite(out);
}

double Correlator::value_of(const CompiledCorrelation& c, const Window& w) {
  if (c.spec.is_metric()) return metric_of(c, w);
  switch (c.spec.type) {
    case Correlation::Type::kEventCount:
      return static_cast<double>(w.hits.size());
    case Correlation::Type::kValueCount: {
      std::set<std::string_view> values;
      for (const auto& h : w.hits) values.insert(h.value);
      return static_cast<double>(values.size());
    }
    case Correlation::Type::kTemporal: {
      std::vector<bool> seen(c.bases.size(), false);
      for (const auto& h : w.hits) seen[h.base] = true;
      if (c.spec.expression) return holds(*c.spec.expression, seen) ? 1 : 0;
      return static_cast<double>(std::count(seen.begin(), seen.end(), true));
    }
    case Correlation::Type::kTemporalOrdered: {
      // The longest prefix of the rule list matched in time order.
      std::vector<const Hit*> order;
      for (const auto& h : w.hits) order.push_back(&h);
      std::stable_sort(order.begin(), order.end(),
                       [](const Hit* a, const Hit* b) { return a->time < b->time; });
      uint32_t next = 0;
      for (const Hit* h : order) {
        if (next < c.bases.size() && h->base == next) ++next;
      }
      return next;
    }
    default:
      return 0;
  }
}

// A temporal correlation's expression over the rules matched in the window.
bool Correlator::holds(const CondNode& n, const std::vector<bool>& seen) {
  switch (n.kind) {
    case CondNode::Kind::kPred:
      return n.index < seen.size() && seen[n.index];
    case CondNode::Kind::kNot:
      return !holds(n.children[0], seen);
    case CondNode::Kind::kAnd:
      return std::all_of(n.children.begin(), n.children.end(),
                         [&](const CondNode& c) { return holds(c, seen); });
    case CondNode::Kind::kOr:
      return std::any_of(n.children.begin(), n.children.end(),
                         [&](const CondNode& c) { return holds(c, seen); });
    default:
      return false;
  }
}

bool Correlator::fires(const CompiledCorrelation& c, double value) const {
  if (std::isnan(value)) return false;       // a metric over no number
  if (c.spec.expression) return value >= 1;  // value_of: whether the expression holds
  if (!c.spec.has_condition())
    return value >= static_cast<double>(c.bases.size());  // temporal default: all rules
  return c.spec.holds(value);
}

void Correlator::emit(uint32_t index, const std::string& group, Window& w, double value,
                      std::vector<CorrelationHit>& out) {
  CorrelationHit& hit = out.emplace_back();
  hit.correlation = index;
  hit.group = group;
  hit.value = value;
  hit.first = INT64_MAX;
  hit.last = INT64_MIN;
  for (const auto& h : w.hits) {
    hit.first = std::min(hit.first, h.time);
    hit.last = std::max(hit.last, h.time);
    if (hit.refs.size() < kMaxRefs) hit.refs.push_back(h.ref);
  }
  if (w.hits.empty())
    hit.first = hit.last = w.start;
  else
    hit.completed_by = w.hits.back().ref;
  w.hits.clear();
  queue_chained(hit);
}

// The correlations this hit's correlation feeds (a chain) get it as a match, at the time of
// its window's last match, once the caller's own matches are added (drain_chained).
void Correlator::queue_chained(const CorrelationHit& hit) {
  const auto& chained = rules_->chained_of(hit.correlation);
  if (chained.empty()) return;
  const std::string_view scope = hit.scope(), values = hit.values();
  std::string ref = chain_ref_ ? chain_ref_(hit) : hit.completed_by;
  for (const auto& [outer, base] : chained) {
    if (remote(outer)) continue;  // its group's owner gets it through the repartition topic
    Chained& c = chain_queue_.emplace_back();
    c.correlation = outer;
    c.base = base;
    c.time = hit.last;
    c.ref = ref;
    if (!scope.empty()) {  // the same scope
      c.group.assign(scope);
      c.group += '\x1e';
    }
    chained_values(rules_->correlations()[outer], base, values, c.group);
  }
}

void Correlator::chained_values(const CompiledCorrelation& outer, uint32_t base,
                                std::string_view inner_values, std::string& out) {
  std::vector<std::string_view> parts;
  for (size_t from = 0;;) {
    const size_t to = inner_values.find('\x1f', from);
    parts.push_back(inner_values.substr(from, to == std::string_view::npos ? to : to - from));
    if (to == std::string_view::npos) break;
    from = to + 1;
  }
  const auto& positions = outer.group_from_inner[base];
  for (size_t g = 0; g < positions.size(); ++g) {
    if (g) out += '\x1f';
    if (positions[g] < parts.size()) out.append(parts[positions[g]]);
  }
}

void Correlator::drain_chained(std::vector<CorrelationHit>& out) {
  while (!chain_queue_.empty()) {
    Chained c = std::move(chain_queue_.front());
    chain_queue_.pop_front();
    group_ = std::move(c.group);
    add(c.correlation, c.base, c.time, c.ref, {}, out);
  }
}

void Correlator::forget_scope(std::string_view scope) {
  std::string prefix(scope);
  prefix += '\x1e';
  for (auto& groups : windows_) {
    std::erase_if(groups,
                  [&](const auto& kv) { return kv.first.compare(0, prefix.size(), prefix) == 0; });
  }
}

void Correlator::observe(uint32_t rule, const Event& event, TimeMs time, std::string_view ref,
                         std::vector<CorrelationHit>& out, std::string_view scope) {
  const RuleSet& rs = *rules_;
  for (uint32_t index : rs.correlations_of(rule)) {
    if (index < remote_.size() && remote_[index]) continue;  // fed through observe_hit()
    const CompiledCorrelation& c = rs.correlations()[index];
    for (uint32_t b = 0; b < c.bases.size(); ++b) {
      if (c.bases[b] != rule) continue;
      group_.clear();
      if (!scope.empty()) {
        group_ += scope;
        group_ += '\x1e';
      }
      append_group_values(c, b, event, group_);
      value_.clear();
      if (c.spec.reads_values() && !counted_value(c, b, event, value_))
        continue;  // no value to count
      add(index, b, time, ref, value_, out);
    }
  }
  drain_chained(out);
}

bool Correlator::counted_value(const CompiledCorrelation& c, uint32_t base, const Event& event,
                               std::string& out) {
  out.clear();
  const auto& slots = c.value_slots[base];
  for (size_t i = 0; i < slots.size(); ++i) {
    const FieldValue& v = event.field(slots[i]);
    if (!v.present()) return false;
    if (i) out += '\x1f';
    out.append(v.text);
  }
  return true;
}

void Correlator::append_group_values(const CompiledCorrelation& c, uint32_t base,
                                     const Event& event, std::string& out) {
  for (size_t g = 0; g < c.group_slots[base].size(); ++g) {
    if (g) out += '\x1f';
    const FieldValue& v = event.field(c.group_slots[base][g]);
    if (v.present()) out.append(v.text);
  }
}

std::optional<uint32_t> Correlator::index_of(std::string_view id) const {
  const auto& cs = rules_->correlations();
  for (uint32_t i = 0; i < cs.size(); ++i)
    if (cs[i].info.id == id) return i;
  return std::nullopt;
}

void Correlator::observe_hit(uint32_t correlation, uint32_t base, std::string_view values,
                             std::string_view value, TimeMs time, std::string_view ref,
                             std::vector<CorrelationHit>& out, std::string_view scope) {
  group_.clear();
  if (!scope.empty()) {
    group_ += scope;
    group_ += '\x1e';
  }
  group_ += values;
  add(correlation, base, time, ref, value, out);
  drain_chained(out);
}

void Correlator::add(uint32_t index, uint32_t b, TimeMs time, std::string_view ref,
                     std::string_view value, std::vector<CorrelationHit>& out) {
  const CompiledCorrelation& c = rules_->correlations()[index];
  double number = 0;
  if (c.spec.is_metric() && !parse_metric_value(value, number)) {
    ++non_numeric_;  // a metric of a field that holds no number here: nothing to add
    return;
  }
  Window& w = windows_[index][group_];
  const TimeMs span = c.spec.timespan_ms;
  if (c.spec.judged_at_window_end()) {
    if (!w.hits.empty() && time >= w.start + span) {
      const double v = value_of(c, w);
      if (fires(c, v)) emit(index, group_, w, v, out);
      w.hits.clear();
    }
    if (w.hits.empty()) w.start = time;
  } else {
    // Sliding: only the matches within the timespan before this one count.
    std::erase_if(w.hits, [&](const Hit& h) { return h.time <= time - span; });
    if (w.hits.empty()) w.start = time;
  }
  if (w.hits.size() >= kMaxHitsPerGroup) {
    w.hits.erase(w.hits.begin());
    ++dropped_hits_;
  }
  Hit& h = w.hits.emplace_back();
  h.time = time;
  h.base = b;
  h.ref.assign(ref);
  if (c.spec.reads_values()) h.value.assign(value);
  if (!c.spec.judged_at_window_end()) {
    const double v = value_of(c, w);
    if (fires(c, v)) emit(index, group_, w, v, out);
  }
  dirty_.push_back(key_of(index, group_));
}

void Correlator::advance(TimeMs now, std::vector<CorrelationHit>& out) {
  const RuleSet& rs = *rules_;
  const size_t first_new = out.size();
  for (uint32_t index = 0; index < windows_.size(); ++index) {
    const CompiledCorrelation& c = rs.correlations()[index];
    const TimeMs span = c.spec.timespan_ms;
    for (auto it = windows_[index].begin(); it != windows_[index].end();) {
      Window& w = it->second;
      bool drop = w.hits.empty();
      if (c.spec.judged_at_window_end()) {
        if (!w.hits.empty() && (now == INT64_MAX || now >= w.start + span)) {
          const double value = value_of(c, w);
          if (fires(c, value)) emit(index, it->first, w, value, out);
          drop = true;
        }
      } else {
        TimeMs newest = INT64_MIN;
        for (const auto& h : w.hits) newest = std::max(newest, h.time);
        // Every match is out of the timespan of any later one: this window cannot fire.
        drop = drop || now == INT64_MAX || now >= newest + span;
      }
      if (drop) {
        dirty_.push_back(key_of(index, it->first));
        it = windows_[index].erase(it);
      } else {
        ++it;
      }
    }
  }
  drain_chained(out);
  // Groups live in hash maps: report in time order, not in the maps' order.
  std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(first_new), out.end(),
                   [](const auto& a, const auto& b) {
                     return std::tie(a.last, a.correlation, a.group) <
                            std::tie(b.last, b.correlation, b.group);
                   });
}

std::vector<std::string> Correlator::take_dirty() {
  std::sort(dirty_.begin(), dirty_.end());
  dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
  return std::exchange(dirty_, {});
}

const Correlator::Window* Correlator::window(const std::string& key) const {
  const size_t zero = key.find('\0');
  if (zero == std::string::npos) return nullptr;
  const std::string_view id(key.data(), zero);
  const auto& cs = rules_->correlations();
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].info.id != id) continue;
    auto it = windows_[i].find(key.substr(zero + 1));
    if (it == windows_[i].end() || it->second.hits.empty()) return nullptr;
    return &it->second;
  }
  return nullptr;
}

void Correlator::erase(const std::string& key) {
  const size_t zero = key.find('\0');
  if (zero == std::string::npos) return;
  const std::string_view id(key.data(), zero);
  const auto& cs = rules_->correlations();
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].info.id == id) windows_[i].erase(key.substr(zero + 1));
  }
}

std::string Correlator::encode(const Window& w) {
  std::string out;
  out += '\x01';
  put_u64(out, static_cast<uint64_t>(w.start));
  put_u32(out, static_cast<uint32_t>(w.hits.size()));
  for (const auto& h : w.hits) {
    put_u64(out, static_cast<uint64_t>(h.time));
    put_u32(out, h.base);
    put_str(out, h.value);
    put_str(out, h.ref);
  }
  return out;
}

bool Correlator::restore(const std::string& key, std::string_view encoded) {
  const size_t zero = key.find('\0');
  if (zero == std::string::npos || encoded.empty() || encoded[0] != '\x01') return false;
  const std::string_view id(key.data(), zero);
  const auto& cs = rules_->correlations();
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].info.id != id) continue;
    Reader r{encoded, 1};
    Window w;
    uint64_t start = 0;
    uint32_t n = 0;
    if (!r.u64(start) || !r.u32(n) || n > kMaxHitsPerGroup) return false;
    w.start = static_cast<TimeMs>(start);
    w.hits.resize(n);
    for (auto& h : w.hits) {
      uint64_t t = 0;
      if (!r.u64(t) || !r.u32(h.base) || h.base >= cs[i].bases.size() || !r.str(h.value) ||
          !r.str(h.ref))
        return false;
      h.time = static_cast<TimeMs>(t);
    }
    if (r.pos != encoded.size()) return false;
    windows_[i][key.substr(zero + 1)] = std::move(w);
    return true;
  }
  return false;  // a correlation no longer in the rule set: its state is dropped
}

}  // namespace vigil::match
