// The configured rules as a bundle, read from a directory laid out as the kubelet lays out a
// mounted ConfigMap, and the fingerprint the rules watch compares (app/src/configured_rules.cc).

#include "configured_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "support/temp_dir.h"

namespace vigil::app {
namespace {

namespace fs = std::filesystem;

const std::string kRule = R"(title: Whoami
id: 1fc0eb53-c7e0-4dbf-8eb6-dddb8f1a094e
logsource: {category: process_creation, product: windows}
detection:
  sel: {Image|endswith: '\whoami.exe'}
  condition: sel
level: medium
)";

// A ConfigMap volume as the kubelet writes it: the files in a hidden timestamped directory,
// `..data` a link to it, and each key a link through `..data`. An update writes a new
// directory and renames a new `..data` link over the old one (one atomic step).
class KubeletVolume {
 public:
  explicit KubeletVolume(fs::path root) : root_(std::move(root)) { fs::create_directories(root_); }
  void write(const std::map<std::string, std::string>& files) {
    const std::string dir = "..2026_12_07_00_00_00." + std::to_string(++generation_);
    fs::create_directories(root_ / dir);
    for (const auto& [name, content] : files) std::ofstream(root_ / dir / name) << content;
    fs::create_directory_symlink(dir, root_ / "..data_tmp");
    fs::rename(root_ / "..data_tmp", root_ / "..data");  // the atomic swap
    for (const auto& [name, content] : files)
      if (!fs::is_symlink(root_ / name))
        fs::create_symlink(fs::path("..data") / name, root_ / name);
    if (generation_ > 1)
      fs::remove_all(root_ / ("..2026_12_07_00_00_00." + std::to_string(generation_ - 1)));
  }
  const fs::path& root() const { return root_; }

 private:
  fs::path root_;
  int generation_ = 0;
};

Config config_for(const fs::path& rules, const fs::path& mapping) {
  Config c;
  c.rules = {rules.string()};
  c.mapping = mapping.string();
  return c;
}

TEST(ConfiguredRules, AKubeletVolumeIsReadOnceThroughItsLinks) {
  test::TempDir dir{"configured"};
  const fs::path mapping = dir / "mapping.yml";
  std::ofstream(mapping) << "name: test\nfields: {}\n";
  KubeletVolume volume(dir / "rules");
  volume.write({{"whoami.yml", kRule}, {"other.yaml", kRule}});
  std::ofstream(volume.root() / ".editor-swap.yml") << "not: a rule\n";

  auto bundle = configured_bundle(config_for(volume.root(), mapping));
  ASSERT_TRUE(bundle) << bundle.status().to_string();
  std::vector<std::string> names;
  for (const auto& f : bundle->files()) names.push_back(f.path);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"manifest.yml", "mapping.yml", "rules/other.yaml",
                                             "rules/whoami.yml"}));
}

TEST(ConfiguredRules, TheFingerprintChangesWithTheSwapAndOnlyThen) {
  test::TempDir dir{"configured"};
  const fs::path mapping = dir / "mapping.yml";
  std::ofstream(mapping) << "name: test\nfields: {}\n";
  KubeletVolume volume(dir / "rules");
  volume.write({{"whoami.yml", kRule}});
  const Config c = config_for(volume.root(), mapping);

  auto first = configured_fingerprint(c);
  ASSERT_TRUE(first) << first.status().to_string();
  EXPECT_EQ(*configured_fingerprint(c), *first);  // nothing changed
  auto before = configured_bundle(c);

  volume.write({{"whoami.yml", kRule + "tags: [attack.discovery]\n"}});
  auto second = configured_fingerprint(c);
  ASSERT_TRUE(second);
  EXPECT_NE(*second, *first);
  auto after = configured_bundle(c);
  ASSERT_TRUE(before && after);
  EXPECT_NE(before->hash(), after->hash());

  std::ofstream(mapping, std::ios::app) << "# changed\n";  // the mapping counts too
  EXPECT_NE(*configured_fingerprint(c), *second);
}

TEST(ConfiguredRules, AMissingRuleRootIsAnError) {
  test::TempDir dir{"configured"};
  const fs::path mapping = dir / "mapping.yml";
  std::ofstream(mapping) << "name: test\nfields: {}\n";
  const Config c = config_for(dir / "nowhere.yml", mapping);
  EXPECT_FALSE(configured_fingerprint(c));
  EXPECT_FALSE(configured_bundle(c));
}

}  // namespace
}  // namespace vigil::app
