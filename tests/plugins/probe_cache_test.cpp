// The probe cache: a rescan of unchanged files probes nothing (refusals included), a changed file is probed
// again (one rewritten in place behind a restored mtime too), a corrupt or other-version cache is ignored and
// rewritten, load() refuses bytes that changed after the scan, and the cache file is written atomically.
// Every cache lives in a temporary directory.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <taskhive/loader.hpp>

#include "plugins/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using taskhive::PluginStatus;
using taskhive::test::install;
using taskhive::test::TempDir;

namespace {

const fs::path corpus_dir = TASKHIVE_CORPUS_DIR;
const fs::path crash_dir = TASKHIVE_CRASH_CORPUS_DIR;
const fs::path no_probe = "/nonexistent/taskhive-probe";  // any file it would have to probe is refused

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::map<std::string, taskhive::PluginRecord> by_file_name(const taskhive::PluginRegistry& registry) {
  std::map<std::string, taskhive::PluginRecord> out;
  for (const auto& record : registry.records()) out.emplace(record.path.filename().string(), record);
  return out;
}

taskhive::PluginRegistry scan(const fs::path& dir, const fs::path& cache,
                              std::optional<fs::path> probe = std::nullopt) {
  auto result = taskhive::load_plugins({.dirs = {dir},
                                        .probe = true,
                                        .probe_timeout = 500ms,
                                        .probe_executable = std::move(probe),
                                        .probe_cache = cache});
  INFO(result.error());
  REQUIRE(result);
  return std::move(result).value();
}

// A directory with good plugins, descriptor problems and crashes.
void fill(const TempDir& dir) {
  install(corpus_dir / "good.so", dir / "a_good.so");
  install(crash_dir / "ctor_segv.so", dir / "ctor_segv.so");
  install(crash_dir / "ctor_hang.so", dir / "ctor_hang.so");
  install(corpus_dir / "wrong_abi.so", dir / "d_wrong_abi.so");
  install(TASKHIVE_SAMPLE_PLUGIN_DIR "/sample_upper.so", dir / "f_sample_upper.so");
}

void same_outcome(const taskhive::PluginRegistry& a, const taskhive::PluginRegistry& b) {
  const auto first = by_file_name(a);
  const auto second = by_file_name(b);
  REQUIRE(first.size() == second.size());
  for (const auto& [file, record] : first) {
    INFO(file);
    const auto& other = second.at(file);
    CHECK(other.status == record.status);
    CHECK(other.reason == record.reason);
    CHECK(other.name == record.name);
    CHECK(other.version == record.version);
    CHECK(other.sha256 == record.sha256);
    CHECK(other.kinds.size() == record.kinds.size());
  }
}

}  // namespace

TEST_CASE("a rescan with the probe cache probes nothing unchanged, refusals included", "[plugins][cache]") {
  TempDir dir, cache_dir;
  fill(dir);
  const fs::path cache = cache_dir / "probe-cache.json";
  const auto cold = scan(dir.path(), cache);
  const auto records = by_file_name(cold);
  REQUIRE(records.at("a_good.so").status == PluginStatus::available);
  REQUIRE(records.at("ctor_segv.so").reason.starts_with("crashed during probe: signal 11"));
  REQUIRE(records.at("ctor_hang.so").reason == "probe timed out after 500 ms");
  REQUIRE(records.at("d_wrong_abi.so").reason.find("ABI version") != std::string::npos);
  REQUIRE(fs::exists(cache));
  // Written atomically: nothing but the cache file is left in its directory.
  CHECK(std::distance(fs::directory_iterator(cache_dir.path()), fs::directory_iterator{}) == 1);

  // No probe executable: had anything been probed, it would be refused ("cannot start the plugin probe").
  auto warm = scan(dir.path(), cache, no_probe);
  same_outcome(cold, warm);
  const auto before = fs::last_write_time(cache);

  // load() of a cached plugin hashes it and loads it.
  auto loaded = warm.load("sample_upper");
  INFO(loaded.error());
  REQUIRE(loaded);
  CHECK(std::string((*loaded)->name) == "sample_upper");

  // Nothing changed: the cache is not rewritten.
  (void)scan(dir.path(), cache, no_probe);
  CHECK(fs::last_write_time(cache) == before);
}

TEST_CASE("a changed file is probed again; entries of removed files are dropped", "[plugins][cache]") {
  TempDir dir, cache_dir;
  fill(dir);
  const fs::path cache = cache_dir / "probe-cache.json";
  (void)scan(dir.path(), cache);

  SECTION("a touched file") {
    fs::last_write_time(dir / "a_good.so", fs::last_write_time(dir / "a_good.so") + 1s);
  }
  SECTION("a file replaced by another") {
    fs::remove(dir / "a_good.so");
    install(TASKHIVE_SAMPLE_PLUGIN_DIR "/sample_upper.so", dir / "a_good.so");
  }
  const auto records = by_file_name(scan(dir.path(), cache, no_probe));
  CHECK(records.at("a_good.so").status == PluginStatus::refused);
  CHECK(records.at("a_good.so").reason.starts_with("cannot start the plugin probe"));
  CHECK(records.at("f_sample_upper.so").status == PluginStatus::available);
  CHECK(records.at("ctor_segv.so").reason.starts_with("crashed during probe: signal 11"));

  // Probed for real again, and cached: the next scan without a probe finds it.
  (void)scan(dir.path(), cache);
  CHECK(by_file_name(scan(dir.path(), cache, no_probe)).at("a_good.so").status == PluginStatus::available);

  fs::remove(dir / "ctor_segv.so");
  (void)scan(dir.path(), cache, no_probe);
  const auto doc = nlohmann::json::parse(read_all(cache));
  CHECK(doc.at("entries").size() == 4);
  CHECK(read_all(cache).find("ctor_segv.so") == std::string::npos);
}

TEST_CASE("a corrupt or other-version probe cache is ignored and rewritten", "[plugins][cache]") {
  TempDir dir, cache_dir;
  install(TASKHIVE_SAMPLE_PLUGIN_DIR "/sample_upper.so", dir / "sample_upper.so");
  install(crash_dir / "ctor_segv.so", dir / "ctor_segv.so");
  const fs::path cache = cache_dir / "probe-cache.json";
  const auto cold = scan(dir.path(), cache);
  auto doc = nlohmann::json::parse(read_all(cache));
  REQUIRE(doc.at("version") == 2);

  SECTION("not JSON") {
    std::ofstream(cache) << "{\"version\": 1, \"entr";
  }
  SECTION("another version") {
    doc["version"] = 99;
    std::ofstream(cache) << doc.dump();
  }
  SECTION("the version before the ctime was in the key") {
    doc["version"] = 1;
    for (auto& entry : doc["entries"]) entry.erase("ctime_ns");
    std::ofstream(cache) << doc.dump();
  }
  SECTION("a malformed entry") {
    doc["entries"][0].erase("ino");
    std::ofstream(cache) << doc.dump();
  }
  SECTION("empty") {
    std::ofstream{cache};
  }
  // Ignored: the files are probed again (without a probe, refused for that)...
  const auto ignored = by_file_name(scan(dir.path(), cache, no_probe));
  CHECK(ignored.at("sample_upper.so").reason.starts_with("cannot start the plugin probe"));
  // ... and the cache rebuilt from a real probe.
  same_outcome(cold, scan(dir.path(), cache));
  const auto rewritten = nlohmann::json::parse(read_all(cache));
  CHECK(rewritten.at("version") == 2);
  CHECK(rewritten.at("entries").size() == 2);
  same_outcome(cold, scan(dir.path(), cache, no_probe));
  CHECK(std::distance(fs::directory_iterator(cache_dir.path()), fs::directory_iterator{}) == 1);
}

namespace {

// Flips one bit of the file's last byte (section header padding: it still loads) in place: same inode and
// size; returns the stat from before.
struct stat flip_last_byte(const fs::path& plugin) {
  struct stat st {};
  REQUIRE(stat(plugin.c_str(), &st) == 0);
  std::fstream file(plugin, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(st.st_size - 1);
  const char last = static_cast<char>(file.get());
  file.seekp(st.st_size - 1);
  file.put(static_cast<char>(last ^ 0x01));
  return st;
}

// One sample_upper.so in a plugin directory, and a probe cache for it in a directory of its own.
struct CachedSample {
  TempDir dir, cache_dir;
  fs::path plugin = install(TASKHIVE_SAMPLE_PLUGIN_DIR "/sample_upper.so", dir / "sample_upper.so");
  fs::path cache = cache_dir / "probe-cache.json";

  taskhive::PluginRegistry scan(std::optional<fs::path> probe = std::nullopt) const {
    return ::scan(dir.path(), cache, std::move(probe));
  }
};

}  // namespace

TEST_CASE("a plugin rewritten in place with its size and mtime restored is probed again",
          "[plugins][cache]") {
  // Only the ctime tells: without it in the key, the cache kept answering with the old bytes' record, and
  // every load() refused the plugin until something else about the file changed.
  const CachedSample sample;
  const auto before = sample.scan();
  const auto old_sha = before.records().at(0).sha256;

  const struct stat st = flip_last_byte(sample.plugin);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, sample.plugin.c_str(), times, 0) == 0);
  struct stat now {};
  REQUIRE(stat(sample.plugin.c_str(), &now) == 0);
  REQUIRE(now.st_size == st.st_size);
  REQUIRE(now.st_mtim.tv_nsec == st.st_mtim.tv_nsec);
  REQUIRE(now.st_mtim.tv_sec == st.st_mtim.tv_sec);

  // Not a hit: without a probe it would be refused; with one, it is hashed and probed again.
  CHECK(sample.scan(no_probe).records().at(0).status == PluginStatus::refused);
  auto registry = sample.scan();
  REQUIRE(registry.find("sample_upper") != nullptr);
  CHECK(registry.records().at(0).sha256 != old_sha);
  CHECK(registry.load("sample_upper"));
}

TEST_CASE("a chmod is not a change: the cache answers after one hash, and then after a stat alone",
          "[plugins][cache]") {
  const CachedSample sample;
  const auto before = sample.scan();
  const auto key_before = nlohmann::json::parse(read_all(sample.cache)).at("entries").at(0).at("ctime_ns");
  fs::permissions(sample.plugin, fs::perms(0750));

  // Without a probe, a miss would be refused: the same bytes are a hit, and the entry takes the new key.
  const auto after = sample.scan(no_probe);
  same_outcome(before, after);
  const auto key_after = nlohmann::json::parse(read_all(sample.cache)).at("entries").at(0).at("ctime_ns");
  CHECK(key_after != key_before);
  same_outcome(before, sample.scan(no_probe));
}

TEST_CASE("load() refuses a plugin whose bytes changed after the scan that checked them",
          "[plugins][cache]") {
  const CachedSample sample;
  (void)sample.scan();
  auto registry = sample.scan(no_probe);
  REQUIRE(registry.find("sample_upper") != nullptr);  // a cache hit: not hashed at scan time

  (void)flip_last_byte(sample.plugin);
  auto loaded = registry.load("sample_upper");
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().find("its contents changed since it was checked") != std::string::npos);
  CHECK(registry.records().at(0).status == PluginStatus::refused);
  // The next scan sees the change: the plugin is available again, with the new bytes' hash.
  auto rescanned = sample.scan();
  CHECK(rescanned.records().at(0).sha256 != registry.records().at(0).sha256);
  CHECK(rescanned.load("sample_upper"));
}

TEST_CASE("a probe cache that cannot be written is a warning, not an error", "[plugins][cache]") {
  TempDir dir;
  install(TASKHIVE_SAMPLE_PLUGIN_DIR "/sample_upper.so", dir / "sample_upper.so");
  // Its directory cannot be created: a regular file stands in the way (works as root too).
  const auto registry = scan(dir.path(), "/dev/null/taskhive/probe-cache.json");
  CHECK(registry.records().at(0).status == PluginStatus::available);
}

TEST_CASE("a plugin file name that is not UTF-8 is scanned, cached and listed", "[plugins][cache]") {
  // A file name may hold any bytes but '/' and NUL; JSON holds UTF-8 only. The cache once threw on such a
  // name, failing every scan (and terminating a host whose directory watch rescanned).
  TempDir dir, cache_dir;
  const std::string name = "bad\xff\xfe name.so";
  install(TASKHIVE_SAMPLE_PLUGIN_DIR "/sample_upper.so", dir / name);
  const fs::path cache = cache_dir / "probe-cache.json";
  for (int run = 0; run < 2; ++run) {  // the second run reads the cache the first one wrote
    INFO("run " << run);
    const auto registry = scan(dir.path(), cache);
    REQUIRE(registry.records().size() == 1);
    CHECK(registry.records().at(0).path.filename().string() == name);
    CHECK(registry.records().at(0).status == PluginStatus::available);
    REQUIRE(fs::exists(cache));
    const auto doc = nlohmann::json::parse(read_all(cache));  // valid JSON, the odd bytes replaced
    CHECK(doc.at("entries").size() == 1);
  }
}
