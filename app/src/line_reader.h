#pragma once
// Lines of a file descriptor, read in large blocks: a pipe (`kcat ... | vigil match --events -`,
// `zcat | ...`) is read as fast as a file. std::getline on std::cin goes through stdio a few
// bytes at a time and made piped input 2-8x slower than the same events from a file.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "vigil/core/status.h"

namespace vigil::app {

class LineReader {
 public:
  // A line longer than `max_line_bytes` ends the input with an error: it is not an event, and
  // holding it whole would let one missing newline take all the memory.
  explicit LineReader(int fd, size_t block_bytes = 1 << 20, size_t max_line_bytes = 64 << 20)
      : fd_(fd), block_(block_bytes), max_line_(max_line_bytes) {}

  // The next line, without its '\n' (a final line without one included); false at the end of
  // the input or on an error (then error() says which). The view is valid until the next call.
  bool next(std::string_view& line) {
    while (true) {
      // Bytes before scanned_ were searched already: a long line is scanned once, not once
      // per block.
      const size_t from = std::max(pos_, scanned_);
      if (const void* nl = std::memchr(buf_.data() + from, '\n', buf_.size() - from)) {
        const size_t end = static_cast<const char*>(nl) - buf_.data();
        line = std::string_view(buf_.data() + pos_, end - pos_);
        pos_ = end + 1;
        return true;
      }
      scanned_ = buf_.size();
      if (buf_.size() - pos_ > max_line_) {
        error_ = Status::invalid("a line longer than " + std::to_string(max_line_) +
                                 " bytes (no newline): not an event");
        buf_.clear();
        pos_ = scanned_ = 0;
        eof_ = true;
        return false;
      }
      if (eof_) {
        if (pos_ == buf_.size()) return false;
        line = std::string_view(buf_.data() + pos_, buf_.size() - pos_);
        pos_ = buf_.size();
        return true;
      }
      fill();
    }
  }

  const Status& error() const { return error_; }

 private:
  // Keeps the unfinished line and appends the next block.
  void fill() {
    buf_.erase(0, pos_);
    scanned_ -= std::min(scanned_, pos_);
    pos_ = 0;
    const size_t have = buf_.size();
    buf_.resize(have + block_);
    ssize_t n;
    do {
      n = ::read(fd_, buf_.data() + have, block_);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      error_ = Status::io_error(std::string("read failed: ") + std::strerror(errno));
      n = 0;
    }
    buf_.resize(have + static_cast<size_t>(n));
    if (n == 0) eof_ = true;
  }

  const int fd_;
  const size_t block_;
  const size_t max_line_;
  std::string buf_;
  size_t pos_ = 0;
  size_t scanned_ = 0;  // buf_ holds no '\n' in [pos_, scanned_)
  bool eof_ = false;
  Status error_;
};

}  // namespace vigil::app
