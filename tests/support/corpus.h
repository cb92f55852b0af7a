#pragma once
// Where the shared SigmaHQ corpus is: beside the checkout (../shared/corpus), else
// /work/shared/corpus; VIGIL_CORPUS_DIR overrides. Tests that need it fail, not skip, when it
// is absent. Include from a test target (VIGIL_SOURCE_DIR is defined for those).

#include <cstdlib>
#include <filesystem>

namespace vigil::test {

inline std::filesystem::path corpus_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("VIGIL_CORPUS_DIR"); env && *env) return env;
  for (const fs::path& p :
       {fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus", fs::path("/work/shared/corpus")}) {
    if (fs::exists(p / "sigma_public" / "manifest.jsonl")) return p;
  }
  return fs::path(VIGIL_SOURCE_DIR) / ".." / "shared" / "corpus";
}

}  // namespace vigil::test
