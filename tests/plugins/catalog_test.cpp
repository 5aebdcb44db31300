// The plugin catalog: rescans (on demand, watched, on an interval) and hot reload through leases: a changed
// plugin serves new work while work in flight keeps the old version, which unloads with its last lease.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <taskhive/plugin_abi.h>
#include <taskhive/plugin_catalog.hpp>
#include <taskhive/scheduler.hpp>

#include "directory_watch.hpp"
#include "plugins/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using taskhive::PluginStatus;
using taskhive::test::install;
using taskhive::test::plugin_mapped;
using taskhive::test::TempDir;

namespace {

const fs::path versions_dir = TASKHIVE_VERSIONS_DIR;
const fs::path v1 = versions_dir / "versioned_v1.so";
const fs::path v2 = versions_dir / "versioned_v2.so";

// Replaces `target` the way a package manager does: a new file renamed over the old one.
void replace(const fs::path& from, const fs::path& target) {
  const fs::path temporary = target.parent_path() / ("." + target.filename().string() + ".new");
  install(from, temporary);
  fs::rename(temporary, target);
}

// Runs the plugin's "tag" transform on one item through the C ABI; "" if anything failed.
std::string tag(const taskhive::PluginLease& lease, const std::string& text) {
  const taskhive_plugin_descriptor* descriptor = lease.descriptor();
  if (!descriptor || descriptor->kind_count != 1) return "";
  const taskhive_stage_kind& kind = descriptor->kinds[0];
  void* instance = nullptr;
  taskhive_error error{};
  if (kind.create(nullptr, 0, &instance, &error) != TASKHIVE_OK) return "";
  std::string out;
  const taskhive_item item{reinterpret_cast<const uint8_t*>(text.data()), text.size(), nullptr, 0};
  auto emit = [](void* self, const taskhive_item* emitted) -> int32_t {
    static_cast<std::string*>(self)->assign(reinterpret_cast<const char*>(emitted->data), emitted->size);
    return TASKHIVE_OK;
  };
  const int32_t code = kind.process(instance, &item, emit, &out, &error);
  kind.destroy(instance);
  return code == TASKHIVE_OK ? out : "";
}

// The name /proc/self/maps shows for the private copy of this version of plugin.so.
std::string copy_of(const taskhive::PluginLease& lease) {
  return lease.record().path.filename().string() + "@" + lease.record().sha256.substr(0, 12);
}

std::unique_ptr<taskhive::PluginCatalog> open(taskhive::CatalogOptions options) {
  auto catalog = taskhive::PluginCatalog::open(std::move(options));
  INFO(catalog.error());
  REQUIRE(catalog);
  return std::move(catalog).value();
}

}  // namespace

TEST_CASE(
    "hot reload: new work gets the new version, work in flight finishes on the old one, which then "
    "unloads",
    "[plugins][catalog]") {
  TempDir dir;
  const fs::path plugin = install(v1, dir / "plugin.so");
  taskhive::Scheduler scheduler({.workers = 2});
  // The scan runs as a priority-5 task on the same scheduler the work runs on.
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true, .scheduler = &scheduler}});

  std::latch leased(1), go_on(1);
  std::string old_result, old_copy;
  auto in_flight = scheduler.submit([&] {
    auto lease = catalog->lease("versioned");
    if (!lease) throw std::runtime_error(lease.error());
    old_copy = copy_of(*lease);
    leased.count_down();
    go_on.wait();  // the plugin is replaced and reloaded meanwhile
    old_result = tag(*lease, "in flight");
  });
  leased.wait();

  SECTION("replaced by a rename") {
    replace(v2, plugin);
  }
  SECTION("rewritten in place") {
    install(v2, plugin);
  }  // same inode: only a private copy tells them apart

  auto summary = catalog->rescan();
  REQUIRE(summary);
  CHECK(summary->changed == 1);
  CHECK(summary->generation == 1);
  auto fresh = catalog->lease("versioned");
  REQUIRE(fresh);
  CHECK(fresh->record().version == "2.0.0");
  CHECK(tag(*fresh, "new work") == "v2:new work");
  CHECK(plugin_mapped(old_copy));  // the old version is still loaded for the work in flight
  CHECK(plugin_mapped(copy_of(*fresh)));

  go_on.count_down();
  REQUIRE(in_flight.wait() == taskhive::TaskState::succeeded);
  CHECK(old_result == "v1:in flight");
  CHECK_FALSE(plugin_mapped(old_copy));  // unloaded with its last lease
  CHECK(plugin_mapped(copy_of(*fresh)));
  CHECK(catalog->records().at(0).version == "2.0.0");
}

TEST_CASE("a removed plugin serves no new leases; held ones keep it until they end", "[plugins][catalog]") {
  TempDir dir;
  const fs::path plugin = install(v1, dir / "plugin.so");
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}});
  REQUIRE(catalog->lease("versioned"));
  taskhive::PluginLease held = catalog->lease("versioned").value();
  fs::remove(plugin);
  auto summary = catalog->rescan();
  REQUIRE(summary);
  CHECK(summary->removed == 1);
  CHECK(catalog->lease("versioned").error() == "no plugin named \"versioned\" is available");
  CHECK(tag(held, "x") == "v1:x");
  const std::string copy = copy_of(held);
  CHECK(plugin_mapped(copy));
  held = {};
  CHECK_FALSE(plugin_mapped(copy));
}

TEST_CASE("a rescan of unchanged files neither hashes nor probes them, and keeps loaded versions",
          "[plugins][catalog]") {
  TempDir dir;
  install(v1, dir / "a.so");
  install(v2, dir / "b.so");  // the same plugin name: refused, a.so wins
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}});
  auto first = catalog->lease("versioned");
  REQUIRE(first);
  auto summary = catalog->rescan();
  REQUIRE(summary);
  CHECK(summary->unchanged == 2);
  CHECK(summary->added + summary->changed + summary->removed == 0);
  CHECK(summary->generation == 0);
  auto again = catalog->lease("versioned");
  REQUIRE(again);
  CHECK(again->descriptor() == first->descriptor());  // the same loaded version, not a reload

  const auto records = catalog->records();
  REQUIRE(records.size() == 2);
  // The scan saw a.so available (the probe's word); the catalog had it loaded: either way, a.so wins.
  CHECK(records[1].reason ==
        "duplicate plugin name \"versioned\": already available from " + (dir / "a.so").string());

  SECTION("when the winner of a name clash goes, the unchanged loser takes its place") {
    fs::remove(dir / "a.so");
    REQUIRE(catalog->rescan());
    auto b = catalog->lease("versioned");
    INFO(b.error());
    REQUIRE(b);
    CHECK(b->record().version == "2.0.0");
    CHECK(tag(*b, "x") == "v2:x");
  }
}

TEST_CASE("a chmod or a hard link is not a new version: the rescan keeps the loaded one",
          "[plugins][catalog]") {
  // Both move the file's ctime, which is part of its key; the bytes hash the same, so nothing reloads.
  TempDir dir, elsewhere;
  install(v1, dir / "a.so");
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}});
  auto first = catalog->lease("versioned");
  REQUIRE(first);
  auto unchanged = [&] {
    auto summary = catalog->rescan();
    REQUIRE(summary);
    CHECK(summary->unchanged == 1);
    CHECK(summary->changed == 0);
    CHECK(summary->generation == 0);
    auto again = catalog->lease("versioned");
    REQUIRE(again);
    CHECK(again->descriptor() == first->descriptor());  // the same loaded version, not a reload
  };
  SECTION("chmod") {
    fs::permissions(dir / "a.so", fs::perms(0750));
    unchanged();
  }
  SECTION("a hard link made and removed") {
    fs::create_hard_link(dir / "a.so", elsewhere / "link.so");
    unchanged();
    fs::remove(elsewhere / "link.so");
    unchanged();
  }
}

TEST_CASE("a plugin refused for its mode is taken once a chmod fixes it", "[plugins][catalog]") {
  // A refusal before hashing leaves no digest to compare: the moved ctime means the file is checked again.
  TempDir dir;
  install(v1, dir / "a.so");
  fs::permissions(dir / "a.so", fs::perms(0775));
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}});
  REQUIRE(catalog->records().at(0).status == PluginStatus::refused);
  fs::permissions(dir / "a.so", fs::perms(0755));
  auto summary = catalog->rescan();
  REQUIRE(summary);
  CHECK(summary->changed == 1);
  CHECK(catalog->records().at(0).status == PluginStatus::available);
  CHECK(catalog->lease("versioned"));
}

TEST_CASE("a rescan that cannot see a plugin directory keeps the plugins as they were",
          "[plugins][catalog]") {
  auto dir = std::make_unique<TempDir>();
  install(v1, *dir / "plugin.so");
  auto catalog = open({.loader = {.dirs = {dir->path()}, .probe = true}});
  const fs::path path = dir->path();
  dir.reset();  // the directory is gone
  auto summary = catalog->rescan();
  REQUIRE_FALSE(summary);
  CHECK(summary.error() == "plugin directory " + path.string() + " does not exist");
  auto lease = catalog->lease("versioned");  // its checked descriptor is still open
  REQUIRE(lease);
  CHECK(tag(*lease, "x") == "v1:x");
}

TEST_CASE("a watched directory is rescanned when a plugin arrives or leaves", "[plugins][catalog]") {
  TempDir dir;
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}, .watch = true, .settle = 20ms});
  CHECK_FALSE(catalog->lease("versioned"));
  const auto before = catalog->generation();
  replace(v1, dir / "plugin.so");
  REQUIRE(catalog->wait_for_change(before, 30s));
  auto lease = catalog->lease("versioned");
  INFO(lease.error());
  REQUIRE(lease);
  CHECK(tag(*lease, "x") == "v1:x");

  const auto arrived = catalog->generation();
  fs::remove(dir / "plugin.so");
  REQUIRE(catalog->wait_for_change(arrived, 30s));
  CHECK_FALSE(catalog->lease("versioned"));
}

TEST_CASE("an interval rescans without inotify", "[plugins][catalog]") {
  TempDir dir;
  auto catalog = open({.loader = {.dirs = {dir.path()}}, .rescan_interval = 10ms});
  const auto before = catalog->generation();
  replace(v1, dir / "plugin.so");
  REQUIRE(catalog->wait_for_change(before, 30s));
  auto lease = catalog->lease("versioned");  // without probe: loaded by the scan itself
  REQUIRE(lease);
  CHECK(lease->record().status == PluginStatus::loaded);
  CHECK(tag(*lease, "x") == "v1:x");
}

TEST_CASE("leases and plugin calls stay sound while the plugin is replaced and rescanned",
          "[plugins][catalog]") {
  TempDir dir;
  const fs::path plugin = install(v1, dir / "plugin.so");
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}});

  constexpr int workers = 3, calls = 300, flips = 12;
  std::atomic<int> bad{0}, v1_calls{0}, v2_calls{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      for (int i = 0; i < calls || !stop.load(); ++i) {
        auto lease = catalog->lease("versioned");
        if (!lease) {
          ++bad;
          continue;
        }
        // Whatever version the lease holds, the call runs that version's code.
        const std::string expected = lease->record().version == "1.0.0" ? "v1:item" : "v2:item";
        if (tag(*lease, "item") != expected) ++bad;
        ++(expected == "v1:item" ? v1_calls : v2_calls);
        if (i >= calls) break;
      }
    });
  }
  for (int flip = 0; flip < flips; ++flip) {
    replace(flip % 2 == 0 ? v2 : v1, plugin);
    auto summary = catalog->rescan();
    REQUIRE(summary);
    CHECK(summary->changed == 1);
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  CHECK(bad == 0);
  CHECK(v1_calls + v2_calls >= workers * calls);
  CHECK(catalog->generation() == flips);
  // Only the current version is still loaded once every lease is gone: the others were unloaded.
  auto current = catalog->lease("versioned");
  REQUIRE(current);
  CHECK(current->record().version == "1.0.0");  // an even number of flips
  std::ifstream maps("/proc/self/maps");
  const std::string text{std::istreambuf_iterator<char>(maps), {}};
  std::set<std::string> copies;  // one per loaded version, however many segments each maps
  for (auto at = text.find("/memfd:taskhive-plugin:plugin.so@"); at != std::string::npos;
       at = text.find("/memfd:taskhive-plugin:plugin.so@", at + 1))
    copies.insert(text.substr(at, text.find('\n', at) - at));
  CHECK(copies.size() == 1);
}

TEST_CASE("a watched directory with a file name that is not UTF-8 keeps being rescanned",
          "[plugins][catalog]") {
  TempDir dir, cache_dir;
  auto catalog =
      open({.loader = {.dirs = {dir.path()}, .probe = true, .probe_cache = cache_dir / "cache.json"},
            .watch = true,
            .settle = 20ms});
  auto before = catalog->generation();
  replace(v1, dir / "odd \xff name.so");
  REQUIRE(catalog->wait_for_change(before, 30s));
  CHECK(catalog->lease("versioned"));
  // The watch is still alive: the next change is seen too.
  before = catalog->generation();
  fs::remove(dir / "odd \xff name.so");
  REQUIRE(catalog->wait_for_change(before, 30s));
  CHECK_FALSE(catalog->lease("versioned"));
}

TEST_CASE("a watched directory that is removed and made again is still watched", "[plugins][catalog]") {
  // At the level of the watch itself, so each step can be waited for: the removal is seen, the new directory
  // is seen arriving in its parent, and a file in it is seen (the old watch died with the old directory).
  TempDir root;
  const auto dir = root / "plugins";
  fs::create_directory(dir);
  std::mutex mutex;
  std::condition_variable changed;
  int calls = 0;
  taskhive::detail::DirectoryWatch watch({dir}, /*use_inotify=*/true, 0ms, 20ms, [&] {
    std::lock_guard lock(mutex);
    ++calls;
    changed.notify_all();
  });
  const auto called = [&](int n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 30s, [&] { return calls >= n; });
  };
  fs::remove_all(dir);
  REQUIRE(called(1));
  fs::create_directory(dir);
  REQUIRE(called(2));
  std::ofstream(dir / "plugin.so") << "new";
  CHECK(called(3));
}

TEST_CASE("a watched symlink switched to another release directory is followed", "[plugins][catalog]") {
  // The usual atomic deploy: current -> v1, then a new symlink current -> v2 renamed over it.
  TempDir root;
  for (const char* release : {"v1", "v2"}) {
    fs::create_directory(root / release);
    fs::permissions(root / release, fs::perms(0755));
  }
  install(v1, root / "v1" / "plugin.so");
  install(v2, root / "v2" / "plugin.so");
  fs::create_directory_symlink(root / "v1", root / "current");
  auto catalog = open({.loader = {.dirs = {root / "current"}, .probe = true}, .watch = true, .settle = 20ms});
  {
    auto lease = catalog->lease("versioned");
    REQUIRE(lease);
    CHECK(tag(*lease, "x") == "v1:x");
  }
  const auto before = catalog->generation();
  fs::create_directory_symlink(root / "v2", root / "current.new");
  fs::rename(root / "current.new", root / "current");
  REQUIRE(catalog->wait_for_change(before, 30s));
  auto lease = catalog->lease("versioned");
  INFO(lease.error());
  REQUIRE(lease);
  CHECK(tag(*lease, "x") == "v2:x");
  // And the new release's directory is the one watched now.
  const auto switched = catalog->generation();
  fs::remove(root / "v2" / "plugin.so");
  REQUIRE(catalog->wait_for_change(switched, 30s));
  CHECK_FALSE(catalog->lease("versioned"));
}

TEST_CASE("a plugin that loads slowly holds up no one but its own lease", "[plugins][catalog]") {
  // The first lease loads the plugin, running its constructors for as long as they take: here until the
  // test opens a gate. Meanwhile the catalog answers records() and a rescan (they waited before).
  TempDir dir, scratch;
  install(fs::path(TASKHIVE_GATE_CORPUS_DIR) / "ctor_gate.so", dir / "gate.so");
  const auto started = scratch / "started";
  const auto gate = scratch / "gate";
  ::setenv("TASKHIVE_CORPUS_STARTED_FILE", started.c_str(), 1);
  ::setenv("TASKHIVE_CORPUS_GATE_FILE", gate.c_str(), 1);
  auto catalog = open({.loader = {.dirs = {dir.path()}, .probe = true}});
  auto loading = std::async(std::launch::async, [&] { return catalog->lease("corpus_bad"); });
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (!fs::exists(started) && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
  REQUIRE(fs::exists(started));  // the lease is inside the plugin's constructor now
  auto looking = std::async(std::launch::async, [&] {
    const auto records = catalog->records();
    const auto rescan = catalog->rescan();
    return records.size() == 1 && static_cast<bool>(rescan);
  });
  const bool answered = looking.wait_for(30s) == std::future_status::ready;
  std::ofstream{gate};  // let the load finish either way
  CHECK(answered);
  CHECK(looking.get());
  auto lease = loading.get();
  INFO(lease.error());
  CHECK(lease);
  ::unsetenv("TASKHIVE_CORPUS_STARTED_FILE");
  ::unsetenv("TASKHIVE_CORPUS_GATE_FILE");
}
