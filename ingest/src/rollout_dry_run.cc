// Rollout::dry_run: a stored bundle and the active one over the stored events of a time
// range, compared rule by rule (detections only; correlations are not evaluated).

#include <algorithm>
#include <map>

#include "rollout_internal.h"
#include "vigil/core/event.h"
#include "vigil/match/matcher.h"

namespace vigil::ingest {

using namespace content;
using Writer = JsonWriter;

namespace {

// One rule's matches under each bundle, and the events (samples of at most five each) that
// only one of them matched.
struct RuleCount {
  std::string title;
  bool in_active = false, in_candidate = false;
  uint64_t active = 0, candidate = 0, gained = 0, lost = 0;
  std::vector<std::string> gained_samples, lost_samples;

  const char* status() const {
    if (in_active && in_candidate) return gained || lost ? "changed" : "unchanged";
    return in_candidate ? "new" : "vanished";
  }
};

struct DryRunReport {
  uint64_t version = 0, active = 0;
  std::string hash;  // the candidate's content hash
  TimeMs since = INT64_MIN, until = INT64_MAX;
  uint64_t events = 0, invalid = 0;
  bool partial = false;                    // stopped at max_events
  std::map<std::string, RuleCount> rules;  // by rule id

  std::string to_json() const;
};

// Matches events with both bundles and counts into a report.
class Comparison {
 public:
  Comparison(const match::CompiledBundle& current, const match::CompiledBundle& candidate,
             DryRunReport& report)
      : current_(current), candidate_(candidate), report_(report) {
    for (const auto& r : current.rules->rules()) {
      auto& c = report.rules[r.id];
      c.title = r.title;
      c.in_active = true;
    }
    for (const auto& r : candidate.rules->rules()) {
      auto& c = report.rules[r.id];
      c.title = r.title;
      c.in_candidate = true;
    }
  }

  Status init() {
    auto a = match::Matcher::create(current_.rules);
    if (!a) return a.status();
    auto c = match::Matcher::create(candidate_.rules);
    if (!c) return c.status();
    active_matcher_ = std::move(*a);
    candidate_matcher_ = std::move(*c);
    return Status::ok();
  }

  void add(const store::StoredEvent& e) {
    ++report_.events;
    if (!ids_of(current_, *active_matcher_, e.payload, active_ids_) ||
        !ids_of(candidate_, *candidate_matcher_, e.payload, candidate_ids_)) {
      ++report_.invalid;
      return;
    }
    for (const auto& id : active_ids_) {
      auto& c = report_.rules[id];
      ++c.active;
      if (!std::binary_search(candidate_ids_.begin(), candidate_ids_.end(), id)) {
        ++c.lost;
        if (c.lost_samples.size() < kSamples) c.lost_samples.push_back(sample(e));
      }
    }
    for (const auto& id : candidate_ids_) {
      auto& c = report_.rules[id];
      ++c.candidate;
      if (!std::binary_search(active_ids_.begin(), active_ids_.end(), id)) {
        ++c.gained;
        if (c.gained_samples.size() < kSamples) c.gained_samples.push_back(sample(e));
      }
    }
  }

 private:
  static constexpr size_t kSamples = 5;

  static std::string sample(const store::StoredEvent& e) {
    return e.stream + "/" + std::to_string(e.partition) + "@" + std::to_string(e.offset);
  }

  // The ids of the rules of `b` the event matches, sorted; false if it does not parse.
  bool ids_of(const match::CompiledBundle& b, match::Matcher& m, const std::string& payload,
              std::vector<std::string>& out) {
    out.clear();
    if (parser_.parse(payload, b.rules->fields(), event_) != ParseError::kNone) return false;
    hits_.clear();
    if (!m.match(event_, hits_)) return true;
    for (uint32_t h : hits_) out.push_back(b.rules->rules()[h].id);
    std::sort(out.begin(), out.end());
    return true;
  }

  const match::CompiledBundle& current_;
  const match::CompiledBundle& candidate_;
  DryRunReport& report_;
  std::unique_ptr<match::Matcher> active_matcher_, candidate_matcher_;
  EventParser parser_;
  Event event_;
  std::vector<uint32_t> hits_;
  std::vector<std::string> active_ids_, candidate_ids_;
};

std::string DryRunReport::to_json() const {
  uint64_t total_active = 0, total_candidate = 0, total_gained = 0, total_lost = 0;
  for (const auto& [id, c] : rules) {
    total_active += c.active;
    total_candidate += c.candidate;
    total_gained += c.gained;
    total_lost += c.lost;
  }
  auto strings = [](Writer& w, const std::vector<std::string>& xs) {
    w.StartArray();
    for (const auto& x : xs) w.String(x);
    w.EndArray();
  };
  return write_json([&](Writer& w) {
    w.StartObject();
    kv(w, "version", version);
    kv(w, "hash", hash);
    kv(w, "active", active);
    kv(w, "since", since == INT64_MIN ? std::string() : format_rfc3339(since));
    kv(w, "until", until == INT64_MAX ? std::string() : format_rfc3339(until));
    kv(w, "events", events);
    kv(w, "invalid_events", invalid);
    w.Key("partial");
    w.Bool(partial);
    kv(w, "correlations", "not evaluated (detections only)");
    w.Key("totals");
    w.StartObject();
    kv(w, "active_matches", total_active);
    kv(w, "candidate_matches", total_candidate);
    kv(w, "gained", total_gained);
    kv(w, "lost", total_lost);
    w.EndObject();
    w.Key("rules");
    w.StartArray();
    for (const auto& [id, c] : rules) {
      w.StartObject();
      kv(w, "id", id);
      kv(w, "title", c.title);
      kv(w, "status", c.status());
      kv(w, "active_matches", c.active);
      kv(w, "candidate_matches", c.candidate);
      kv(w, "gained", c.gained);
      kv(w, "lost", c.lost);
      w.Key("gained_samples");
      strings(w, c.gained_samples);
      w.Key("lost_samples");
      strings(w, c.lost_samples);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
}

}  // namespace

namespace {

// Both bundles over the stored events of [since, until), at most max_events.
Expected<std::string> compare_over_events(const store::Store& store,
                                          const match::CompiledBundle& current,
                                          const match::CompiledBundle& candidate,
                                          DryRunReport report, size_t max_events) {
  Comparison comparison(current, candidate, report);
  if (auto s = comparison.init(); !s) return s;
  auto s = store.scan_events(report.since, report.until, [&](const store::StoredEvent& e) {
    if (report.events >= max_events) {
      report.partial = true;
      return false;
    }
    comparison.add(e);
    return true;
  });
  if (!s) return s;
  return report.to_json();
}

}  // namespace

Expected<std::string> Rollout::dry_run(uint64_t version, TimeMs since, TimeMs until,
                                       size_t max_events) const {
  std::shared_ptr<const match::CompiledBundle> candidate, current;
  {
    std::lock_guard lock(mu_);
    current = state_->compiled.at(state_->active);
    auto text = store_.get_meta(num_key(kInfoPrefix, version));
    if (!text) return text.status();
    if (!*text) return Status::not_found("no bundle version " + std::to_string(version));
    auto info = BundleInfoRecord::from_json(**text);
    if (!info) return info.status();
    if (info->status == "refused") {
      return Status::invalid("bundle " + std::to_string(version) +
                             " was refused by validation and cannot run");
    }
    auto c = load_compiled(version);
    if (!c) return c.status();
    candidate = *c;
  }
  DryRunReport report;
  report.version = version;
  report.hash = candidate->hash;
  report.active = current->version;
  report.since = since;
  report.until = until;
  return compare_over_events(store_, *current, *candidate, std::move(report), max_events);
}

Expected<std::string> Rollout::dry_run_bundle(const match::Bundle& bundle, TimeMs since,
                                              TimeMs until, size_t max_events, bool lenient) const {
  if (!options_.validation.default_mapping) return Status::invalid("no default mapping configured");
  auto rs = match::compile_bundle(bundle, *options_.validation.default_mapping, lenient);
  if (!rs) return Status::invalid("the bundle does not compile: " + rs.status().message());
  auto candidate = std::make_shared<match::CompiledBundle>();
  candidate->hash = bundle.hash();
  candidate->rules = std::move(*rs);
  std::shared_ptr<const match::CompiledBundle> current;
  {
    std::lock_guard lock(mu_);
    current = state_->compiled.at(state_->active);
  }
  DryRunReport report;
  report.hash = candidate->hash;
  report.active = current->version;
  report.since = since;
  report.until = until;
  return compare_over_events(store_, *current, *candidate, std::move(report), max_events);
}

}  // namespace vigil::ingest
