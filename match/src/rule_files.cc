// Reading rule files from disk: every *.yml / *.yaml under the given paths.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vigil/match/ruleset.h"

namespace vigil::match {
namespace fs = std::filesystem;

std::vector<SigmaRule> load_rules(const std::vector<std::string>& paths, CompileReport& report) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(
               p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const auto ext = it->path().extension();
        if (it->is_regular_file(ec) && (ext == ".yml" || ext == ".yaml"))
          files.push_back(it->path().string());
      }
      if (ec) report.rules.push_back({p, "", "", Status::io_error(p + ": " + ec.message()), {}});
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());

  std::vector<SigmaRule> rules;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      report.rules.push_back({f, "", "", Status::io_error("cannot read '" + f + "'"), {}});
      ++report.unsupported;
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    for (auto& rule : parse_sigma_documents(ss.str(), f)) {
      if (!rule) {
        report.rules.push_back({f, "", "", rule.status(), {}});
        ++report.unsupported;
        continue;
      }
      rules.push_back(std::move(*rule));
    }
  }
  return rules;
}

}  // namespace vigil::match
