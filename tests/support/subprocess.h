#pragma once
// Test support: run a program with its stdout on a pipe, read lines with a deadline, and
// signal it. The child is killed (SIGKILL) when the object is destroyed if still running.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace vigil::test {

class Subprocess {
 public:
  // Starts argv[0] with the given arguments; stderr goes to `stderr_path` (or is inherited).
  Subprocess(const std::vector<std::string>& argv, const std::string& stderr_path = "");
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // The next stdout line, or nullopt at EOF or when the deadline passes.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Reads lines until one starts with `prefix`; returns it.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout);
  // Writes `line` and a newline to the child's stdin.
  bool write_line(const std::string& line);
  void signal(int sig);
  // Waits for exit; returns the exit code (128+signal if killed), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  int out_fd_ = -1;
  int in_fd_ = -1;
  std::string buffer_;
  std::optional<int> exit_code_;
};

// Runs a shell command and returns its exit code and stdout.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace vigil::test
