// Reading events line by line in blocks (app/src/line_reader.h): lines that straddle blocks,
// empty lines, a last line without '\n', and a pipe written while it is read.

#include "line_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

namespace vigil::app {
namespace {

std::vector<std::string> read_all(int fd, size_t block) {
  LineReader in(fd, block);
  std::vector<std::string> out;
  std::string_view line;
  while (in.next(line)) out.emplace_back(line);
  EXPECT_TRUE(in.error().is_ok()) << in.error().to_string();
  return out;
}

// The lines `text` reads as, through a pipe written by another thread in `chunk`-byte writes.
std::vector<std::string> through_pipe(const std::string& text, size_t block, size_t chunk) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    for (size_t at = 0; at < text.size(); at += chunk) {
      const size_t n = std::min(chunk, text.size() - at);
      EXPECT_EQ(::write(fds[1], text.data() + at, n), static_cast<ssize_t>(n));
    }
    ::close(fds[1]);
  });
  auto lines = read_all(fds[0], block);
  writer.join();
  ::close(fds[0]);
  return lines;
}

TEST(LineReader, LinesAcrossBlocksEmptyLinesAndALastLineWithoutNewline) {
  const std::string text = "{\"a\":1}\n\n{\"b\":\"" + std::string(100, 'x') + "\"}\nlast";
  const std::vector<std::string> want = {"{\"a\":1}", "",
                                         "{\"b\":\"" + std::string(100, 'x') + "\"}", "last"};
  for (const size_t block : {size_t{1}, size_t{3}, size_t{7}, size_t{64}, size_t{1} << 20}) {
    for (const size_t chunk : {size_t{1}, size_t{5}, size_t{4096}}) {
      EXPECT_EQ(through_pipe(text, block, chunk), want) << "block " << block << " chunk " << chunk;
    }
  }
}

TEST(LineReader, EmptyInputAndATrailingNewlineGiveNoExtraLine) {
  EXPECT_TRUE(through_pipe("", 16, 16).empty());
  EXPECT_EQ(through_pipe("one\n", 16, 16), std::vector<std::string>{"one"});
}

TEST(LineReader, ALineOverTheBoundEndsTheInputWithAnError) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string text = "ok\n" + std::string(1000, 'x') + "\nafter\n";
  ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fds[1]);
  LineReader in(fds[0], 16, 100);
  std::string_view line;
  ASSERT_TRUE(in.next(line));
  EXPECT_EQ(line, "ok");
  EXPECT_FALSE(in.next(line));
  EXPECT_NE(in.error().message().find("longer than 100 bytes"), std::string::npos)
      << in.error().to_string();
  ::close(fds[0]);
}

TEST(LineReader, AReadErrorIsReported) {
  LineReader in(-1);
  std::string_view line;
  EXPECT_FALSE(in.next(line));
  EXPECT_FALSE(in.error().is_ok());
}

}  // namespace
}  // namespace vigil::app
