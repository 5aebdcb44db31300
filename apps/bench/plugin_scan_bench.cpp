// Plugin scan benchmarks (issue 4), on a directory of 500 copies of the sample plugin (one plugin name, so
// 499 end as duplicates, but every file is checked, hashed and probed all the same). Targets: a warm rescan
// of the 500 unchanged files under 50 ms (stat only), and a cold scan at most 5 ms per plugin, probe
// included. Own executable (taskhive_plugin_bench), run by scripts/bench.
//
//   BM_plugin_scan_cold        load_plugins with probe and an empty probe cache: every file is checked,
//                              hashed and probed in child processes (two, one per core); the cache is written
//   BM_plugin_scan_warm        load_plugins again with the cache from the cold scan: each file is opened and
//                              fstat'ed and found unchanged in the cache; nothing is hashed or probed
//   BM_plugin_catalog_rescan   PluginCatalog::rescan of the same unchanged files (in-memory knowledge of the
//                              last scan; the catalog's hot-reload path)
//
// Counter ms_per_plugin: wall time per file. The page cache is warm in every case ("cold" means no probe
// cache, not a cold disk).

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <benchmark/benchmark.h>

#include "taskhive/loader.hpp"
#include "taskhive/plugin_catalog.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int kPlugins = 500;

// A private directory of kPlugins copies of the sample plugin, made once per process.
const fs::path& plugin_dir() {
  static const fs::path dir = [] {
    std::string pattern = (fs::temp_directory_path() / "taskhive-bench-plugins-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    const fs::path made = fs::canonical(pattern);
    for (int i = 0; i < kPlugins; ++i) {
      const fs::path copy = made / ("copy" + std::to_string(1000 + i) + ".so");
      fs::copy_file(TASKHIVE_SAMPLE_PLUGIN, copy);
      fs::permissions(copy, fs::perms(0755));
    }
    std::atexit([] { fs::remove_all(plugin_dir()); });
    return made;
  }();
  return dir;
}

fs::path cache_file() {
  return plugin_dir().parent_path() / (plugin_dir().filename().string() + ".cache.json");
}

void scan(benchmark::State& state, const taskhive::LoaderOptions& options) {
  auto result = taskhive::load_plugins(options);
  if (!result) {
    state.SkipWithError(result.error().c_str());
    return;
  }
  if (result->records().size() != kPlugins ||
      result->records()[0].status != taskhive::PluginStatus::available)
    state.SkipWithError(("unexpected scan result: " + result->records()[0].reason).c_str());
}

void report(benchmark::State& state) {
  state.counters["ms_per_plugin"] =
      benchmark::Counter(kPlugins / 1e3 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_plugin_scan_cold(benchmark::State& state) {
  const taskhive::LoaderOptions options{.dirs = {plugin_dir()}, .probe = true, .probe_cache = cache_file()};
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove(cache_file());
    state.ResumeTiming();
    scan(state, options);
  }
  report(state);
}

void BM_plugin_scan_warm(benchmark::State& state) {
  const taskhive::LoaderOptions options{.dirs = {plugin_dir()}, .probe = true, .probe_cache = cache_file()};
  fs::remove(cache_file());
  scan(state, options);  // fills the cache
  for (auto _ : state) scan(state, options);
  report(state);
}

void BM_plugin_catalog_rescan(benchmark::State& state) {
  auto catalog = taskhive::PluginCatalog::open({.loader = {.dirs = {plugin_dir()}, .probe = true}});
  if (!catalog) {
    state.SkipWithError(catalog.error().c_str());
    return;
  }
  for (auto _ : state) {
    auto summary = (*catalog)->rescan();
    if (!summary || summary->unchanged != kPlugins) state.SkipWithError("the rescan saw changes");
  }
  report(state);
}

}  // namespace

BENCHMARK(BM_plugin_scan_cold)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_plugin_scan_warm)->Unit(benchmark::kMillisecond)->Iterations(10)->UseRealTime();
BENCHMARK(BM_plugin_catalog_rescan)->Unit(benchmark::kMillisecond)->Iterations(10)->UseRealTime();

BENCHMARK_MAIN();
