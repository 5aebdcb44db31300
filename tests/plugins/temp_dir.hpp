#pragma once
// Test helpers for plugin tests: private temporary directories, and plugin copies whose permissions do not
// depend on the umask the build ran with (the loader refuses group-writable files).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <catch2/catch.hpp>

namespace taskhive::test {

namespace fs = std::filesystem;

// A fresh private directory (mode 0700) removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "taskhive-plugins-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = fs::canonical(pattern);  // the loader reports canonical paths
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Copies a plugin with mode 0755, so the test does not depend on the umask the build ran with.
inline fs::path install(const fs::path& from, const fs::path& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms(0755));
  return to;
}

// Whether a private copy of a plugin is mapped in this process: the loader maps one per loaded version, which
// /proc/self/maps shows as "/memfd:taskhive-plugin:FILE@SHA12 (deleted)". `label` is "FILE@" (any version)
// or "FILE@SHA12".
inline bool plugin_mapped(const std::string& label) {
  std::ifstream maps("/proc/self/maps");
  const std::string text{std::istreambuf_iterator<char>(maps), {}};
  return text.find("/memfd:taskhive-plugin:" + label) != std::string::npos;
}

}  // namespace taskhive::test
