#pragma once
// The `vigil` CLI's API client commands: alerts, alerts show, events, stats, rules active. Each
// reads the server and token from flags, else VIGIL_SERVER / VIGIL_TOKEN, else the local defaults
// (http://127.0.0.1:8080 and the token vigild made in ./data), prints a table for people
// or, with --json, one JSON document per line for scripts, and exits 0, or 1 with the
// server's problem detail on stderr.

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace vigil::app {

struct ApiTarget {
  std::string server;   // empty: VIGIL_SERVER, else http://127.0.0.1:8080
  std::string token;    // empty: VIGIL_TOKEN, else ./data/api-token
  std::string ca_file;  // https: CA bundle to trust; empty: VIGIL_CA_FILE, else the system's
};

std::string server_or_default(const std::string& flag);
// Appends "?name=value" or "&name=value" (value percent-encoded) unless value is empty.
void add_param(std::string& target, const char* name, const std::string& value);
std::string token_or_default(const std::string& flag);
std::string ca_file_or_default(const std::string& flag);
// Adds --server, --token and --ca-file (into `target`) to a client command.
void add_target_options(CLI::App* command, ApiTarget& target);

// Adds `alerts` (with `show`), `events`, `stats` and `rules active` to `cli` (which must have
// `rules`); run() runs whichever was parsed and returns its exit code, or -1 if none was.
class ApiCommands {
 public:
  explicit ApiCommands(CLI::App& cli);
  int run() const;

 private:
  struct Page {
    std::string since, until, cursor;
    size_t limit = 50;
    bool all = false;
    bool json = false;
  };
  int alerts() const;
  int alert_show() const;
  int events() const;
  int stats() const;
  int rules() const;
  int outputs_status() const;
  int outputs_test() const;

  CLI::App* alerts_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* events_ = nullptr;
  CLI::App* stats_ = nullptr;
  CLI::App* rules_ = nullptr;
  CLI::App* outputs_ = nullptr;
  CLI::App* outputs_status_ = nullptr;
  CLI::App* outputs_test_ = nullptr;
  std::string output_name_;
  ApiTarget target_;
  Page page_;
  std::string rule_, host_, severity_, tag_, text_, id_;
  bool full_ = false;
  std::vector<std::string> fields_;
};

}  // namespace vigil::app
