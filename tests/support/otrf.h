#pragma once
// The recorded lab intrusion of the shared corpus (corpus/otrf/*.zip: real machines with all
// their background noise, vigil's flat layout), one event per line in recorded order. Each zip
// is extracted once into the temporary directory with python3's zipfile (unzip is not
// installed by scripts/install-deps). No corpus: no events, and the caller says so.

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace vigil::test {

inline std::vector<std::string> otrf_events(const std::filesystem::path& corpus) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "vigil-otrf";
  std::vector<std::string> events;
  std::error_code ec;
  for (const auto& zip : fs::directory_iterator(corpus / "otrf", ec)) {
    if (zip.path().extension() != ".zip") continue;
    const fs::path done = dir / (zip.path().filename().string() + ".extracted");
    if (fs::exists(done, ec)) continue;
    fs::create_directories(dir, ec);
    const std::string cmd = "/usr/bin/python3 -m zipfile -e '" + zip.path().string() + "' '" +
                            dir.string() + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) std::ofstream{done};
  }
  std::vector<fs::path> files;
  for (const auto& f : fs::recursive_directory_iterator(dir, ec)) {
    if (f.is_regular_file() && f.path().extension() != ".extracted") files.push_back(f.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) events.push_back(std::move(line));
    }
  }
  return events;
}

}  // namespace vigil::test
