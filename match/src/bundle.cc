#include "vigil/match/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <xxhash.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vigil/core/utf8.h"

namespace vigil::match {
namespace fs = std::filesystem;

namespace {

// A relative '/'-separated path with no empty, "." or ".." segment; "" if it cannot be one.
std::string normalize_path(std::string_view raw) {
  std::string out;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    const std::string_view seg = raw.substr(i, j - i);
    if (seg == "..") return "";
    if (!seg.empty() && seg != ".") {
      if (!out.empty()) out += '/';
      out += seg;
    }
    i = j + 1;
  }
  return out;
}

bool has_yaml_extension(std::string_view p) { return p.ends_with(".yml") || p.ends_with(".yaml"); }

// Whether `path` is `prefix` itself or inside the folder `prefix`.
bool under(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  return path == prefix ||
         (path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/');
}

std::string hash_files(const std::vector<BundleFile>& files) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  for (const auto& f : files) {
    XXH3_128bits_update(st, f.path.data(), f.path.size());
    const uint64_t n = f.content.size();
    XXH3_128bits_update(st, "\0", 1);
    XXH3_128bits_update(st, &n, sizeof n);
    XXH3_128bits_update(st, f.content.data(), f.content.size());
  }
  const XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

std::string scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : std::string(); }

// Plain YAML scalars that read as JSON numbers, booleans or null stay so.
void write_yaml_json(const YAML::Node& n, std::string& out);

void write_json_string(std::string_view s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

bool is_json_number(const std::string& s) {
  if (s.empty()) return false;
  size_t i = 0;
  if (s[i] == '-') ++i;
  if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  if (s[i] == '0' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))
    return false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  }
  return i == s.size();
}

void write_yaml_json(const YAML::Node& n, std::string& out) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : n) {
        if (!first) out += ',';
        first = false;
        write_json_string(scalar(kv.first), out);
        out += ':';
        write_yaml_json(kv.second, out);
      }
      out += '}';
      break;
    }
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& v : n) {
        if (!first) out += ',';
        first = false;
        write_yaml_json(v, out);
      }
      out += ']';
      break;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "?") {  // plain, unquoted
        if (is_json_number(s)) {
          out += s;
          return;
        }
        if (s == "true" || s == "false") {
          out += s;
          return;
        }
        if (s == "null" || s == "~") {
          out += "null";
          return;
        }
      }
      write_json_string(s, out);
      break;
    }
    default:
      out += "null";
  }
}

// libarchive's message for the last error, which may be null (a fuzz finding).
std::string archive_error(struct archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "unknown error";
}

struct ArchiveWriter {
  std::string* out;
  static la_ssize_t write(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<ArchiveWriter*>(self)->out->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
};

}  // namespace

Expected<std::string> yaml_event_to_json(const std::string& yaml_text) {
  try {
    const YAML::Node n = YAML::Load(yaml_text);
    std::string out;
    write_yaml_json(n, out);
    return out;
  } catch (const std::exception& e) {
    return Status::invalid(std::string("not a YAML event: ") + e.what());
  }
}

Expected<Bundle> Bundle::from_files(std::vector<BundleFile> files, const BundleLimits& limits) {
  if (files.size() > limits.max_files) {
    return Status::invalid("the bundle holds " + std::to_string(files.size()) +
                           " files, more than the limit of " + std::to_string(limits.max_files));
  }
  size_t total = 0;
  for (auto& f : files) {
    if (!utf8::valid(f.path)) {
      return Status::invalid("bundle file path '" + utf8::repaired(f.path) +
                             "' is not valid UTF-8");
    }
    // Backslashes and drive letters are refused as '..' is: a path that is relative here
    // can be a traversal or an absolute path on Windows ("..\\..\\x.yml", "C:\\x.yml",
    // "C:x.yml"), and control characters have no place in a file name.
    const bool control = std::any_of(f.path.begin(), f.path.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    const bool drive = f.path.size() >= 2 && f.path[1] == ':' &&
                       std::isalpha(static_cast<unsigned char>(f.path[0]));
    if (f.path.find('\\') != std::string::npos || drive || control) {
      return Status::invalid(
          "bundle file path '" + f.path +
          "' is not a relative path inside the bundle (backslashes, drive letters and control "
          "characters are refused)");
    }
    const std::string p = normalize_path(f.path);
    if (p.empty() || f.path.starts_with('/'))
      return Status::invalid("bundle file path '" + f.path +
                             "' is not a relative path inside the bundle");
    f.path = p;
    if (f.content.size() > limits.max_file_bytes) {
      return Status::invalid("bundle file '" + f.path + "' is " + std::to_string(f.content.size()) +
                             " bytes, more than the limit of " +
                             std::to_string(limits.max_file_bytes));
    }
    total += f.content.size();
  }
  if (total > limits.max_total_bytes) {
    return Status::invalid("the bundle holds " + std::to_string(total) +
                           " bytes, more than the limit of " +
                           std::to_string(limits.max_total_bytes));
  }
  std::sort(files.begin(), files.end(),
            [](const BundleFile& a, const BundleFile& b) { return a.path < b.path; });
  for (size_t i = 1; i < files.size(); ++i) {
    if (files[i].path == files[i - 1].path)
      return Status::invalid("bundle file '" + files[i].path + "' appears twice");
  }
  // An archive of a folder ("bundle/manifest.yml", "bundle/rules/...") is that folder's bundle.
  if (!files.empty() && !std::any_of(files.begin(), files.end(), [](const BundleFile& f) {
        return f.path.find('/') == std::string::npos;
      })) {
    const std::string top = files[0].path.substr(0, files[0].path.find('/'));
    if (std::all_of(files.begin(), files.end(),
                    [&](const BundleFile& f) { return under(f.path, top); })) {
      for (auto& f : files) f.path.erase(0, top.size() + 1);
    }
  }
  Bundle b;
  b.files_ = std::move(files);
  b.hash_ = hash_files(b.files_);
  return b;
}

Expected<Bundle> Bundle::load(const std::string& path, const BundleLimits& limits) {
  std::error_code ec;
  std::vector<BundleFile> files;
  auto read = [&](const fs::path& p) -> Expected<std::string> {
    const auto size = fs::file_size(p, ec);
    if (ec) return Status::io_error("cannot read '" + p.string() + "': " + ec.message());
    if (size > limits.max_total_bytes)
      return Status::invalid("'" + p.string() + "' is larger than a bundle may be");
    std::ifstream in(p, std::ios::binary);
    if (!in) return Status::io_error("cannot read '" + p.string() + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  if (fs::is_directory(path, ec)) {
    size_t total = 0;
    for (auto it = fs::recursive_directory_iterator(
             path, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.starts_with('.')) {  // .git, editor files
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      auto content = read(it->path());
      if (!content) return content.status();
      total += content->size();
      if (files.size() >= limits.max_files || total > limits.max_total_bytes) {
        return Status::invalid("'" + path + "' holds more than a bundle may (" +
                               std::to_string(limits.max_files) + " files, " +
                               std::to_string(limits.max_total_bytes) + " bytes)");
      }
      files.push_back({fs::relative(it->path(), path, ec).generic_string(), std::move(*content)});
    }
    if (ec) return Status::io_error("cannot read '" + path + "': " + ec.message());
    return from_files(std::move(files), limits);
  }
  if (!fs::exists(path, ec)) return Status::not_found("no bundle at '" + path + "'");
  auto content = read(path);
  if (!content) return content.status();
  if (has_yaml_extension(path)) {
    files.push_back({fs::path(path).filename().string(), std::move(*content)});
    return from_files(std::move(files), limits);
  }
  return from_archive(*content, limits);
}

Expected<Bundle> Bundle::from_archive(std::string_view bytes, const BundleLimits& limits) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_read_new(),
                                                              archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  if (archive_read_open_memory(a.get(), bytes.data(), bytes.size()) != ARCHIVE_OK) {
    return Status::invalid(std::string("not a bundle archive: ") + archive_error(a.get()));
  }
  std::vector<BundleFile> files;
  size_t total = 0;
  struct archive_entry* entry = nullptr;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return Status::invalid(std::string("bundle archive is damaged: ") + archive_error(a.get()));
    }
    const char* name = archive_entry_pathname(entry);
    const std::string path = name ? name : "";
    const auto type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) continue;
    if (type != AE_IFREG)
      return Status::invalid("bundle archive entry '" + path + "' is not a regular file");
    const la_int64_t size = archive_entry_size(entry);
    if (size < 0 || static_cast<uint64_t>(size) > limits.max_file_bytes) {
      return Status::invalid("bundle archive entry '" + path + "' is larger than the limit of " +
                             std::to_string(limits.max_file_bytes) + " bytes");
    }
    total += static_cast<size_t>(size);
    if (total > limits.max_total_bytes || files.size() >= limits.max_files) {
      return Status::invalid("the bundle archive holds more than a bundle may (" +
                             std::to_string(limits.max_files) + " files, " +
                             std::to_string(limits.max_total_bytes) + " bytes)");
    }
    std::string content(static_cast<size_t>(size), '\0');
    size_t got = 0;
    while (got < content.size()) {
      const la_ssize_t n = archive_read_data(a.get(), content.data() + got, content.size() - got);
      if (n < 0)
        return Status::invalid("bundle archive entry '" + path +
                               "' cannot be read: " + archive_error(a.get()));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    if (got != content.size())
      return Status::invalid("bundle archive entry '" + path + "' is truncated");
    files.push_back({path, std::move(content)});
  }
  if (files.empty()) return Status::invalid("the bundle archive holds no file");
  return from_files(std::move(files), limits);
}

std::string Bundle::to_tar() const {
  std::string out;
  ArchiveWriter w{&out};
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &w, nullptr, &ArchiveWriter::write, nullptr);
  for (const auto& f : files_) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, f.path.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(f.content.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, f.content.data(), f.content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

const BundleFile* Bundle::file(std::string_view path) const {
  auto it = std::lower_bound(files_.begin(), files_.end(), path,
                             [](const BundleFile& f, std::string_view p) { return f.path < p; });
  return it != files_.end() && it->path == path ? &*it : nullptr;
}

size_t Bundle::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f.content.size();
  return n;
}

}  // namespace vigil::match
