#pragma once
// The `vigil` CLI's rule content commands:
//   vigil bundle validate PATH [--mapping F] [--max-rule-cost-ns N] [--reference-events F.jsonl]
//   [--json]
//                                  validates a bundle locally (no server): exit 0 valid, 1 refused
//   vigil bundle push PATH         validates and stores it in a running vigild (POST
//   /api/v1/bundles) vigil bundle list | show V | dry-run V [--since 1h] [--until T] [--max-events
//   N] vigil rollout status | audit | start V | promote | pause | resume | rollback | policy P
//                                  [--reason TEXT]
// The server commands read the server and token like `vigil alerts`; they print the server's
// JSON (indented; --json: compact) and exit 1 with its problem detail on an error.

#include <rapidjson/document.h>

#include <CLI/CLI.hpp>
#include <string>

#include "api_commands.h"

namespace vigil::app {

class ContentCommands {
 public:
  explicit ContentCommands(CLI::App& cli);
  // The exit code of the command parsed, or -1 if none of these was.
  int run() const;

 private:
  int validate() const;
  // `human`, if given, renders the answer for people (without --json).
  int call(const std::string& method, const std::string& target, const std::string& body,
           int ok_status, std::string (*human)(const rapidjson::Document&) = nullptr) const;

  CLI::App* validate_ = nullptr;
  CLI::App* push_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* dry_run_ = nullptr;
  CLI::App* status_ = nullptr;
  CLI::App* audit_ = nullptr;
  CLI::App* start_ = nullptr;
  CLI::App* promote_ = nullptr;
  CLI::App* pause_ = nullptr;
  CLI::App* resume_ = nullptr;
  CLI::App* rollback_ = nullptr;
  CLI::App* policy_ = nullptr;
  ApiTarget target_;
  bool json_ = false;
  std::string path_, mapping_, reference_, since_, until_, reason_, policy_name_;
  uint64_t version_ = 0;
  size_t max_events_ = 0;
  int64_t max_rule_cost_ns_ = 200000;
};

}  // namespace vigil::app
