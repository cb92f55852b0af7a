#include "configured_rules.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

#include "vigil/core/thread_name.h"
#include "vigil/ingest/rollout.h"

namespace vigil::app {

namespace fs = std::filesystem;

namespace {

bool is_rule_file(const fs::path& p) {
  const auto ext = p.extension();
  return ext == ".yml" || ext == ".yaml";
}

// Calls `visit(path, name in the bundle)` for every rule file of the configured roots, in a
// stable order (sorted by name within each root).
Status each_rule_file(const Config& config,
                      const std::function<Status(const fs::path&, const std::string&)>& visit) {
  for (size_t i = 0; i < config.rules.size(); ++i) {
    const fs::path root(config.rules[i]);
    const std::string prefix =
        config.rules.size() == 1 ? "rules/" : "rules/" + std::to_string(i) + "/";
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
      if (auto s = visit(root, prefix + root.filename().string()); !s) return s;
      continue;
    }
    std::vector<std::pair<std::string, fs::path>> files;
    for (auto it = fs::recursive_directory_iterator(
             root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename().string().starts_with(".")) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!is_rule_file(it->path()) || !it->is_regular_file(ec)) continue;  // follows links
      files.emplace_back(it->path().lexically_relative(root).generic_string(), it->path());
    }
    if (ec) return Status::io_error("cannot read '" + root.string() + "': " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& [name, path] : files)
      if (auto s = visit(path, prefix + name); !s) return s;
  }
  return Status::ok();
}

Expected<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Status::io_error("cannot read '" + p.string() + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io_error("cannot read '" + p.string() + "'");
  return ss.str();
}

}  // namespace

Expected<match::Bundle> configured_bundle(const Config& config) {
  std::vector<match::BundleFile> files;
  auto mapping = read_file(config.mapping);
  if (!mapping) return mapping.status();
  files.push_back({"mapping.yml", std::move(*mapping)});
  std::string manifest =
      "format_version: 1\nname: configured\ndescription: the rules and mapping vigild was "
      "started with\nmapping: mapping.yml\nrules: [rules]\n";
  if (!config.select.is_default()) {
    manifest += "select:\n";
    std::istringstream lines(config.select.to_yaml());
    for (std::string line; std::getline(lines, line);) manifest += "  " + line + "\n";
  }
  files.push_back({"manifest.yml", std::move(manifest)});
  auto s = each_rule_file(config, [&](const fs::path& path, const std::string& name) -> Status {
    auto content = read_file(path);
    if (!content) return content.status();
    files.push_back({name, std::move(*content)});
    return Status::ok();
  });
  if (!s) return s;
  return match::Bundle::from_files(std::move(files));
}

Expected<uint64_t> configured_fingerprint(const Config& config) {
  XXH3_state_t* state = XXH3_createState();
  if (!state) return Status::internal("out of memory");
  XXH3_64bits_reset(state);
  auto add = [&](const fs::path& path, const std::string& name) -> Status {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return Status::io_error("cannot read '" + path.string() + "'");
    const uint64_t parts[] = {static_cast<uint64_t>(st.st_size), static_cast<uint64_t>(st.st_ino),
                              static_cast<uint64_t>(st.st_dev),
                              static_cast<uint64_t>(st.st_mtim.tv_sec),
                              static_cast<uint64_t>(st.st_mtim.tv_nsec)};
    XXH3_64bits_update(state, name.data(), name.size() + 1);
    XXH3_64bits_update(state, parts, sizeof parts);
    return Status::ok();
  };
  Status s = add(config.mapping, "mapping.yml");
  if (s) s = each_rule_file(config, add);
  const uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (!s) return s;
  return h;
}

RulesWatch::RulesWatch(const Config& config, ingest::Rollout& rollout, MetricsRegistry& metrics,
                       std::chrono::milliseconds interval)
    : config_(config),
      rollout_(rollout),
      interval_(interval),
      submitted_(metrics.counter("vigil_rules_watch_submissions_total",
                                 "Configured rule changes submitted as bundles, by outcome",
                                 {{"outcome", "accepted"}})),
      refused_(metrics.counter("vigil_rules_watch_submissions_total",
                               "Configured rule changes submitted as bundles, by outcome",
                               {{"outcome", "refused"}})),
      errors_(metrics.counter("vigil_rules_watch_errors_total",
                              "Configured rules that could not be read or submitted")) {}

RulesWatch::~RulesWatch() { stop(); }

void RulesWatch::start() {
  thread_ = std::thread([this] {
    set_thread_name("vigil:ruleswatch");
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval_, [this] { return stopping_; })) {
      lock.unlock();
      check();
      lock.lock();
    }
  });
}

void RulesWatch::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RulesWatch::check() {
  auto fp = configured_fingerprint(config_);
  if (!fp) {
    // A file that vanishes between listing and stat (an edit in progress) is looked at again
    // at the next interval; one that stays unreadable is counted every time.
    errors_.inc();
    spdlog::warn("rules watch: {}", fp.status().to_string());
    return;
  }
  if (*fp == seen_) return;
  if (*fp != pending_) {  // changed since the last look: wait until it holds still
    pending_ = *fp;
    return;
  }
  seen_ = *fp;
  auto bundle = configured_bundle(config_);
  if (!bundle) {
    errors_.inc();
    spdlog::error("rules watch: the configured rules changed and cannot be read: {}",
                  bundle.status().to_string());
    return;
  }
  auto sub = rollout_.submit_changed_config(*bundle);
  if (!sub) {
    errors_.inc();
    spdlog::error("rules watch: submitting the configured rules failed: {}",
                  sub.status().to_string());
    return;
  }
  if (!*sub) return;  // the same content as submitted last (e.g. touched, not changed)
  const ingest::SubmitResult& r = **sub;
  if (r.valid) {
    submitted_.inc();
    spdlog::info("rules watch: the configured rules changed: bundle {} {}{}", r.version,
                 r.stored ? "stored" : "already stored",
                 r.rollout_started ? ", rollout started" : "");
  } else {
    refused_.inc();
    spdlog::error(
        "rules watch: the configured rules changed but bundle {} does not validate; "
        "the running bundle stays: {}",
        r.version, r.json.size() > 4000 ? r.json.substr(0, 4000) + "..." : r.json);
  }
}

}  // namespace vigil::app
