#pragma once
// Correlator: the windows of Sigma correlation rules over a stream of base rule matches.
//
// observe() takes each match of a base rule that feeds a correlation, with the event's time
// and a caller's reference for it (an alert id, an event index), and keeps per
// (correlation, group-by values) a window of the matches within the timespan:
//   event_count       matches in the window
//   value_count       distinct values of the condition field in the window
//   temporal          distinct base rules matched in the window (default: all of them)
//   temporal_ordered  base rules matched in their listed order within the window (default: all)
//   value_sum, value_avg, value_min, value_max, value_median, value_percentile
//                     that metric of a numeric field over the window's matches (a match whose
//                     field holds no finite number is left out and counted)
// gt/gte conditions are judged on every match over a sliding window and fire as soon as
// they hold; lt/lte/eq/neq (and the metrics, but for value_max above a bound and value_min
// below one) can only be judged once a window is over, so they use windows
// that open with a group's first match and are judged when a later match (or advance())
// passes their end. A firing clears the group's window: a correlation fires once per window
// and group.
//
// A base may be another correlation (a chain): each of its hits is a match of the
// correlations it feeds, added once the matches of the call that fired it are (observe(),
// observe_hit(), advance()), at its window's last time; a correlation fed from elsewhere gets
// it through its caller (ingest: the repartition topic).
//
// Memory is bounded: a window keeps at most kMaxHitsPerGroup matches (oldest dropped,
// counted), and advance() drops groups whose window can no longer fire.
//
// One Correlator per worker thread over one RuleSet; not thread-safe.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "vigil/core/event.h"
#include "vigil/core/time.h"
#include "vigil/match/ruleset.h"

namespace vigil::match {

struct CorrelationHit {
  uint32_t correlation = 0;  // index into RuleSet::correlations()
  std::string group;         // the group-by values, joined by '\x1f'
  TimeMs first = 0, last = 0;
  double value = 0;               // the count (or the metric) the condition held for
  std::vector<std::string> refs;  // the matches' references, oldest first (at most kMaxRefs)
  std::string completed_by;       // the reference of the window's last match

  // The group's scope (before '\x1e'; empty without one) and its group-by values.
  std::string_view scope() const {
    const size_t sep = group.find('\x1e');
    return sep == std::string::npos ? std::string_view() : std::string_view(group).substr(0, sep);
  }
  std::string_view values() const {
    const size_t sep = group.find('\x1e');
    return sep == std::string::npos ? std::string_view(group)
                                    : std::string_view(group).substr(sep + 1);
  }
};

class Correlator {
 public:
  static constexpr size_t kMaxHitsPerGroup = 10000;
  static constexpr size_t kMaxRefs = 100;

  explicit Correlator(std::shared_ptr<const RuleSet> rules);

  // A match of base rule `rule` by `event` at `time`. Appends the correlations it completes.
  // Windows are kept per `scope` too (ingest: the Kafka partition, so that state moves with
  // its partition); a group is "<scope>\x1e<values>" (just the values when scope is empty).
  void observe(uint32_t rule, const Event& event, TimeMs time, std::string_view ref,
               std::vector<CorrelationHit>& out, std::string_view scope = {});
  // Correlations fed from elsewhere (cluster mode's repartition topic: their base matches
  // are re-keyed by group and come back through observe_hit()); observe() skips them.
  // Indexed like RuleSet::correlations(); missing entries are false.
  void set_remote(std::vector<bool> remote) { remote_ = std::move(remote); }
  bool remote(uint32_t correlation) const {
    return correlation < remote_.size() && remote_[correlation];
  }
  // A match of the correlation's base rule `base` (position in its rules) computed elsewhere:
  // `values` are the group-by values joined by '\x1f' (as observe() would have built them),
  // `value` the value_count field's value (ignored for the other types).
  void observe_hit(uint32_t correlation, uint32_t base, std::string_view values,
                   std::string_view value, TimeMs time, std::string_view ref,
                   std::vector<CorrelationHit>& out, std::string_view scope = {});
  // The value_count value of base `base` in `event` (its fields' texts joined by '\x1f') into
  // `out`; false when the event lacks one of them (it counts nothing).
  static bool counted_value(const CompiledCorrelation& c, uint32_t base, const Event& event,
                            std::string& out);
  // A chain: the group-by values of `outer` for a hit of the correlation its base `base`
  // names, from that hit's values (joined by '\x1f'), appended to `out`.
  static void chained_values(const CompiledCorrelation& outer, uint32_t base,
                             std::string_view inner_values, std::string& out);
  // How a correlation hit is referred to as a match of the correlations it feeds (ingest: the
  // id of its alert); unset: its window's last match's reference.
  void set_chain_ref(std::function<std::string(const CorrelationHit&)> ref) {
    chain_ref_ = std::move(ref);
  }
  // The group-by values of base `base` in `event`, joined by '\x1f', appended to `out`.
  static void append_group_values(const CompiledCorrelation& c, uint32_t base, const Event& event,
                                  std::string& out);
  // The index of the correlation with rule id `id`.
  std::optional<uint32_t> index_of(std::string_view id) const;
  // Forgets every window of `scope` (its partition went to another consumer).
  void forget_scope(std::string_view scope);
  // Time has reached `now`: judges the windows that ended (lt/lte/eq/neq) and forgets the
  // groups that can no longer fire. INT64_MAX: the input ended; judge every window.
  void advance(TimeMs now, std::vector<CorrelationHit>& out);

  size_t groups() const;
  uint64_t dropped_hits() const { return dropped_hits_; }
  // Matches a metric correlation left out: its field held no finite number.
  uint64_t non_numeric_values() const { return non_numeric_; }

  // A group's window, for persistence (see encode/decode).
  struct Hit {
    TimeMs time = 0;
    uint32_t base = 0;  // position in the correlation's rules
    std::string value;  // value_count: the counted fields' values; a metric: the number
    std::string ref;
  };
  struct Window {
    TimeMs start = 0;
    std::vector<Hit> hits;
  };
  // Keys "<correlation id>\0<group>" of the windows changed since the last call.
  std::vector<std::string> take_dirty();
  // The window of a key (nullptr: none, i.e. deleted), its encoding and restoring one.
  const Window* window(const std::string& key) const;
  static std::string encode(const Window& w);
  bool restore(const std::string& key, std::string_view encoded);
  // Drops the window of a key (to restore it from the store after a failed write).
  void erase(const std::string& key);

 private:
  // Adds a match to the window of group_ (already built) and judges it.
  void add(uint32_t index, uint32_t base, TimeMs time, std::string_view ref, std::string_view value,
           std::vector<CorrelationHit>& out);
  double value_of(const CompiledCorrelation& c, const Window& w);
  double metric_of(const CompiledCorrelation& c, const Window& w);
  static bool parse_metric_value(std::string_view text, double& out);
  static bool holds(const CondNode& n, const std::vector<bool>& seen);
  bool fires(const CompiledCorrelation& c, double value) const;
  void emit(uint32_t index, const std::string& group, Window& w, double value,
            std::vector<CorrelationHit>& out);
  std::string key_of(uint32_t index, const std::string& group) const;
  void queue_chained(const CorrelationHit& hit);
  void drain_chained(std::vector<CorrelationHit>& out);

  // A hit of a correlation waiting to be added to a correlation it feeds.
  struct Chained {
    uint32_t correlation = 0, base = 0;
    std::string group;
    TimeMs time = 0;
    std::string ref;
  };
  std::deque<Chained> chain_queue_;
  std::function<std::string(const CorrelationHit&)> chain_ref_;

  std::shared_ptr<const RuleSet> rules_;
  std::vector<std::unordered_map<std::string, Window>> windows_;  // per correlation, by group
  std::vector<std::string> dirty_;
  std::vector<bool> remote_;
  std::string group_;            // scratch
  std::string value_;            // scratch
  std::vector<double> numbers_;  // scratch
  uint64_t non_numeric_ = 0;
  uint64_t dropped_hits_ = 0;
};

}  // namespace vigil::match
