#include "vigil/core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace vigil {
namespace {

std::string escape_label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first;
    out += "=\"";
    out += escape_label_value(labels[i].second);
    out += '"';
  }
  out += '}';
  return out;
}

// The shortest text that reads back as `v` (0.1, not 0.10000000000000001).
std::string format_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
  char num[64];
  auto [end, ec] = std::to_chars(num, num + sizeof num, v);
  return ec == std::errc() ? std::string(num, end) : "NaN";
}

// `labels` rendered ("{a=\"b\"}" or "") with le="bound" added.
std::string with_le(const std::string& labels, const std::string& le) {
  if (labels.empty()) return "{le=\"" + le + "\"}";
  return labels.substr(0, labels.size() - 1) + ",le=\"" + le + "\"}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

uint64_t Histogram::cumulative(size_t i) const {
  uint64_t n = 0;
  for (size_t b = 0; b <= i && b <= bounds_.size(); ++b)
    n += buckets_[b].load(std::memory_order_relaxed);
  return n;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const Labels& labels) {
  MutexLock lock(mu_);
  Family& f = families_[name];
  if (f.help.empty()) f.help = help;
  f.type = Family::Type::kCounter;
  auto& slot = f.counters[render_labels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const Labels& labels) {
  MutexLock lock(mu_);
  Family& f = families_[name];
  if (f.help.empty()) f.help = help;
  f.type = Family::Type::kGauge;
  auto& slot = f.gauges[render_labels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> bounds, const Labels& labels) {
  MutexLock lock(mu_);
  Family& f = families_[name];
  if (f.help.empty()) f.help = help;
  f.type = Family::Type::kHistogram;
  auto& slot = f.histograms[render_labels(labels)];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

void MetricsRegistry::remove_gauge(const std::string& name, const Labels& labels) {
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) it->second.gauges.erase(render_labels(labels));
}

uint64_t MetricsRegistry::counter_sum(const std::string& name, const Labels& subset) const {
  std::vector<std::string> needles;
  for (const auto& [k, v] : subset) needles.push_back(k + "=\"" + escape_label_value(v) + "\"");
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  uint64_t n = 0;
  for (const auto& [labels, c] : it->second.counters) {
    bool all = true;
    for (const auto& needle : needles) {
      const size_t at = labels.find(needle);
      // A whole label: preceded by '{' or ',' and followed by ',' or '}'.
      all &= at != std::string::npos && (labels[at - 1] == '{' || labels[at - 1] == ',') &&
             (labels[at + needle.size()] == ',' || labels[at + needle.size()] == '}');
    }
    if (all) n += c->value();
  }
  return n;
}

uint64_t MetricsRegistry::counter_value(const std::string& name, const Labels& labels) const {
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto c = it->second.counters.find(render_labels(labels));
  return c == it->second.counters.end() ? 0 : c->second->value();
}

std::string MetricsRegistry::render_prometheus() const {
  MutexLock lock(mu_);
  std::string out;
  char num[64];
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name +
           (f.type == Family::Type::kCounter ? " counter\n"
            : f.type == Family::Type::kGauge ? " gauge\n"
                                             : " histogram\n");
    for (const auto& [labels, c] : f.counters) {
      std::snprintf(num, sizeof num, " %llu\n", static_cast<unsigned long long>(c->value()));
      out += name + labels + num;
    }
    for (const auto& [labels, g] : f.gauges) {
      out += name + labels + " " + format_number(g->value()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
      for (size_t i = 0; i <= h->bounds().size(); ++i) {
        const std::string le = i < h->bounds().size() ? format_number(h->bounds()[i]) : "+Inf";
        out +=
            name + "_bucket" + with_le(labels, le) + " " + std::to_string(h->cumulative(i)) + "\n";
      }
      out += name + "_sum" + labels + " " + format_number(h->sum()) + "\n";
      out += name + "_count" + labels + " " + std::to_string(h->count()) + "\n";
    }
  }
  return out;
}

}  // namespace vigil
